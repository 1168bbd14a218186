"""Typed errors.

One base class, a few precise subclasses, so callers catch what they mean (the shape
httpx uses: ``HTTPError`` → ``RequestError`` / ``HTTPStatusError``). Every message is one
line that says what was wrong and what is valid. No message ever contains the API key or
a presigned URL: errors are built from our own words and the server's JSON ``error``
text, never from request objects.
"""

from __future__ import annotations

__all__ = [
    "AperiodicError",
    "QueryError",
    "SymbolError",
    "SourceError",
    "AuthError",
    "PlanError",
    "PreviewError",
    "NoDataError",
    "ServerError",
    "DownloadError",
    "SchemaError",
    "FormatError",
    "FetchCancelled",
    "ExportExtraMissing",
    "StreamError",
    "StreamRefused",
    "StreamClosed",
    "SubscriptionRejected",
]


class AperiodicError(Exception):
    """Base class of every error this package raises on purpose."""


class QueryError(AperiodicError, ValueError):
    """The query itself is invalid (bad exchange, interval, date range, option...)."""


class SymbolError(QueryError):
    """The symbol is not listed on the exchange; the message carries suggestions."""

    def __init__(self, message: str, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.suggestions = list(suggestions or [])


class SourceError(AperiodicError):
    """The data source refused or failed to answer."""

    status_code: int | None = None

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AuthError(SourceError):
    """401: missing or invalid API key."""


class PlanError(SourceError):
    """403 from the API: the plan does not cover this request."""


class PreviewError(PlanError):
    """The preview (``source="preview"``) does not cover this request; a key does."""


class NoDataError(SourceError):
    """No data for that symbol or range: a 404 from the API, or a range wholly outside
    the instrument's capture dates (raised before anything is downloaded)."""


class ServerError(SourceError):
    """The API kept failing (rate limits, 5xx, time-outs) after bounded retries, or
    answered something outside the contract."""


class DownloadError(SourceError):
    """A data file could not be downloaded intact after bounded retries."""


class FetchCancelled(AperiodicError):
    """The fetch was cancelled (Ctrl-C, the explorer's Cancel, ``Source.cancel()``).
    Months finished before the cancel are cached and stay; nothing partial is."""


class SchemaError(AperiodicError):
    """Files of one query disagree on their columns or types."""


class FormatError(AperiodicError, ValueError):
    """A trades file is not in the format its reader expects."""


class ExportExtraMissing(AperiodicError, ImportError):
    """PNG or SVG was asked from Python without vl-convert installed (the ``export``
    extra). The chart's own PNG and SVG buttons render in the browser and need nothing."""


class StreamError(SourceError):
    """The live stream ended for good and is not reconnected; the message is the one line
    a live view shows. Transient trouble (a drop, a graceful close, 429/5xx at the
    handshake, silence) is reconnected instead and never raises."""


class StreamRefused(StreamError):
    """The stream refused the handshake with a final HTTP status (401 bad key, 403 no
    live data on the plan, 426 protocol too old...): ``status_code`` says which."""


class StreamClosed(StreamError):
    """The server closed the stream with a final close code (1008, 4000-4999; 4001:
    plan lapsed or key rotated): ``close_code`` says which."""

    def __init__(self, message: str, close_code: int) -> None:
        super().__init__(message)
        self.close_code = close_code


class SubscriptionRejected(StreamError):
    """Nothing is left to stream: the server refused every channel (or the whole
    subscription), or removed every channel later. ``rejected`` holds the
    :class:`~aperiodic_jupyter.core.sources.stream.Rejection` of each channel."""

    def __init__(self, message: str, rejected: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.rejected = tuple(rejected)
