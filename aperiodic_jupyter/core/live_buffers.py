"""The live flow's two buffers: the ring of the last N bars per series (what
``LiveFlow.frame()`` reads) and the mailbox that hands bars from the live thread to a
consumer. Both are bounded, so memory stays flat however long the session; and
:func:`release_memory`, which a view building frames over and over calls now and then
to give the memory its allocators keep back to the system."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from .live_bars import Bar

__all__ = ["Ring", "Mailbox", "release_memory", "POLL", "QUEUE_BARS"]

#: Seconds a thread waits between two looks at a stop while it blocks.
POLL = 0.2
#: Bars per series a consumer may fall behind before the oldest it has not taken are
#: dropped (counted in ``LiveFlow.overflow``; :meth:`LiveFlow.frame` still has them).
QUEUE_BARS = 10_000


# -- the ring: the last N bars of one series, in fixed arrays --------------------------------


class Ring:
    """The last ``size`` bars of one series: a time array and a value matrix allocated
    once, a slot per bar, the oldest slot reused, so memory is flat however long the
    session. The matrix holds a column per row (``values[j]`` is column ``j``, one
    contiguous run), so :meth:`snapshot` copies each column once and the frame built
    from it takes those copies as they are."""

    def __init__(self, size: int, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.times = np.zeros(size, dtype=np.int64)
        self.values = np.full((len(columns), size), np.nan)
        self.slot: dict[int, int] = {}
        self.head = 0

    def __len__(self) -> int:
        return len(self.slot)

    def get(self, time_us: int) -> np.ndarray | None:
        """The bar's values (a view into the ring: copy it to keep it), or ``None``."""
        i = self.slot.get(time_us)
        return None if i is None else self.values[:, i]

    def put(self, time_us: int, row: np.ndarray) -> None:
        i = self.slot.get(time_us)
        if i is None:
            i = self.head
            self.head = (self.head + 1) % len(self.times)
            if len(self.slot) == len(self.times):
                del self.slot[int(self.times[i])]
            self.slot[time_us] = i
            self.times[i] = time_us
        self.values[:, i] = row

    def snapshot(self, groups: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The times of the bars held, sorted, and for each group of column indices
        the values of those columns (a row per column, a column per bar, in the same
        order): copies, one allocation each, so a frame takes them as its blocks."""
        used = np.fromiter(self.slot.values(), dtype=np.intp, count=len(self.slot))
        used = used[np.argsort(self.times[used], kind="stable")]
        return self.times[used], [self.values[np.ix_(rows, used)] for rows in groups]


# -- memory the allocators keep -----------------------------------------------------------------


def _glibc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` elsewhere (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _glibc_trim()


def release_memory() -> None:
    """Give the memory freed since the last call back to the system (about a
    millisecond): glibc keeps freed heap pages for reuse (a live view frees a few
    megabytes of frame and chart rows several times a second, in pieces that leave the
    heap fragmented, so what it keeps creeps up), and Arrow's pool keeps what its
    allocator freed (a REST fill's decoding, for instance). What is in use is untouched."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)


# -- the consumer's side: bars handed from the live thread -----------------------------------


class Mailbox:
    """Bars from the live thread to a consumer (a thread or a coroutine). Bounded: a
    consumer that stops reading loses the oldest bars, counted in ``overflow``, never
    memory. Closing ends the consumer's iteration, after the bars already in (unless
    discarded), with the error if there is one."""

    def __init__(self, capacity: int) -> None:
        self._items: deque[Bar] = deque()
        self.capacity = capacity
        self.overflow = 0
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def put(self, bars: Sequence[Bar]) -> None:
        with self._cond:
            if self._closed:
                return
            self._items.extend(bars)
            extra = len(self._items) - self.capacity
            for _ in range(max(extra, 0)):
                self._items.popleft()
            self.overflow += max(extra, 0)
            self._wake()

    def close(self, error: BaseException | None = None, *, discard: bool = False) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._error = error
            if discard:
                self._items.clear()
            self._wake()

    def _wake(self) -> None:
        self._cond.notify_all()
        for loop, event in self._waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: its waiter is gone
                pass

    def _take(self) -> list[Bar] | None:
        """What is there now: bars, ``[]`` if none yet, ``None`` at the end (after
        raising the error, if there is one)."""
        if self._items:
            out = list(self._items)
            self._items.clear()
            return out
        if self._closed:
            if self._error is not None:
                raise self._error
            return None
        return []

    def get(self, timeout: float | None) -> list[Bar] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                got = self._take()
                if got != []:
                    return got
                left = POLL if deadline is None else min(POLL, deadline - time.monotonic())
                if left <= 0:
                    return []
                # Short waits: Ctrl-C reaches a main thread blocked here.
                self._cond.wait(left)

    async def aget(self, timeout: float | None) -> list[Bar] | None:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._cond:
            got = self._take()
            if got != []:
                return got
            self._waiters.append((loop, event))
        try:
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                pass
            with self._cond:
                return self._take()
        finally:
            with self._cond:
                self._waiters.remove((loop, event))
