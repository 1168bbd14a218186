"""Progress of a fetch: counts for callbacks, and a bar for people.

Months are the unit, and the bar shows only while something downloads. It must leave
nothing behind, wherever it was drawn:

- In a Jupyter kernel it is an HTML output shown through a display handle; when the
  fetch ends the handle replaces it with an empty ``text/plain``, so a saved notebook
  (and nbconvert, and any front end without widgets) keeps no ``0%| 0/3`` text.
- In a terminal it is one line on stderr in tqdm's format, never wider than the terminal
  is *now*, with the cursor kept at its start. Each frame first erases from there to the
  end of the screen, so a frame that a narrowed terminal wrapped onto two rows goes
  whole (tqdm fixes the width when the bar starts and rewinds with a bare ``\\r``: after
  the terminal narrows, every frame leaves a stale row above the next, and above the
  result). When the fetch ends the line is erased the same way and the cursor is at
  column 0, so the result starts on a clean line.
- Anywhere else (stderr a pipe, a log file, ``%%capture``) nothing is drawn: ``\\r``
  frames are only stale text in a log.
"""

from __future__ import annotations

import html
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

__all__ = ["Progress", "ProgressCallback", "reporter"]


@dataclass(frozen=True)
class Progress:
    """Where a fetch stands: months ``done`` of ``total``, of which ``cached`` came from
    the cache (never downloaded)."""

    done: int
    total: int
    cached: int


ProgressCallback = Callable[[Progress], None]

_MIN_INTERVAL = 0.1  # seconds between redraws, as tqdm's mininterval
_MAX_WIDTH = 80  # a short line is less likely to wrap when the terminal narrows


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
    bar = _open_bar(downloads, cached, label) if progress is True and downloads else None
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
            bar.update(done - cached)
        if callback is not None:
            callback(Progress(done, total, cached))

    return report


class _Bar(Protocol):
    def update(self, downloaded: int) -> None: ...

    def close(self) -> None: ...


def _open_bar(downloads: int, cached: int, label: str) -> _Bar | None:
    """The bar for where this runs: a kernel, a terminal, or nowhere."""
    if _in_kernel():
        return _KernelBar(downloads, cached, label)
    stream = sys.stderr
    if stream is not None and _isatty(stream):
        return _TerminalBar(stream, downloads, cached, label)
    return None


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell); never imports ipykernel."""
    zmqshell = sys.modules.get("ipykernel.zmqshell")
    ipython = sys.modules.get("IPython")
    if zmqshell is None or ipython is None:
        return False
    return isinstance(ipython.get_ipython(), zmqshell.ZMQInteractiveShell)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _Throttle:
    """Redraws at most every ``_MIN_INTERVAL`` seconds, and always the last frame."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.lock = threading.Lock()
        self.closed = False
        self._last = 0.0

    def due(self, downloaded: int) -> bool:
        now = time.monotonic()
        if self.closed or (downloaded < self.total and now - self._last < _MIN_INTERVAL):
            return False
        self._last = now
        return True


class _KernelBar:
    """An HTML bar behind a display handle, emptied when the fetch ends.

    Updates may come from download threads: ipykernel sends them under the running
    cell's parent header, and the display id lets the front end find the output."""

    def __init__(self, total: int, cached: int, label: str) -> None:
        from IPython.display import display

        self._throttle = _Throttle(total)
        self._cached = cached
        self._label = label
        self._handle = display(self._bundle(0), raw=True, display_id=True)

    def _bundle(self, downloaded: int) -> dict[str, str]:
        total = self._throttle.total
        cached = f", {self._cached} cached" if self._cached else ""
        text = f"{self._label}: {downloaded} of {total} months downloaded{cached}"
        # No text/plain while it runs: a text front end would print it and never erase it.
        return {
            "text/html": (
                '<div class="apj-progress" style="font:12px sans-serif;display:flex;gap:8px;align-items:center">'
                f'<progress value="{downloaded}" max="{total}" style="width:16em"></progress>'
                f"<span>{html.escape(text)}</span></div>"
            )
        }

    def update(self, downloaded: int) -> None:
        with self._throttle.lock:
            if self._throttle.due(downloaded) and self._handle is not None:
                self._handle.update(self._bundle(downloaded), raw=True)

    def close(self) -> None:
        with self._throttle.lock:
            self._throttle.closed = True
            if self._handle is not None:
                # The output stays (the protocol cannot remove one) but shows nothing,
                # and a saved notebook keeps nothing but an empty string.
                self._handle.update({"text/plain": ""}, raw=True)


class _TerminalBar:
    """One line on a terminal's stderr, in tqdm's format, erased on close."""

    def __init__(self, stream: TextIO, total: int, cached: int, label: str) -> None:
        self._stream = stream
        self._throttle = _Throttle(total)
        self._postfix = f"{cached} cached" if cached else None
        self._label = label
        self._start = time.monotonic()
        self._ascii = not _encodes(stream, "█▏")
        # Erase from the cursor to the end of the screen; older Windows consoles and dumb
        # terminals print escapes as text, so there the line is blanked with spaces.
        self._erase = "" if os.name == "nt" or os.environ.get("TERM") == "dumb" else "\x1b[J"
        self._shown = 0  # characters on the line now (for the fallback without escapes)
        if sys.stdout is not None:
            sys.stdout.flush()  # what was printed before the bar comes before it
        with self._throttle.lock:
            self._draw(0)

    def _draw(self, downloaded: int) -> None:
        from tqdm import tqdm
        from tqdm.utils import disp_len, disp_trim

        width = max(min(_columns(self._stream) - 1, _MAX_WIDTH), 10)
        text = tqdm.format_meter(
            downloaded,
            self._throttle.total,
            time.monotonic() - self._start,
            ncols=width,
            prefix=self._label,
            unit="month",
            ascii=self._ascii,
            postfix=self._postfix,
        )
        text = disp_trim(text, width)
        pad = " " * max(self._shown - disp_len(text), 0) if not self._erase else ""
        self._write("\r" + self._erase + text + pad + "\r")
        self._shown = disp_len(text)

    def update(self, downloaded: int) -> None:
        with self._throttle.lock:
            if self._throttle.due(downloaded):
                self._draw(downloaded)

    def close(self) -> None:
        with self._throttle.lock:
            self._throttle.closed = True
            blank = self._erase or " " * self._shown + "\r"
            self._write("\r" + blank)

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()  # tqdm leaves its final "\r" unflushed
        except (ValueError, OSError):  # a closed or broken stderr must not fail a fetch
            pass


def _columns(stream: Any) -> int:
    """The terminal's width now (it can change while a download runs)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _encodes(stream: Any, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True
