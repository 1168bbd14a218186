"""Live panels and the cells that made them: what stops a live panel besides its Stop
button.

- Running the cell again stops the panel that cell made (the cell is known by the id
  JupyterLab and Notebook send with each execution, else by its text).
- The kernel's interrupt stops every live panel: while a cell runs, IPython reports
  the ``KeyboardInterrupt`` after the cell; while the kernel is idle, ipykernel
  ignores SIGINT, so a handler of ours takes its place then (see :func:`watch_interrupts`).
- :func:`stop_all_panels` stops them all (the extension's unload does).

Panels are held weakly: a panel nobody holds is stopped by its flow's own ``atexit``.
"""

from __future__ import annotations

import signal
import sys
import threading
import weakref
from typing import Any, Protocol

__all__ = ["adopt", "stop_all_panels", "cell_key", "install", "uninstall", "watch_interrupts"]


class _Stoppable(Protocol):
    def stop(self, timeout: float = 5.0) -> None: ...


_lock = threading.Lock()
_by_cell: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_panels: weakref.WeakSet[Any] = weakref.WeakSet()
_current: dict[str, str | None] = {"cell": None}


def cell_key() -> str | None:
    """The cell running now: its id when the front end sent one, else its text."""
    return _current["cell"]


def adopt(panel: _Stoppable, cell: str | None) -> None:
    """Remember ``panel`` as ``cell``'s live panel (``None``: no cell is known)."""
    with _lock:
        _panels.add(panel)
        if cell is not None:
            _by_cell[cell] = panel


def stop_all_panels() -> None:
    """Stop every live panel of this kernel."""
    with _lock:
        panels = list(_panels)
    for panel in panels:
        panel.stop()


def _stop_cell(cell: str) -> None:
    with _lock:
        panel = _by_cell.pop(cell, None)
    if panel is not None:
        panel.stop()


# -- IPython events -----------------------------------------------------------------------


def _pre_run_cell(info: Any) -> None:
    key = getattr(info, "cell_id", None) or getattr(info, "raw_cell", None)
    _current["cell"] = key
    if key is not None:
        _stop_cell(key)


def _post_run_cell(result: Any) -> None:
    _current["cell"] = None
    if isinstance(getattr(result, "error_in_exec", None), KeyboardInterrupt):
        stop_all_panels()


def install(shell: Any) -> None:
    """Follow the cells of ``shell`` (an IPython shell): re-runs and interrupts."""
    events = shell.events
    if _pre_run_cell not in events.callbacks["pre_run_cell"]:
        events.register("pre_run_cell", _pre_run_cell)
    if _post_run_cell not in events.callbacks["post_run_cell"]:
        events.register("post_run_cell", _post_run_cell)


def uninstall(shell: Any) -> None:
    for name, callback in (("pre_run_cell", _pre_run_cell), ("post_run_cell", _post_run_cell)):
        if callback in shell.events.callbacks[name]:
            shell.events.unregister(name, callback)


# -- the kernel's interrupt while idle ------------------------------------------------------


def watch_interrupts(shell: Any = None) -> bool:
    """Make the kernel's interrupt stop the live panels while the kernel is idle too.

    ipykernel ignores SIGINT between requests and, around each one, installs Python's
    own handler and then puts back the one it had (``kernel.saved_sigint_handler``).
    Replacing that saved handler makes ours the one in place whenever the kernel is
    idle; during a request the usual ``KeyboardInterrupt`` reaches the cell (and
    :func:`_post_run_cell` stops the panels). The stopping runs in a thread, so the
    handler returns at once. ``shell``: IPython's, found when not given. Returns
    ``False`` where there is no such kernel (a terminal IPython, a script): nothing is
    changed there."""
    if shell is None:
        ipython = sys.modules.get("IPython")  # never imported: no IPython runs
        shell = ipython.get_ipython() if ipython is not None else None
    kernel = getattr(shell, "kernel", None)
    previous = getattr(kernel, "saved_sigint_handler", None)
    if kernel is None or previous is None or threading.current_thread() is not threading.main_thread():
        return False
    if getattr(previous, "_aperiodic_live", False):
        return True

    def on_interrupt(signum: int, frame: Any) -> None:
        threading.Thread(target=stop_all_panels, name="aperiodic-live-interrupt", daemon=True).start()
        if callable(previous) and previous not in (signal.default_int_handler,):
            previous(signum, frame)

    on_interrupt._aperiodic_live = True  # type: ignore[attr-defined]
    kernel.saved_sigint_handler = on_interrupt
    return True
