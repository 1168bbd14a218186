"""No stale progress text, and readable text fallbacks.

- A terminal: IPython in a real pty, its output replayed through a small terminal
  emulator, and the screen read as a user reads it: after each fetch the progress line
  is gone and the result starts on a clean line, also when the terminal is made narrower
  while months download. A script whose stderr is a pipe gets no progress frames at all.
- A kernel: a notebook executed with nbclient; the bar is shown while months download
  (and not for a cached fetch), and the saved notebook keeps no progress text in any
  output (``0%| 0/3`` was tqdm's widget fallback).
- The explorer's text fallback: ``FlowExplorer: <summary line>``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbclient import NotebookClient

from aperiodic_jupyter import Client
from aperiodic_jupyter.core.cache import MemoryCache
from aperiodic_jupyter.jupyter.explorer import FlowExplorer
from aperiodic_jupyter.jupyter.panel import summary_line

from .server import API_KEY, FakeApi

ROOT = Path(__file__).resolve().parents[1]

# What any frame of a progress bar shows: tqdm's "3/3 [00:01<00:00, 2.9month/s]" and
# "0%|", or the notebook bar's "1 of 3 months downloaded".
PROGRESS = re.compile(r"\d+%\||\d+/\d+ \[|month/s|s/month|months downloaded|<progress")


# -- a terminal ---------------------------------------------------------------------------


class Screen:
    """Enough of a VT100 to read what IPython's simple prompt and a progress line leave
    on screen: printable text with deferred wrap, CR, LF, backspace, erase in line (K),
    erase in display (J), cursor up (A); other escape sequences are skipped. A resize
    keeps the rows as they are (xterm does not reflow)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: list[list[str]] = [[]]
        self.r = self.c = 0
        self.pending_wrap = False

    def resize(self, width: int) -> None:
        self.width = width
        self.c = min(self.c, width - 1)
        self.pending_wrap = False

    def _row(self) -> list[str]:
        while len(self.rows) <= self.r:
            self.rows.append([])
        return self.rows[self.r]

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                i = self._escape(text, i)
                continue
            if ch == "\r":
                self.c, self.pending_wrap = 0, False
            elif ch == "\n":
                self.r += 1
                self.pending_wrap = False
                self._row()
            elif ch == "\b":
                self.c, self.pending_wrap = max(self.c - 1, 0), False
            elif ch >= " ":
                if self.pending_wrap:
                    self.r, self.c, self.pending_wrap = self.r + 1, 0, False
                row = self._row()
                row.extend(" " * (self.c + 1 - len(row)))
                row[self.c] = ch
                if self.c == self.width - 1:
                    self.pending_wrap = True
                else:
                    self.c += 1
            i += 1

    def _escape(self, text: str, i: int) -> int:
        if text.startswith("\x1b[", i):
            m = re.compile(r"\x1b\[([0-9;?]*)([@-~])").match(text, i)
            if m is None:
                return len(text)
            params, final = m.group(1), m.group(2)
            n = int(params) if params.isdigit() else 0
            row = self._row()
            if final == "K":
                if n == 2:
                    row.clear()
                else:
                    del row[self.c :]
            elif final == "J":
                del row[self.c :]
                del self.rows[self.r + 1 :]
            elif final == "A":
                self.r, self.pending_wrap = max(self.r - max(n, 1), 0), False
            return m.end()
        if text.startswith("\x1b]", i):  # OSC (window title) up to BEL or ST
            end = min((j for j in (text.find("\x07", i), text.find("\x1b\\", i)) if j != -1), default=len(text))
            return end + (2 if text.startswith("\x1b\\", end) else 1)
        return i + 2

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.rows]


