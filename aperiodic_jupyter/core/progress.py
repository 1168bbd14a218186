"""Progress of a fetch: counts for callbacks, and a bar for people.

Months are the unit. In a notebook the bar is an ipywidgets bar (tqdm's notebook bar)
that is removed when the fetch ends; in a terminal, a tqdm line on stderr that is
erased when the fetch ends, so no stale text is left before the result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressCallback", "reporter"]


@dataclass(frozen=True)
class Progress:
    """Where a fetch stands: months ``done`` of ``total``, of which ``cached`` came from
    the cache (never downloaded)."""

    done: int
    total: int
    cached: int


ProgressCallback = Callable[[Progress], None]


def reporter(
    progress: bool | ProgressCallback | None,
    total: int,
    cached: int,
    downloads: int,
    label: str,
) -> Callable[..., None]:
    """A ``report(close=False)`` function that counts finished months.

    Args:
        progress: ``True`` for a bar (shown only when something downloads), a callable
            receiving :class:`Progress`, or ``None``/``False`` for nothing.
        total: months in the query; cached: months already had from the cache.
        downloads: months to download; label: what the bar says (symbol, interval).
    """
    state = {"done": cached}
    lock = threading.Lock()
    bar = None
    if progress is True and downloads:
        from tqdm.auto import tqdm

        bar = tqdm(total=downloads, unit="month", desc=label, leave=False)
        if cached:
            bar.set_postfix_str(f"{cached} cached")
    callback = progress if callable(progress) else None
    if callback is not None:
        callback(Progress(cached, total, cached))

    def report(close: bool = False) -> None:
        if close:
            if bar is not None:
                bar.close()
            return
        with lock:
            state["done"] += 1
            done = state["done"]
        if bar is not None:
            bar.update(1)
        if callback is not None:
            callback(Progress(done, total, cached))

    return report
