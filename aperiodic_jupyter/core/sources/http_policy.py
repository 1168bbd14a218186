"""What the API source retries and where it lets requests go: retryable statuses and
transport errors, backoff with ``Retry-After``, same-origin redirects, and the redaction
that keeps presigned URLs out of messages and logs."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import tenacity

RETRYABLE = frozenset({429, 502, 503, 504})


class Transient(Exception):
    """A failure worth another attempt: HTTP 429/5xx, a time-out, a dropped connection,
    a short or corrupt body. ``retry_after`` is the server's ``Retry-After``, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Backoff:
    """Exponential backoff with jitter, or the server's ``Retry-After``, both capped."""

    def __init__(self, backoff: float, cap: float) -> None:
        self.backoff, self.cap = backoff, cap

    def __call__(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.cap)
        return min(self.cap, self.backoff * 2 ** (state.attempt_number - 1)) * random.uniform(0.5, 1.0)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


@contextmanager
def transport_errors() -> Iterator[None]:
    """Time-outs and dropped connections are transient; say so without the URL."""
    try:
        yield
    except httpx.TimeoutException:
        raise Transient("time-out") from None
    except httpx.TransportError as exc:
        raise Transient(f"connection error: {type(exc).__name__}") from None


def raise_if_retryable(response: httpx.Response) -> None:
    if response.status_code in RETRYABLE:
        raise Transient(f"HTTP {response.status_code}", retry_after(response))


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with the scheme's default port filled in."""
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)


def same_origin(target: httpx.URL, home: tuple[str, str, int | None]) -> bool:
    """The configured API's origin (``home``), or its https upgrade on the default port."""
    there = origin(target)
    if there == home:
        return True
    return home[0] == "http" and home[2] == 80 and there == ("https", home[1], 443)


URL_QUERY = re.compile(r"(https?://[^\s\"'?]+)\?[^\s\"']*")


def redact(text: str) -> str:
    """Strip query strings (presigned signatures) from every URL in ``text``."""
    return URL_QUERY.sub(r"\1?<redacted>", text)


class RedactUrls(logging.Filter):
    """httpx logs each request's URL at INFO; presigned URLs are secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


logging.getLogger("httpx").addFilter(RedactUrls())
