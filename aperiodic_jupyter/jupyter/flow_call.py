"""``aperiodic_jupyter.flow("binance BTC 1h 2024-01..2024-03")``: the ``%flow`` line anywhere.

The magic's counterpart for marimo, scripts and any Python without IPython magics: the
same grammar (:mod:`.flow_line`), the same fetch, and the same panel, returned instead
of displayed. The panel is one anywidget: the last value of a cell shows it; in marimo,
``mo.ui.anywidget(flow(...))`` also re-runs the cells that read its ``brushed`` rows.

Nothing here needs IPython: :func:`plan` and :func:`fetch` run a parsed line, and
``-o NAME`` (binding a name) and ``--set-key`` (a hidden prompt) work where IPython runs
and are refused in one line elsewhere.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..core.client import default_client
from ..core.combine import combine, combine_tables, fetch_all
from ..core.errors import QueryError
from ..core.output import convert, provenance
from .flow_line import FlowLine, parse_flow_line
from .namespace import ipython_namespace
from .panel_choice import PRICE_PANELS

__all__ = ["flow", "plan", "fetch"]


def flow(line: str) -> Any:
    """Run a ``%flow`` line (everything after ``%flow``) and return what it makes.

    >>> panel = flow("binance BTC 1h 2024-01..2024-03")          # the flow panel
    >>> panel = flow("binance,okx BTC 1h 2024-11")               # venues side by side
    >>> df = flow("binance BTC 1m 2024-01-15 -c volumes --no-chart")

    Returns:
        The flow panel (:class:`~.panel.FlowPanel`; several venues or symbols are drawn
        as one comparison view). With ``--no-chart`` or another metric (``-m``): the
        frame (pandas, or ``-f polars``/``-f arrow``, with the ``-c`` columns). With
        ``--dry-run``: the months needed and which are cached. With ``--widget``: the
        explorer, prefilled.

    Raises:
        QueryError: one line, for a bad line, or ``-o``/``--set-key`` where no IPython
            runs (assign the result instead; ``aperiodic_jupyter.set_api_key(key)``).
    """
    request = parse_flow_line(line)
    namespace = ipython_namespace()
    if request.set_key:
        raise QueryError(
            "--set-key prompts in IPython only; here call aperiodic_jupyter.set_api_key(key) or set APERIODIC_API_KEY"
        )
    if request.out and namespace is None:
        raise QueryError(f"-o binds a name in IPython only; here assign the result: {request.out} = flow(...)")
    if request.dry_run:
        value: Any = plan(request)
        shown = value
    elif request.widget:
        from .explorer import FlowExplorer

        value = shown = FlowExplorer.from_query(request.queries[0], source=request.source, panels=request.panels)
    else:
        value, full = fetch(request)
        shown = value if full is None else _panel(full, request.panels, namespace)
    if request.out and namespace is not None:
        namespace[request.out] = value
    return shown


def plan(request: FlowLine) -> pd.DataFrame:
    """The months each query needs and whether they are cached (``--dry-run``)."""
    client = default_client(request.source)
    plans = []
    for q in request.queries:
        table = client.plan(q)
        table.insert(0, "symbol", q.symbol)
        plans.append(table)
    return pd.concat(plans, ignore_index=True)


def fetch(request: FlowLine) -> tuple[Any, pd.DataFrame | None]:
    """``(the frame asked for, the frame to draw)``: the first in the ``-f`` output with
    the ``-c`` columns; the second the whole pandas frame when a chart is drawn (the
    flow metric without ``--no-chart``), else ``None``."""
    charted = request.chart and request.metric == "flow"
    # Price comes along when a price panel is drawn; Polars and Arrow come from the
    # core's tables without a pandas copy unless a chart needs one.
    output = "pandas" if charted or request.output == "pandas" else "arrow"
    frames = fetch_all(
        default_client(request.source),
        request.queries,
        refresh=request.refresh,
        progress=True,
        with_price=charted and bool(PRICE_PANELS & set(request.panels)),
        output=output,
    )
    if output == "pandas":
        full = combine(frames, request.skipped) if len(frames) > 1 else frames[0]
        asked = _select(full, request.columns)
        if request.output != "pandas":
            asked = convert(_arrow(asked), dict(full.attrs), request.output)
        return asked, full if charted else None
    table, attrs = combine_tables(frames, request.skipped) if len(frames) > 1 else (frames[0], provenance(frames[0]))
    return convert(_select(table, request.columns), attrs, request.output), None


def _panel(full: pd.DataFrame, panels: tuple[str, ...], namespace: dict[str, Any] | None) -> Any:
    from .panel import FlowPanel

    return FlowPanel(full, panels=panels, namespace=namespace)


def _select(frame: Any, columns: tuple[str, ...] | None) -> Any:
    """``frame`` (pandas or Arrow) with ``time``, ``exchange``, ``symbol`` and the ``-c`` columns."""
    if columns is None:
        return frame
    names = list(frame.columns) if isinstance(frame, pd.DataFrame) else frame.column_names
    keep = [c for c in ("time", "exchange", "symbol") if c in names] + [c for c in columns if c in names]
    if not isinstance(frame, pd.DataFrame):
        return frame.select(keep)
    out = frame[keep]
    out.attrs = dict(frame.attrs)
    return out


def _arrow(df: pd.DataFrame) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(df, preserve_index=False)
