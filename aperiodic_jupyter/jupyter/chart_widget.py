"""One anywidget that draws a frame: summary line, chart with its brush, export bar.

The flow panel is this and nothing more; the explorer is this plus its form. Being one
anywidget (no ipywidgets container) is what lets the same object work in JupyterLab,
Notebook 7, Voila, VS Code and marimo.

What travels, and what a saved notebook keeps (see :mod:`.chart_data` and
:mod:`.vega_library`): the Vega-Lite spec without its rows, the rows once as packed
binary columns, and a reference to the kernel's one :class:`VegaLibrary` (Vega and
``js/chart_view.js``, the page's code for all of this). Traits the
page writes (``brush``, ``drawn``, ``to_python``) are what marimo watches: a change
written by the page re-runs the cells that use the widget, while a change made in
Python (a load finishing in a worker thread) does not. So the page answers every new
chart by writing ``drawn``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import numpy as np
import pandas as pd
import traitlets

from .chart_data import pack_records, pack_spec
from .charts import FLOW_DATASET, MAX_POINTS, flow_chart
from .export import MIME, chart_png, chart_svg, check_image, to_csv_bytes, to_parquet_bytes
from .namespace import check_variable_name, ipython_namespace
from .summary import summary_line
from .vega_library import VegaLibrary, js_path, library_code, shared_library

__all__ = ["ChartWidget", "chart_for"]

#: A tail longer than this share of the chart's rows is drawn as a new chart instead.
_TAIL_SHARE = 0.25


def chart_for(df: pd.DataFrame, panels: tuple[str, ...], max_points: int = MAX_POINTS) -> Any:
    """The view of a frame: the comparison view when it holds several venues or
    symbols (one series each), else the flow panels."""
    series = [c for c in ("exchange", "symbol") if c in df.columns]
    if series and len(df[series].drop_duplicates()) > 1:
        from .compare_chart import venue_chart

        return venue_chart(df, max_points=max_points)
    return flow_chart(df, panels=panels, max_points=max_points)


class ChartWidget(anywidget.AnyWidget):
    """A frame's chart, brush and exports, as one widget. Subclasses give ``_esm``.

    Attributes:
        df: the frame shown, or ``None`` before anything is drawn.
        spec: the Altair chart drawn (``None`` before anything is drawn).
        brush_range: ``(start, end)`` UTC timestamps of the brush, or ``None``; set by
            the page, read-only here (as Altair's selections are).
        exported: the frame the export bar's "to Python" button last handed over (the
            whole frame or the brushed rows), or ``None``.
    """

    _css = js_path("styles.css")

    # Kernel -> page. The rows travel packed (chart_data), the spec without them,
    # gzip'd: as JSON in a saved notebook it would be indented line by line, 2-3x longer.
    chart_spec = traitlets.Bytes(b"").tag(sync=True)
    data = traitlets.Bytes(b"").tag(sync=True)
    data_layout: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    #: Rows that replace the chart's rows from ``tail_layout["from"]`` on (append).
    tail = traitlets.Bytes(b"").tag(sync=True)
    tail_layout = traitlets.Dict().tag(sync=True)
    #: Counts the charts sent; the page draws anew when it changes.
    charts = traitlets.Int(0).tag(sync=True)
    summary = traitlets.Unicode("").tag(sync=True)
    simulated = traitlets.Bool(False).tag(sync=True)
    show_summary = traitlets.Bool(True).tag(sync=True)
    variable = traitlets.Unicode("flow_df").tag(sync=True)
    #: True where "to variable" can bind a name (IPython); else the bar offers "to Python".
    has_namespace = traitlets.Bool(False).tag(sync=True)
    vega_version = traitlets.Unicode("").tag(sync=True)
    #: The export's file name without its extension, per scope (``{"full": ...,
    #: "brush": ...}``, the brush's while brushed): the page names the PNG and SVG it
    #: renders and downloads with it, kernel or not.
    file_stems: traitlets.Dict[str, str] = traitlets.Dict().tag(sync=True)
    _vega = traitlets.Instance(VegaLibrary, allow_none=True).tag(sync=True, **widgets.widget_serialization)

    # Page -> kernel: the writes marimo re-runs dependent cells on.
    #: ``[start, end]`` of the brush in epoch milliseconds, ``[]`` when cleared.
    brush: traitlets.List[float] = traitlets.List().tag(sync=True)
    #: The ``charts`` number the page has drawn.
    drawn = traitlets.Int(0).tag(sync=True)
    #: ``{"n": clicks, "scope": "full" | "brush"}`` from the "to Python" button.
    to_python = traitlets.Dict().tag(sync=True)

    # Python only.
    df = traitlets.Instance(pd.DataFrame, allow_none=True)
    brush_range = traitlets.Any(None, read_only=True)
    exported = traitlets.Instance(pd.DataFrame, allow_none=True)

    def __init__(self, *, namespace: dict[str, Any] | None = None, **kwargs: Any) -> None:
        library = shared_library()
        super().__init__(_vega=library, vega_version=library.version, **kwargs)
        self._namespace = namespace
        self.has_namespace = self._user_namespace() is not None
        self.spec: Any = None
        self._panels: tuple[str, ...] = ()
        self._max_points = MAX_POINTS
        self._spec_sent: dict[str, Any] = {}  # the spec as `chart_spec` sent it
        self._base: pd.DataFrame | None = None  # the flow chart's rows as `data` sent them
        self._tail_from = 0  # the first of them the tail replaces
        self.on_msg(self._on_message)

    def __repr__(self) -> str:
        # anywidget puts the whole repr into the output's text/plain: what a terminal,
        # nbconvert or a notebook viewer without widgets shows is the summary line.
        return self.summary or type(self).__name__

    # -- drawing -----------------------------------------------------------------------

    def _draw(self, df: pd.DataFrame, panels: tuple[str, ...], max_points: int = MAX_POINTS) -> None:
        """Send ``df``'s chart to the page (``self.df`` is the caller's to set)."""
        chart = chart_for(df, panels, max_points)
        full = chart.to_dict()
        spec, layout, packed = pack_spec(full)
        self.spec, self._panels, self._max_points = chart, panels, max_points
        self._spec_sent = spec
        rows = full.get("datasets", {}).get(FLOW_DATASET)
        self._base = pd.DataFrame.from_records(rows) if rows else None
        self._tail_from = len(rows or [])
        with self.hold_sync():
            self.chart_spec = gzip.compress(json.dumps(spec, separators=(",", ":")).encode(), compresslevel=9, mtime=0)
            self.data_layout, self.data = layout, packed
            self.tail, self.tail_layout = b"", {}
            self.summary = summary_line(df)
            self.simulated = bool(df.attrs.get("simulated"))
            self.variable = _default_variable(df)
            self.brush = []
            self.charts += 1
        self.set_trait("brush_range", None)

    def append(self, rows: pd.DataFrame) -> None:
        """Add bars at the end of the frame, or replace its last ones: every bar from
        the first ``time`` in ``rows`` on is replaced by ``rows``.

        Only the chart rows that changed travel to the page (``tail``), unless the
        chart itself changed (its title or subtitle, an aggregation, candles becoming a
        line, a venue view): then it is drawn anew, as is a tail grown past a quarter of
        the chart."""
        if self.df is None:
            raise ValueError("nothing is drawn yet: append adds to a drawn frame")
        if rows.empty:
            return
        df = pd.concat([self.df[self.df["time"] < rows["time"].min()], rows], ignore_index=True)
        df.attrs = dict(self.df.attrs)
        full = chart_for(df, self._panels, self._max_points).to_dict()
        datasets = full.pop("datasets", {})
        new = pd.DataFrame.from_records(datasets[FLOW_DATASET]) if FLOW_DATASET in datasets else None
        same_chart = full == self._spec_sent and set(datasets) == {p["dataset"] for p in self.data_layout}
        if new is None or self._base is None or not same_chart or list(new.columns) != list(self._base.columns):
            self._draw(df, self._panels, self._max_points)
        else:
            # Never later than the tail already on the page: it replaces that one whole.
            self._tail_from = first = min(_first_difference(self._base, new), self._tail_from)
            if len(new) - first > _TAIL_SHARE * len(self._base):
                self._draw(df, self._panels, self._max_points)
            else:
                self._send_tail(new, first, df)
        self.df = df

    def _send_tail(self, rows: pd.DataFrame, first: int, df: pd.DataFrame) -> None:
        # The tail holds every row that differs from `data`, so the state a notebook
        # saves (data + tail) is the chart the page shows.
        layout, raw = pack_records(FLOW_DATASET, rows.iloc[first:].to_dict("records"), {"time"})
        start = rows["time"].iloc[first] if first < len(rows) else rows["time"].iloc[-1] + 1
        with self.hold_sync():
            self.tail_layout = {**layout, "field": "time", "from": int(start)}
            self.tail = gzip.compress(raw, compresslevel=6, mtime=0)
            self.summary = summary_line(df)

    # -- the brush and the frames it selects -------------------------------------------

    @traitlets.observe("brush")
    def _brush_changed(self, change: dict[str, Any]) -> None:
        span = change["new"] or []
        rng = None
        if len(span) == 2:
            lo, hi = sorted(pd.Timestamp(float(v), unit="ms", tz="UTC") for v in span)
            rng = (lo, hi)
        self.set_trait("brush_range", rng)

    @property
    def brushed(self) -> pd.DataFrame | None:
        """The rows inside the brush (the whole frame when nothing is brushed)."""
        if self.df is None or self.brush_range is None:
            return self.df
        lo, hi = self.brush_range
        out = self.df[(self.df["time"] >= lo) & (self.df["time"] <= hi)].reset_index(drop=True)
        out.attrs = {**self.df.attrs, "brushed": [lo.isoformat(), hi.isoformat()]}
        return out

    def _frame(self, scope: str) -> pd.DataFrame:
        if self.df is None:
            raise ValueError("nothing is loaded yet: click Load first")
        if scope == "brush":
            if self.brush_range is None:
                raise ValueError("nothing is brushed: drag across the bottom strip first")
            return self.brushed  # type: ignore[return-value]
        return self.df

    # -- exports -------------------------------------------------------------------------

    def filename(self, ext: str, scope: str = "full") -> str:
        """The export's file name: venue, symbol, interval and the range (or the brush)."""
        return f"{self._stem(scope)}.{ext}"

    def _stem(self, scope: str) -> str:
        q = _query_of(self.df.attrs if self.df is not None else {})
        if scope == "brush" and self.brush_range is not None:
            span = f"{self.brush_range[0]:%Y%m%dT%H%M}-{self.brush_range[1]:%Y%m%dT%H%M}"
        else:
            span = f"{q.get('start', '')}_{q.get('end', '')}"
        return "_".join(_safe(str(x)) for x in (q.get("exchange", "flow"), q.get("symbol", ""), q.get("interval", ""), span) if x)

    @traitlets.observe("df", "brush_range")
    def _name_files(self, _change: dict[str, Any]) -> None:
        stems = {"full": self._stem("full")}
        if self.brush_range is not None:
            stems["brush"] = self._stem("brush")
        self.file_stems = stems

    def export_bytes(self, fmt: str, scope: str = "full") -> tuple[bytes, str, str]:
        """``(bytes, filename, mime type)`` for ``csv``, ``parquet``, ``png`` or ``svg``.

        PNG and SVG are rendered here by vl-convert, the ``export`` extra (without it,
        :class:`~.export.ExportExtraMissing`); the chart's own buttons render them in the
        page instead, as shown, brush included."""
        if fmt == "csv":
            raw = to_csv_bytes(self._frame(scope))
        elif fmt == "parquet":
            raw = to_parquet_bytes(self._frame(scope))
        elif fmt in ("png", "svg"):
            frame = self._frame(scope)
            chart = self.spec if scope != "brush" else chart_for(frame, self._panels, MAX_POINTS)
            raw = chart_png(chart) if fmt == "png" else chart_svg(chart)
        else:
            raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(MIME)}")
        return raw, self.filename(fmt, scope), MIME[fmt]

    def save(self, fmt: str, scope: str = "full", folder: str | os.PathLike[str] | None = None) -> Path:
        """Write the export into ``folder`` (the kernel's working folder by default) and
        return its path; an existing file is never overwritten (``name-1.csv`` ...)."""
        raw, _, _ = self.export_bytes(fmt, scope)
        return self.save_bytes(raw, fmt, scope, folder)

    def save_bytes(self, raw: bytes, fmt: str, scope: str = "full", folder: str | os.PathLike[str] | None = None) -> Path:
        """Write ``raw``, an export made elsewhere (the PNG or SVG the page rendered), as
        :meth:`save` writes its own: the same name and folder, never overwriting."""
        name = self.filename(fmt, scope)
        target = Path(folder) if folder is not None else Path.cwd()
        path = target / name
        stem, suffix = path.stem, path.suffix
        n = 0
        while path.exists():
            n += 1
            path = target / f"{stem}-{n}{suffix}"
        # Written whole or not at all: a temporary name, then the final one.
        fd, tmp = tempfile.mkstemp(dir=target, prefix=".apj-", suffix=suffix)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
        return path.resolve()

    def to_variable(self, name: str, scope: str = "full") -> str:
        """Bind the frame (or the brushed slice) to ``name`` in IPython's namespace."""
        check_variable_name(name)
        namespace = self._user_namespace()
        if namespace is None:
            raise RuntimeError("no IPython kernel to bind a variable in: read .exported, or use the frame (.df, .brushed)")
        namespace[name] = frame = self._frame(scope).copy()
        self.exported = frame
        return name

    def _user_namespace(self) -> dict[str, Any] | None:
        return self._namespace if self._namespace is not None else ipython_namespace()

    @traitlets.observe("to_python")
    def _to_python(self, change: dict[str, Any]) -> None:
        scope = str((change["new"] or {}).get("scope", "full"))
        try:
            self.exported = self._frame(scope).copy()
            self.send({"type": "status", "text": f"{len(self.exported):,} rows are on .exported"})
        except ValueError as exc:
            self.send({"type": "status", "text": f"error: {exc}"})

    def _on_message(self, _widget: Any, content: dict[str, Any], buffers: list[bytes]) -> None:
        try:
            kind = content.get("type")
            scope = str(content.get("scope", "full"))
            if kind == "export":
                fmt = str(content.get("format"))
                if content.get("dest") == "file":
                    path = self.save(fmt, scope)
                    self.send({"type": "status", "text": f"saved {path} ({path.stat().st_size:,} bytes)"})
                else:
                    raw, filename, mime = self.export_bytes(fmt, scope)
                    self.send({"type": "file", "filename": filename, "mime": mime, "size": len(raw)}, buffers=[raw])
            elif kind == "image":  # a PNG or SVG the page rendered, to write here
                fmt = str(content.get("format"))
                if not buffers:
                    raise ValueError(f"the page sent no {fmt.upper()} image")
                path = self.save_bytes(check_image(bytes(buffers[0]), fmt), fmt, scope)
                self.send({"type": "status", "text": f"saved {path} ({path.stat().st_size:,} bytes)"})
            elif kind == "variable":
                if self._user_namespace() is None:  # the page thought IPython was there
                    self._to_python({"new": {"scope": scope}})
                else:
                    self.send({"type": "status", "text": f"bound to {self.to_variable(str(content.get('name', '')), scope)}"})
            elif kind == "library":  # the page could not reach the VegaLibrary model
                self.send({"type": "library"}, buffers=list(library_code()))
        except Exception as exc:  # shown in the export bar, never lost in a log
            self.send({"type": "status", "text": f"error: {exc}"})


