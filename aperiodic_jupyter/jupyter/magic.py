"""The ``%flow`` line magic: parse → plan → fetch → show.

    %load_ext aperiodic_jupyter
    %flow binance-futures BTC 1h 2024-01..2024-03          # shows the flow panel
    df = %flow binance BTC 1h 2024-01..2024-03             # binds a plain DataFrame
    df = %flow binance BTC 1m 2024-01 -f polars            # a Polars DataFrame (-f arrow: a pyarrow.Table)
    %flow okx BTC,ETH 15m 7d -o flows                      # binds and shows
    %config Aperiodic.api_key = os.environ["MY_KEY"]       # or: %flow --set-key
    p = %flow binance BTC 1m live                          # follows the market; p.df grows, Stop stops

The line grammar is :mod:`.flow_line`; settings are the core's ``Aperiodic``
configurable, which this extension registers with IPython so ``%config`` reaches it.
The magic fetches through :func:`~aperiodic_jupyter.default_client`; it never fetches
on its own (a live view's history comes through :func:`~aperiodic_jupyter.stream_flow`,
whose own client a Stop can cancel). Every error ends in one line (an IPython
``UsageError``), never a traceback.
"""

from __future__ import annotations

import dis
import getpass
import re
import sys
from typing import Any

import pandas as pd
from IPython.core.completer import CompletionContext, SimpleCompletion, SimpleMatcherResult, context_matcher
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from ..core.client import default_client
from ..core.combine import combine, combine_tables, fetch_all
from ..core.errors import AperiodicError
from ..core.output import convert, provenance, with_provenance
from ..core.query import INTERVALS
from ..core.settings import settings
from ..core.venues import EXCHANGE_ALIASES, EXCHANGES, resolve_exchange
from . import live_cells
from .flow_line import FLAGS, GRAMMAR, LIVE, OPTION_VALUES, FlowLine, parse_flow_line
from .panel_choice import PRICE_PANELS

__all__ = ["FlowMagics", "load_ipython_extension", "unload_ipython_extension"]


