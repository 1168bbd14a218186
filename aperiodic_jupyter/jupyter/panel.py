"""The flow panel: summary line, linked Altair views and export buttons for one frame.

Both front ends show exactly this (the ``%flow`` magic and the explorer widget), so it
is built once. The chart is an ``alt.JupyterChart`` in offline mode (Vega is inlined
from vl-convert: no CDN), and exports travel to the browser as binary buffers.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import altair as alt
import anywidget
import ipywidgets as widgets
import pandas as pd
import traitlets

from ..core.price import price_status
from .charts import BRUSH, MAX_POINTS, brushed_range, flow_chart, parse_panels
from .export import MIME, chart_png, chart_svg, to_csv_bytes, to_parquet_bytes
from .labels import source_label
from .namespace import check_variable_name
from .text_fallback import TextFallback

__all__ = ["FlowPanel", "ExportBar", "summary_line", "js_path"]

_offline_done = False


def js_path(name: str) -> Path:
    """A front-end file: shipped in ``static/`` inside the wheel, read from the repo's
    ``js/`` folder in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "static" / name, package.parent / "js" / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"front-end file {name} is missing from this installation")


def _enable_offline() -> None:
    global _offline_done
    if not _offline_done:
        alt.JupyterChart.enable_offline()
        _offline_done = True


def summary_line(df: pd.DataFrame) -> str:
    """One line: what, when, how many rows, what part of the range the data covers
    when it is less than asked, from where, cache hits, demo label."""
    a = df.attrs
    if "queries" in a:
        return _combined_summary(df)
    q = a.get("query", {})
    months = a.get("months", {})
    cached = len(a.get("from_cache", []))
    covers = a.get("coverage", {}).get("summary")
    parts = [
        f"{q.get('exchange', '?')} {q.get('symbol', '?')} {q.get('interval', '?')}",
        f"{q.get('start', '?')}..{q.get('end', '?')} UTC",
        f"{len(df):,} rows",
        # Right after the row count: a short frame must not read as the whole range.
        *([covers] if covers else []),
        f"source: {a.get('source', '?')}",
        f"cache: {cached} of {len(months)} months" if months else "cache: -",
    ]
    no_price = price_status(a)
    if no_price:  # the chart is drawn without price: say why, in the same line
        parts.append(no_price)
    if source_label(a):  # simulated or preview data says so on every view
        parts.append(str(source_label(a)))
    return " · ".join(parts)


def _combined_summary(df: pd.DataFrame) -> str:
    """The summary of several venues or symbols in one frame (see core.combine)."""
    a = df.attrs
    qs = a["queries"]
    venues = ", ".join(dict.fromkeys(q["exchange"] for q in qs))
    symbols = ", ".join(dict.fromkeys(q["symbol"] for q in qs))
    parts = [f"{venues} · {symbols} {qs[0]['interval']}", f"{qs[0]['start']}..{qs[0]['end']} UTC", f"{len(df):,} rows"]
    for key, part in a.get("parts", {}).items():
        covers = part.get("coverage", {}).get("summary")
        if covers:
            parts.append(f"{key} {covers}")
    parts.append(f"source: {a.get('source', '?')}")
    parts += [f"skipped {s}" for s in a.get("skipped", [])]
    if source_label(a):  # simulated or preview data says so on every view
        parts.append(str(source_label(a)))
    return " · ".join(parts)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


