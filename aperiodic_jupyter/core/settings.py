"""Every setting, named once: the ``Aperiodic`` configurable.

``settings`` is the one instance. ``%config Aperiodic.<name> = value`` writes to it (the
magic registers it with IPython), so does plain Python (``aj.settings.max_concurrency =
8``); clients, caches and the magic read their defaults from it. Environment variables
are read at the moment a value is needed, never copied here.

The API key is held in a :class:`Secret`, whose ``repr`` and ``str`` never show it.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from traitlets import CaselessStrEnum, Float, Integer, TraitType, Unicode
from traitlets.config import Configurable

__all__ = [
    "Secret",
    "Aperiodic",
    "settings",
    "SOURCES",
    "resolve_api_key",
    "resolve_base_url",
    "fingerprint",
    "DEFAULT_BASE_URL",
    "DEFAULT_STREAM_URL",
    "resolve_stream_url",
    "default_live_history",
]

DEFAULT_BASE_URL = "https://aperiodic.io/api/v1"
DEFAULT_STREAM_URL = "wss://stream.aperiodic.io/v1/stream"
#: What ``source`` may be: ``auto`` is the API when a key is set, else the demo;
#: ``preview`` is the API's free slice of real data (no key needed).
SOURCES: tuple[str, ...] = ("auto", "api", "preview", "demo")
#: The environment variables read when a setting is unset.
ENV = ("APERIODIC_API_KEY", "APERIODIC_API_URL", "APERIODIC_CACHE_DIR", "APERIODIC_STREAM_URL")


class Secret:
    """A string that does not print. ``reveal()`` returns it, for the one header that
    needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:  # never pickled into a notebook or a cache
        raise TypeError("a Secret cannot be pickled")


class SecretTrait(TraitType[Secret | None, Any]):
    """An API key: accepts text, stores a :class:`Secret`, so ``%config Aperiodic``
    never echoes it."""

    default_value = None
    info_text = "an API key (never shown)"

    def validate(self, obj: Any, value: Any) -> Secret | None:
        if value is None or value == "":
            return None
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return Secret(value.strip())
        self.error(obj, value)
        return None


class Aperiodic(Configurable):
    """Defaults for every :class:`~aperiodic_jupyter.Client` made without arguments, and
    for ``%flow``. Set with ``%config Aperiodic.<name> = value`` or as attributes of
    ``aperiodic_jupyter.settings``.
    """

    api_key = SecretTrait(allow_none=True, help="Aperiodic API key (else APERIODIC_API_KEY); never shown").tag(config=True)
    base_url = Unicode(None, allow_none=True, help=f"API root (else APERIODIC_API_URL, else {DEFAULT_BASE_URL})").tag(config=True)
    cache_dir = Unicode(
        None, allow_none=True, help="disk cache root ('' turns it off; else APERIODIC_CACHE_DIR, else the platform cache dir)"
    ).tag(config=True)
    memory_cache_bytes = Integer(1 << 30, help="byte budget of the kernel's memory cache (bytes)").tag(config=True)
    max_concurrency = Integer(16, help="downloads in flight at once").tag(config=True)
    ttl = Float(15 * 60.0, help="seconds a month that is not yet complete stays fresh in the cache").tag(config=True)
    source = CaselessStrEnum(list(SOURCES), default_value="auto", help="auto: the API when a key is set, else the demo; preview: a free slice of real data").tag(
        config=True
    )
    stream_url = Unicode(
        None, allow_none=True, help=f"live stream endpoint (else APERIODIC_STREAM_URL, else {DEFAULT_STREAM_URL})"
    ).tag(config=True)
    live_history = Integer(
        360, min=0, help="bars of recent history a live view loads before the stream (360: 6 h at 1m, 15 days at 1h)"
    ).tag(config=True)
    live_max_bars = Integer(
        10_000, min=1, help="bars a live view keeps per series (a ring: the oldest go; 10,000 is about a week at 1m)"
    ).tag(config=True)

    def __repr__(self) -> str:
        values = {name: getattr(self, name) for name in self.trait_names(config=True)}
        values["api_key"] = "<set>" if self.api_key else "<unset>"
        return "Settings(" + ", ".join(f"{k}={v!r}" if k != "api_key" else f"{k}={v}" for k, v in sorted(values.items())) + ")"

    def reset(self) -> None:
        """Every setting back to its default."""
        for name, trait in self.traits(config=True).items():
            self.set_trait(name, trait.default())


settings = Aperiodic()


def fingerprint() -> tuple[Any, ...]:
    """Everything a client is built from: the settings and the environment. A client
    built under another fingerprint is stale."""
    return tuple(getattr(settings, n) for n in sorted(settings.trait_names(config=True))) + tuple(
        os.environ.get(k) for k in ENV
    )


def resolve_api_key(explicit: str | Secret | None = None) -> Secret | None:
    """Argument, then configuration, then ``APERIODIC_API_KEY``."""
    for candidate in (explicit, settings.api_key, os.environ.get("APERIODIC_API_KEY")):
        if candidate:
            return candidate if isinstance(candidate, Secret) else Secret(str(candidate).strip())
    return None


def resolve_base_url(explicit: str | None = None) -> str:
    """Argument, then configuration, then ``APERIODIC_API_URL``, then the public API."""
    url = explicit or settings.base_url or os.environ.get("APERIODIC_API_URL") or DEFAULT_BASE_URL
    return url.rstrip("/")


def resolve_stream_url(explicit: str | None = None) -> str:
    """Argument, then configuration, then ``APERIODIC_STREAM_URL``, then the public
    stream."""
    return explicit or settings.stream_url or os.environ.get("APERIODIC_STREAM_URL") or DEFAULT_STREAM_URL


def default_live_history(interval_seconds: int) -> timedelta:
    """How far back a live view's history reaches by default: ``live_history`` bars
    of the interval (6 h at 1m, 30 h at 5m, 15 days at 1h)."""
    return timedelta(seconds=settings.live_history * interval_seconds)