@magics_class
class FlowMagics(Magics):
    """The ``%flow`` magic. Its settings are ``%config Aperiodic.<name>``."""

    @line_magic
    def flow(self, line: str) -> Any:
        try:
            assigned = _assignment()
            if assigned == "unpack":
                raise UsageError("assign %flow to one name (df = %flow ...); it returns one frame, not a tuple")
            return self._run(line, assigned=assigned == "store")
        except AperiodicError as exc:
            raise UsageError(str(exc)) from None

    flow.__doc__ = "Fetch taker-flow data and show it.\n\n" + GRAMMAR

    def _run(self, line: str, *, assigned: bool) -> Any:
        request = parse_flow_line(line)  # parse
        if request.set_key:
            return _set_key()
        if request.widget:
            from .explorer import FlowExplorer

            q = request.queries[0]
            live = {"live": True, "history": request.history, "speed": request.speed} if request.live else {}
            explorer = FlowExplorer.from_query(q, source=request.source, panels=request.panels, **live)
            return self._bind(request, explorer, show=True, assigned=assigned)
        if request.live:
            return self._live(request, assigned=assigned)
        if request.dry_run:  # plan
            return self._bind(request, _plan(request), show=False, assigned=assigned)
        # The chart reads flow against price: fetch price too when a price panel is drawn.
        charted = not assigned and request.chart and request.metric == "flow"
        frames = _fetch(request, with_price=charted and bool(PRICE_PANELS & set(request.panels)))  # fetch
        return self._show(request, frames, assigned=assigned)  # show

    @property
    def _namespace(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def _bind(self, request: FlowLine, value: Any, *, show: bool, assigned: bool) -> Any:
        """Bind ``-o``; return ``value`` for an assignment or the cell's result, or
        display it when it is a widget."""
        if request.out:
            self._namespace[request.out] = value
        if assigned:
            return value
        if show:
            display(value)
            return None
        return None if request.out else value

    def _live(self, request: FlowLine, *, assigned: bool) -> Any:
        """A live panel, shown (bound too, for ``p = %flow … live`` and ``-o``); the
        panel this cell showed before is stopped first."""
        from ..core.live import stream_flow
        from .live_panel import LivePanel
        from .panel_choice import PRICE_PANELS

        for line in request.skipped:
            print(f"skipped {line}")
        q = request.queries
        flow = stream_flow(
            list(dict.fromkeys(x.exchange for x in q)),
            list(dict.fromkeys(x.symbol for x in q)),
            q[0].interval,
            history=request.history,
            with_price=bool(PRICE_PANELS & set(request.panels)),
            source=request.source,
            speed=request.speed,
        )
        panel = LivePanel(flow, panels=request.panels, namespace=self._namespace)
        live_cells.adopt(panel, live_cells.cell_key())
        if self.shell is not None:
            live_cells.watch_interrupts(self.shell)
        if request.out:
            self._namespace[request.out] = panel
        display(panel)
        return panel if assigned else None

    def _show(self, request: FlowLine, frames: list[Any], *, assigned: bool) -> Any:
        for line in request.skipped:  # the venues that do not list a symbol; the rest loaded
            print(f"skipped {line}")
        result, full = _result(request, frames)
        if assigned or not request.chart or request.metric != "flow":
            if request.metric != "flow" and request.chart and not assigned:
                from .panel import summary_line

                print(summary_line(_rows_and_attrs(full)) + " (charts are drawn for the flow metric only)")
            return self._bind(request, result, show=False, assigned=assigned)
        if request.out:
            self._namespace[request.out] = result
        display(_panels(frames, full, request.panels, self._namespace))
        return None


def _set_key() -> None:
    settings.api_key = getpass.getpass("Aperiodic API key (hidden): ")
    print("API key set for this kernel." if settings.api_key else "API key cleared.")


def _plan(request: FlowLine) -> pd.DataFrame:
    client = default_client(request.source)
    plans = []
    for q in request.queries:
        plan = client.plan(q)
        plan.insert(0, "symbol", q.symbol)
        plans.append(plan)
    return pd.concat(plans, ignore_index=True)


def _fetch(request: FlowLine, *, with_price: bool = False) -> list[Any]:
    """One frame per query: pandas DataFrames, or for ``-f polars``/``-f arrow`` the
    core's Arrow tables (provenance in their schema metadata), converted once in
    :func:`_result`."""
    output = "pandas" if request.output == "pandas" else "arrow"
    client = default_client(request.source)
    return fetch_all(client, request.queries, refresh=request.refresh, progress=True, with_price=with_price, output=output)


def _result(request: FlowLine, frames: list[Any]) -> tuple[Any, Any]:
    """The frame to bind or return (in the output ``-f`` asked for, with the ``-c``
    columns) and the whole frame the view draws (pandas, or an Arrow table that
    :func:`_pandas` converts only if a view is drawn)."""
    if request.output == "pandas":
        full = combine(frames, request.skipped) if len(frames) > 1 else frames[0]
        return _select(full, request.columns), full
    if len(frames) > 1:
        table, attrs = combine_tables(frames, request.skipped)
    else:
        table, attrs = frames[0], provenance(frames[0])
    # Polars and Arrow come from the table without a copy; pandas is made for a view only.
    return convert(_select(table, request.columns), attrs, request.output), with_provenance(table, attrs)


def _select(frame: Any, columns: tuple[str, ...] | None) -> Any:
    """``frame`` (pandas or Arrow) with ``time``, ``symbol`` and the ``-c`` columns."""
    if columns is None:
        return frame
    names = list(frame.columns) if isinstance(frame, pd.DataFrame) else frame.column_names
    keep = [c for c in ("time", "symbol") if c in names] + [c for c in columns if c in names]
    if not isinstance(frame, pd.DataFrame):
        return frame.select(keep)
    out = frame[keep]
    out.attrs = dict(frame.attrs)
    return out


def _pandas(frame: Any) -> pd.DataFrame:
    """The pandas view of a frame from :func:`_fetch` (the panel, its export and its
    brush work on pandas): a pandas frame as it is, an Arrow table converted."""
    return frame if isinstance(frame, pd.DataFrame) else convert(frame, provenance(frame), "pandas")


def _rows_and_attrs(frame: Any) -> pd.DataFrame:
    """What a summary line reads (the row count and the provenance), without converting
    an Arrow table's columns: a frame of no columns and as many rows."""
    if isinstance(frame, pd.DataFrame):
        return frame
    shell = pd.DataFrame(index=pd.RangeIndex(frame.num_rows))
    shell.attrs = provenance(frame)
    return shell


def _panels(frames: list[Any], full: Any, panels: tuple[str, ...], namespace: dict[str, Any]) -> Any:
    """One panel; the venue comparison for several venues; a tab per symbol otherwise.
    Only what is drawn is converted to pandas (``-f polars``/``-f arrow``)."""
    from .panel import FlowPanel

    queries = [provenance(f)["query"] for f in frames]
    if len({q["exchange"] for q in queries}) > 1:
        return FlowPanel(_pandas(full), panels=panels, namespace=namespace)
    views = [FlowPanel(_pandas(f), panels=panels, namespace=namespace) for f in frames]
    if len(views) == 1:
        return views[0]
    import ipywidgets as widgets

    tabs = widgets.Tab(children=views)
    for i, q in enumerate(queries):
        tabs.set_title(i, q["symbol"].split("-")[1])
    return tabs


def _assignment() -> str | None:
    """How the magic's result is used: ``"store"`` for ``df = %flow ...`` (also
    ``x: T = ...``, ``obj.attr = ...``, ``d[k] = ...``, inside a function, in a
    ``%%capture`` cell), ``"unpack"`` for ``a, = %flow ...``, ``None`` for a bare line.

    IPython turns ``df = %flow ...`` into ``df = get_ipython().run_line_magic(...)``;
    the instruction after that call in the caller's code is then a store (or an
    unpack). A bare ``%flow`` is followed by a print or a pop instead. The tests run
    every form above in a real shell, so a Python that changes this shows up there."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != "run_line_magic":
        frame = frame.f_back  # type: ignore[assignment]
    cell = frame.f_back if frame is not None else None
    if cell is None:
        return None
    for ins in dis.get_instructions(cell.f_code):
        if ins.offset <= cell.f_lasti or ins.opname in _TARGET_LOADS or ins.opname.startswith("LOAD_"):
            continue  # `obj.attr = ` and `d[k] = ` load their target after the call
        if ins.opname.startswith("STORE_"):
            return "store"
        return "unpack" if ins.opname.startswith("UNPACK_") else None
    return None


_TARGET_LOADS = frozenset({"BINARY_SUBSCR", "EXTENDED_ARG", "CACHE", "NOP"})


# -- completion --------------------------------------------------------------------------

_SHORT = {"-t": "--timestamp", "-s": "--source", "-c": "--columns", "-m": "--metric", "-p": "--panels", "-f": "--frame"}
#: Live options take a number, not a word from a list: examples to complete with.
_LIVE_VALUES = {"--history": ["360", "6h", "1d", "0"], "--speed": ["60", "600"]}
_OPTION_VALUES = {**OPTION_VALUES, **_LIVE_VALUES, **{short: OPTION_VALUES[full] for short, full in _SHORT.items()}}
_MAGIC_LINE = re.compile(r"^\s*(?:[\w, :.\[\]'\"]+=\s*)?%flow\s(.*)$")


def _range_examples() -> list[str]:
    today = pd.Timestamp.now(tz="UTC").tz_localize(None)
    this = today.strftime("%Y-%m")
    three_back = (today.to_period("M") - 2).strftime("%Y-%m")
    return [this, f"{three_back}..{this}", "7d", "30d", today.strftime("%Y"), "today", LIVE]


@context_matcher()
def flow_matcher(context: CompletionContext) -> SimpleMatcherResult:
    """Completes exchanges, symbols, intervals, ranges and options after ``%flow``."""
    match = _MAGIC_LINE.match(context.text_until_cursor)
    if not match:
        return {"completions": [], "suppress": False}
    before = match.group(1)
    words = before.split()
    current = "" if before.endswith((" ", "\t")) or not words else words.pop()
    candidates: list[str]
    if words and words[-1] in _OPTION_VALUES:
        candidates = _OPTION_VALUES[words[-1]]
    elif current.startswith("-"):
        candidates = FLAGS
    else:
        positional = [w for i, w in enumerate(words) if not w.startswith("-") and not (i and words[i - 1] in _OPTION_VALUES)]
        candidates = _positional_candidates(positional, current)
    if "," in current and len(words) == 1:  # completing the second of BTC,ET
        head, _, tail = current.rpartition(",")
        matches = [f"{head},{c}" for c in candidates if c.lower().startswith(tail.lower())]
    else:
        matches = [c for c in candidates if c.lower().startswith(current.lower())]
    # Replace the whole current word, whatever IPython's own token splitting said.
    offset = len(current) - len(context.token)
    completions = [SimpleCompletion(text=m[offset:] if offset > 0 else m, type="flow") for m in matches[:200]]
    return {"completions": completions, "suppress": bool(completions)}


def _positional_candidates(positional: list[str], current: str) -> list[str]:
    n = len(positional)
    if n == 0:
        return list(EXCHANGES) + sorted(EXCHANGE_ALIASES)
    if n == 1:
        from ..core.symbols import base_symbols

        try:
            return base_symbols(resolve_exchange(positional[0]))
        except AperiodicError:
            return []
    if n == 2:
        return list(INTERVALS)
    if n == 3:
        return _range_examples()
    return FLAGS


# -- extension hooks ---------------------------------------------------------------------


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(FlowMagics(shell=ipython))
    # %config finds configurables by class name: the settings object is "Aperiodic".
    settings.update_config(ipython.config)
    if settings not in ipython.configurables:
        ipython.configurables.append(settings)
    if flow_matcher not in ipython.Completer.custom_matchers:
        ipython.Completer.custom_matchers.append(flow_matcher)
    live_cells.install(ipython)  # re-running a cell, or the kernel's interrupt, stops its live panel


def unload_ipython_extension(ipython: Any) -> None:
    if flow_matcher in ipython.Completer.custom_matchers:
        ipython.Completer.custom_matchers.remove(flow_matcher)
    live_cells.uninstall(ipython)
    live_cells.stop_all_panels()
