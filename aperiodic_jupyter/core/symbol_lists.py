"""Symbol lists that stay current: the shipped Atlas snapshot, plus what the API lists
now.

The snapshot (``data/*.json``) answers offline. With a key, a symbol the snapshot does
not know makes the core ask ``GET {base}/metadata/symbols?exchange=…`` once (then at
most once a day per venue); the answer is kept on disk next to the cache, so a contract
listed last week resolves, completes and appears in the explorer without upgrading the
package. A refresh that fails is logged and changes nothing: the snapshot still answers
everything it knows.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from .errors import AperiodicError
from .settings import resolve_api_key, settings

__all__ = ["TTL", "fresh_symbols", "refresh_symbols"]

log = logging.getLogger("aperiodic_jupyter")

#: Seconds a venue's refreshed list stays fresh (and between failed attempts).
TTL = 24 * 3600.0

_lock = threading.Lock()
_lists: dict[str, tuple[float, tuple[str, ...]]] = {}  # venue -> (fetched at, symbols)
_attempted: dict[str, float] = {}  # venue -> when a refresh was last tried


def _path(exchange: str) -> Path | None:
    if settings.cache_dir == "":
        return None  # the disk cache is off: keep the list in memory only
    from .cache import default_cache_dir

    return Path(settings.cache_dir or default_cache_dir()) / "metadata" / f"symbols-{exchange}.json"


def fresh_symbols(exchange: str) -> tuple[str, ...]:
    """The venue's last refreshed list (Atlas symbols) from memory or disk, fresh or
    not; ``()`` when it was never refreshed. Never touches the network."""
    with _lock:
        if exchange in _lists:
            return _lists[exchange][1]
    path = _path(exchange)
    try:
        raw = json.loads(path.read_text("utf-8")) if path is not None else None
    except (OSError, ValueError):
        raw = None
    if not isinstance(raw, dict) or not isinstance(raw.get("symbols"), list):
        return ()
    entry = (float(raw.get("fetched_at", 0.0)), tuple(str(s) for s in raw["symbols"]))
    with _lock:
        _lists.setdefault(exchange, entry)
        return _lists[exchange][1]


def refresh_symbols(exchange: str, *, force: bool = False) -> bool:
    """Ask the API for the venue's list when a key is set and the last list (or the last
    attempt) is older than :data:`TTL`, or always with ``force``. Returns whether a new
    list was fetched; a failure is logged and returns ``False``."""
    if not resolve_api_key():
        return False
    now = time.time()
    fresh_symbols(exchange)  # load what the disk has
    with _lock:
        fetched = _lists.get(exchange, (0.0, ()))[0]
        if not force and (now - fetched < TTL or now - _attempted.get(exchange, 0.0) < TTL):
            return False
        _attempted[exchange] = now
    try:
        from .client import default_client

        symbols = default_client("api").source.list_symbols(exchange)  # type: ignore[attr-defined]
    except (AperiodicError, OSError, AttributeError) as exc:
        log.info("the symbol list of %s could not be refreshed (%s); using the shipped snapshot", exchange, exc)
        return False
    with _lock:
        _lists[exchange] = (now, tuple(symbols))
    _store(exchange, now, symbols)
    return True


def _store(exchange: str, fetched_at: float, symbols: list[str]) -> None:
    path = _path(exchange)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"exchange": exchange, "fetched_at": fetched_at, "symbols": symbols}), "utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # an unusable cache folder: the list stays in memory
        log.info("the symbol list of %s was not saved (%s)", exchange, exc)


def forget() -> None:
    """Drop what this process knows of refreshed lists (tests, or after a key change)."""
    with _lock:
        _lists.clear()
        _attempted.clear()