class Terminal:
    """IPython (simple prompt) in a pseudo-terminal; everything it writes is recorded
    with the terminal width in effect when it was written."""

    def __init__(self, env: dict[str, str], width: int = 100, height: int = 40) -> None:
        self.master, slave = os.openpty()
        self.height = height
        self._set_size(slave, width)
        self.width = width
        self.chunks: list[tuple[int, bytes]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "IPython", "--simple-prompt", "--no-banner", "--colors=nocolor", "--no-confirm-exit"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=str(ROOT),
            start_new_session=True,
        )
        os.close(slave)

    def _set_size(self, fd: int, width: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", self.height, width, 0, 0))

    def resize(self, width: int) -> None:
        self._set_size(self.master, width)  # the kernel signals SIGWINCH to IPython
        self.width = width

    @property
    def text(self) -> str:
        return b"".join(data for _, data in self.chunks).decode("utf-8", "replace")

    def read_until(self, pattern: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in the terminal output:\n{self.text[-3000:]}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    self.chunks.append((self.width, os.read(self.master, 65536)))
                except OSError:  # the child has gone
                    time.sleep(0.05)

    def drain(self, quiet: float = 0.5) -> None:
        """Read until the program has written nothing for ``quiet`` seconds."""
        while select.select([self.master], [], [], quiet)[0]:
            try:
                self.chunks.append((self.width, os.read(self.master, 65536)))
            except OSError:
                return

    def run(self, line: str, prompt: int) -> None:
        """Type a line and wait for the next prompt."""
        os.write(self.master, line.encode() + b"\r")
        self.read_until(rf"In \[{prompt}\]: ")

    def screen(self) -> list[str]:
        first = self.chunks[0][0] if self.chunks else self.width
        screen = Screen(first)
        for width, data in self.chunks:
            if width != screen.width:
                screen.resize(width)
            screen.feed(data.decode("utf-8", "replace"))
        return screen.lines()

    def close(self) -> None:
        try:
            os.write(self.master, b"exit\r")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self.master)


def output_after(lines: list[str], command: str) -> str:
    """The first screen row after the row where ``command`` was typed."""
    index = max(i for i, line in enumerate(lines) if line.endswith(command))
    return lines[index + 1]


@pytest.fixture
def slow_api():
    # 12 months of 1h bars (~30 kB each) take seconds at this rate: the test narrows the
    # terminal while they download.
    with FakeApi(bandwidth=60_000) as server:
        yield server


def test_a_terminal_keeps_no_progress_text_before_the_result(slow_api, tmp_path):
    env = dict(
        os.environ,
        APERIODIC_CACHE_DIR=str(tmp_path / "cache"),
        APERIODIC_API_KEY=API_KEY,
        APERIODIC_API_URL=slow_api.base_url,
        TERM="xterm",
        PYTHONIOENCODING="utf-8",
    )
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    term = Terminal(env, width=100)
    try:
        term.read_until(r"In \[1\]: ")
        term.run("%load_ext aperiodic_jupyter", 2)
        flows = [
            ("%flow binance BTC 1d 2024-01..2024-03 --no-chart", "Out[2]"),
            ("%flow binance ETH 1d 2024-01..2024-03", "binance-futures perpetual-ETH-USDT:USDT 1d"),
        ]
        for n, (command, _) in enumerate(flows, start=3):
            mark = len(term.text)
            term.run(command, n)
            assert PROGRESS.search(term.text[mark:]), "the months downloaded, so a bar was drawn"

        # The terminal is made narrower while months download: every later frame must
        # fit the new width, and the one drawn before must still be erased.
        narrowed = "%flow binance SOL 1h 2023-01..2023-12"
        os.write(term.master, narrowed.encode() + b"\r")
        term.read_until(r"SOL-USDT:USDT 1h: +\d+%")
        term.drain()  # the first frame is on screen; the months take seconds more
        term.resize(60)
        term.read_until(r"In \[5\]: ", timeout=120)
        after = b"".join(data for width, data in term.chunks if width == 60).decode("utf-8", "replace")
        assert PROGRESS.search(after), f"no frame after the resize:\n{term.text[-3000:]}"

        lines = term.screen()
        shown = "\n".join(lines)
        assert not [line for line in lines if PROGRESS.search(line)], f"stale progress text on screen:\n{shown}"
        for command, first in [*flows, (narrowed, "binance-futures perpetual-SOL-USDT:USDT 1h")]:
            # the result starts at column 0 on the row after the command (an unflushed or
            # missing "\r" would start it after the blanked bar, on the bar's row)
            assert output_after(lines, command).startswith(first), shown
    finally:
        term.close()


def test_a_script_with_stderr_in_a_pipe_gets_no_progress_frames(tmp_path):
    code = (
        "import aperiodic_jupyter as aj\n"
        "df = aj.get_flow('binance', 'BTC', '1d', '2024-01..2024-03', source='demo', progress=True)\n"
        "print(len(df))\n"
    )
    env = dict(os.environ, APERIODIC_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert done.stdout.startswith("91")
    assert done.stderr == ""  # a log would keep every "\r" frame as text


# -- a kernel -----------------------------------------------------------------------------


class RecordingClient(NotebookClient):
    """nbclient, keeping every iopub message per cell: the saved notebook shows only
    the end, the messages show what a user saw while the cell ran."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.messages: dict[int, list[dict]] = {}

    def process_message(self, msg, cell, cell_index):
        self.messages.setdefault(cell_index, []).append(json.loads(json.dumps(msg["content"], default=str)))
        return super().process_message(msg, cell, cell_index)


def progress_displays(messages: list[dict]) -> list[dict]:
    return [m for m in messages if "<progress" in (m.get("data") or {}).get("text/html", "")]


@pytest.fixture(scope="module")
def executed_notebook(tmp_path_factory):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(source)
        for source in (
            "%load_ext aperiodic_jupyter",
            "%flow binance BTC 1d 2024-01..2024-03",
            "df = %flow binance BTC 1d 2024-01..2024-03\nlen(df)",
            "from aperiodic_jupyter.jupyter.explorer import FlowExplorer\nFlowExplorer()",
        )
    ]
    client = RecordingClient(nb, timeout=180, kernel_name="python3", allow_errors=True, store_widget_state=True)
    env = dict(os.environ, APERIODIC_CACHE_DIR=str(tmp_path_factory.mktemp("progress-cache")))
    for name in ("APERIODIC_API_KEY", "APERIODIC_API_URL"):
        env.pop(name, None)
    client.execute(env=env)
    return nb, client.messages


def test_a_kernel_shows_the_bar_while_months_download_and_not_when_cached(executed_notebook):
    nb, messages = executed_notebook
    shown = progress_displays(messages[1])
    assert shown and any("3 of 3 months downloaded" in m["data"]["text/html"] for m in shown)
    (display_id,) = {m["transient"]["display_id"] for m in shown}
    last = [m for m in messages[1] if (m.get("transient") or {}).get("display_id") == display_id][-1]
    assert last["data"] == {"text/plain": ""}  # emptied when the fetch ended
    assert not progress_displays(messages[2])  # cached: no bar
    assert nb.cells[2].outputs[-1]["data"]["text/plain"] == "91"


def test_a_saved_notebook_keeps_no_progress_text(executed_notebook):
    nb, _ = executed_notebook
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = json.dumps(out.get("data", {})) + out.get("text", "")
            assert not PROGRESS.search(text), out
    (panel,) = [out for out in nb.cells[1].outputs if "application/vnd.jupyter.widget-view+json" in out["data"]]
    assert panel["data"]["text/plain"].startswith("binance-futures perpetual-BTC-USDT:USDT 1d")
    (explorer,) = nb.cells[3].outputs
    assert explorer["data"]["text/plain"] == "FlowExplorer: binance-futures BTC 1h 2024-01..2024-03, not loaded"


# -- the explorer's text fallback -----------------------------------------------------------


def test_the_explorer_text_is_its_query_then_its_summary_line():
    w = FlowExplorer("okx", "ETH", "1d", "2024", client=Client("demo", cache_dir=False, memory_cache=MemoryCache()))
    assert repr(w) == "FlowExplorer: okx-perps ETH 1d 2024, not loaded"
    df = w.load()
    line = summary_line(df)
    assert len(line) > 110  # longer than ipywidgets' cut of a repr
    assert repr(w) == f"FlowExplorer: {line}"
    bundle, _ = w._repr_mimebundle_()  # anywidget: (data, metadata)
    assert bundle["text/plain"] == f"FlowExplorer: {line}"
    assert "application/vnd.jupyter.widget-view+json" in bundle  # still a live widget
    data, _ = InteractiveShell.instance().display_formatter.format(w)
    assert data["text/plain"] == f"FlowExplorer: {line}"