def _first_difference(old: pd.DataFrame, new: pd.DataFrame) -> int:
    """The first row where two chart frames of the same columns differ (missing equals
    missing), or the shorter one's length."""
    n = min(len(old), len(new))
    a, b = old.to_numpy("float64")[:n], new.to_numpy("float64")[:n]
    cells = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    differ = np.flatnonzero(cells.any(axis=1))
    return int(differ[0]) if len(differ) else n


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _query_of(attrs: dict[str, Any]) -> dict[str, Any]:
    """The query a frame answers; for several venues or symbols, one that names them all."""
    if "query" in attrs or "queries" not in attrs:
        return dict(attrs.get("query", {}))
    qs = attrs["queries"]
    return {
        **qs[0],
        "exchange": "+".join(dict.fromkeys(q["exchange"] for q in qs)),
        "symbol": "+".join(dict.fromkeys(q["symbol"] for q in qs)),
    }


def _default_variable(df: pd.DataFrame) -> str:
    q = _query_of(df.attrs)
    base = str(q.get("symbol", "flow")).split("-")[1] if "-" in str(q.get("symbol", "")) else "flow"
    name = re.sub(r"\W", "_", f"{base}_{q.get('interval', '')}".lower()).strip("_")
    return name if name.isidentifier() else "flow_df"