class ExportBar(anywidget.AnyWidget):
    """CSV / Parquet / PNG / SVG downloads and "to variable", for one :class:`FlowPanel`."""

    _esm = js_path("export_bar.js")
    _css = js_path("styles.css")
    has_brush = traitlets.Bool(False).tag(sync=True)
    variable = traitlets.Unicode("flow_df").tag(sync=True)

    def __init__(self, panel: FlowPanel, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._panel = panel
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        try:
            if content.get("type") == "export":
                raw, filename, mime = self._panel.export_bytes(content["format"], content.get("scope", "full"))
                self.send({"type": "file", "filename": filename, "mime": mime, "size": len(raw)}, buffers=[raw])
            elif content.get("type") == "variable":
                name = self._panel.to_variable(str(content.get("name", "")), content.get("scope", "full"))
                self.send({"type": "status", "text": f"bound to {name}"})
        except Exception as exc:  # shown in the toolbar, never lost in a log
            self.send({"type": "status", "text": f"error: {exc}"})


class FlowPanel(TextFallback, widgets.VBox):
    """Summary, linked views and export buttons for one frame.

    Attributes:
        df: the frame shown.
        panels: the panels drawn (names from ``aperiodic_jupyter.jupyter.charts.PANELS``).
        chart: the ``alt.JupyterChart``; its ``selections.brush`` is the time brush.
        brush_range: ``(start, end)`` UTC timestamps of the brush, or ``None``.
    """

    #: Read-only, as Altair's selections are: the chart sets it, a write would do nothing.
    brush_range = traitlets.Any(None, read_only=True)

    def __init__(
        self,
        df: pd.DataFrame,
        *,
        panels: str | list[str] | tuple[str, ...] | None = None,
        max_points: int = MAX_POINTS,
        namespace: dict[str, Any] | None = None,
        show_summary: bool = True,
        **kwargs: Any,
    ) -> None:
        _enable_offline()
        self.df = df
        self._namespace = namespace
        self.panels = parse_panels(panels)
        self.spec = _chart(df, self.panels, max_points)
        # Canvas, not SVG: Vega numbers SVG clip paths from 1 in every chart, so a second
        # chart on the page would clip its marks to the first chart's shapes.
        self.chart = alt.JupyterChart(self.spec, embed_options={"renderer": "canvas"})
        label = summary_line(df)
        demo = df.attrs.get("simulated")
        self.header = widgets.HTML(
            f'<div class="apj-summary{" apj-demo" if demo else ""}" style="font:13px sans-serif">{html.escape(label)}</div>'
        )
        self.exports = ExportBar(self, variable=_default_variable(df))
        children = [self.header, self.chart, self.exports] if show_summary else [self.chart, self.exports]
        super().__init__(children=children, **kwargs)
        self.chart.selections.observe(self._on_brush, [BRUSH])

    def __repr__(self) -> str:
        # What a terminal, a saved notebook's text fallback or nbconvert shows instead
        # of ipywidgets' "FlowPanel(children=...)".
        return summary_line(self.df)

    def _on_brush(self, change: dict[str, Any]) -> None:
        sel = change["new"]
        self.set_trait("brush_range", brushed_range(getattr(sel, "value", None)))
        self.exports.has_brush = self.brush_range is not None

    @property
    def brushed(self) -> pd.DataFrame:
        """The rows inside the brush (the whole frame when nothing is brushed)."""
        if self.brush_range is None:
            return self.df
        lo, hi = self.brush_range
        out = self.df[(self.df["time"] >= lo) & (self.df["time"] <= hi)].reset_index(drop=True)
        out.attrs = {**self.df.attrs, "brushed": [lo.isoformat(), hi.isoformat()]}
        return out

    def _frame(self, scope: str) -> pd.DataFrame:
        if scope == "brush":
            if self.brush_range is None:
                raise ValueError("nothing is brushed: drag across the bottom strip first")
            return self.brushed
        return self.df

    def filename(self, ext: str, scope: str = "full") -> str:
        q = _query_of(self.df.attrs)
        if scope == "brush" and self.brush_range is not None:
            span = f"{self.brush_range[0]:%Y%m%dT%H%M}-{self.brush_range[1]:%Y%m%dT%H%M}"
        else:
            span = f"{q.get('start', '')}_{q.get('end', '')}"
        stem = "_".join(_safe(str(x)) for x in (q.get("exchange", "flow"), q.get("symbol", ""), q.get("interval", ""), span) if x)
        return f"{stem}.{ext}"

    def export_bytes(self, fmt: str, scope: str = "full") -> tuple[bytes, str, str]:
        """``(bytes, filename, mime type)`` for ``csv``, ``parquet``, ``png`` or ``svg``."""
        if fmt == "csv":
            raw = to_csv_bytes(self._frame(scope))
        elif fmt == "parquet":
            raw = to_parquet_bytes(self._frame(scope))
        elif fmt in ("png", "svg"):
            spec = self.spec if scope != "brush" else _chart(self._frame(scope), self.panels, MAX_POINTS)
            raw = chart_png(spec) if fmt == "png" else chart_svg(spec)
        else:
            raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(MIME)}")
        return raw, self.filename(fmt, scope), MIME[fmt]

    def to_variable(self, name: str, scope: str = "full") -> str:
        """Bind the frame (or the brushed slice) to ``name`` in the kernel's namespace."""
        check_variable_name(name)
        namespace = self._namespace
        if namespace is None:
            from IPython import get_ipython

            shell = get_ipython()
            if shell is None:
                raise RuntimeError("no IPython kernel to bind a variable in")
            namespace = shell.user_ns
        namespace[name] = self._frame(scope).copy()
        return name


def _chart(df: pd.DataFrame, panels: tuple[str, ...], max_points: int) -> Any:
    """The venue comparison for a frame of several venues, else the flow panels."""
    if "exchange" in df.columns and df["exchange"].nunique() > 1:
        from .compare_chart import venue_chart

        return venue_chart(df, max_points=max_points)
    return flow_chart(df, panels=panels, max_points=max_points)


def _query_of(attrs: dict[str, Any]) -> dict[str, Any]:
    """The query a frame answers; for several venues or symbols, one that names them all."""
    if "query" in attrs or "queries" not in attrs:
        return dict(attrs.get("query", {}))
    qs = attrs["queries"]
    return {**qs[0], "exchange": "+".join(dict.fromkeys(q["exchange"] for q in qs)), "symbol": "+".join(dict.fromkeys(q["symbol"] for q in qs))}


def _default_variable(df: pd.DataFrame) -> str:
    q = _query_of(df.attrs)
    base = str(q.get("symbol", "flow")).split("-")[1] if "-" in str(q.get("symbol", "")) else "flow"
    name = re.sub(r"\W", "_", f"{base}_{q.get('interval', '')}".lower()).strip("_")
    return name if name.isidentifier() else "flow_df"
