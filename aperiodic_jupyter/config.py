"""Process-wide settings, written by ``%config`` (see :mod:`aperiodic_jupyter.magic`) or
directly, and the rules for resolving the API key and base URL.

The API key is held in a :class:`Secret`, whose ``repr`` and ``str`` never show it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Secret", "Settings", "settings", "resolve_api_key", "resolve_base_url", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "https://aperiodic.io/api/v1"


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


@dataclass
class Settings:
    """Defaults for every :class:`~aperiodic_jupyter.Client` made without arguments.

    Attributes:
        api_key: set by ``%config Aperiodic.api_key = ...`` (or ``set_api_key``);
            ``APERIODIC_API_KEY`` is read when this is unset.
        base_url: API root; ``APERIODIC_API_URL`` is read when this is unset.
        cache_dir: disk cache root; ``APERIODIC_CACHE_DIR`` then the platform cache dir
            when unset. An empty string turns the disk cache off.
        memory_cache_bytes: budget of the per-kernel memory cache.
        max_concurrency: downloads in flight at once.
        source: ``auto`` (API when a key is set, else demo), ``api`` or ``demo``.
    """

    api_key: Secret | None = None
    base_url: str | None = None
    cache_dir: str | None = None
    memory_cache_bytes: int = 1 << 30
    max_concurrency: int = 16
    source: str = "auto"

    def __repr__(self) -> str:
        key = "set" if self.api_key else "unset"
        return (
            f"Settings(api_key=<{key}>, base_url={self.base_url!r}, cache_dir={self.cache_dir!r}, "
            f"memory_cache_bytes={self.memory_cache_bytes}, max_concurrency={self.max_concurrency}, "
            f"source={self.source!r})"
        )


settings = Settings()


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
