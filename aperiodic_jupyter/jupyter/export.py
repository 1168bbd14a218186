"""Export bytes: CSV and Parquet of a frame, PNG and SVG of a chart. Nothing here
fetches or displays; the panels send these bytes to the browser as binary buffers.

The chart's PNG and SVG buttons render in the page, with the Vega view on screen
(``js/chart_view.js``); :func:`chart_png` and :func:`chart_svg` are the headless path
from Python (``panel.save("png")``), rendered by vl-convert, the ``export`` extra."""

from __future__ import annotations

import io
from types import ModuleType
from typing import Any

import altair as alt
import pandas as pd

from ..core.errors import ExportExtraMissing

__all__ = ["to_csv_bytes", "to_parquet_bytes", "chart_png", "chart_svg", "check_image", "MIME", "ExportExtraMissing"]

#: Every export format and its MIME type: the one list of formats.
MIME = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "png": "image/png", "svg": "image/svg+xml"}

#: The one line :class:`ExportExtraMissing` says.
EXTRA_MISSING = (
    "PNG/SVG from Python needs the export extra: pip install 'aperiodic-jupyter[export]' "
    "(the chart's PNG and SVG buttons work without it)"
)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """UTF-8 CSV with ISO-8601 UTC times (``2024-01-01T00:00:00Z``)."""
    out = df.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_csv(index=False).encode("utf-8")


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    """Parquet (zstd) that reads back equal to ``df``, ``attrs`` included (pandas keeps
    them in the file's metadata)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()


def _spec(chart: alt.TopLevelMixin | dict[str, Any]) -> dict[str, Any]:
    return chart if isinstance(chart, dict) else chart.to_dict()


def _vl_convert() -> ModuleType:
    try:
        import vl_convert
    except ImportError:
        raise ExportExtraMissing(EXTRA_MISSING) from None
    return vl_convert


def chart_png(chart: alt.TopLevelMixin | dict[str, Any], scale: float = 2.0) -> bytes:
    """PNG of a chart, rendered offline by vl-convert (the ``export`` extra; without it
    :class:`ExportExtraMissing`)."""
    return bytes(_vl_convert().vegalite_to_png(_spec(chart), scale=scale))


def chart_svg(chart: alt.TopLevelMixin | dict[str, Any]) -> bytes:
    """SVG of a chart, rendered offline by vl-convert (the ``export`` extra; without it
    :class:`ExportExtraMissing`)."""
    return str(_vl_convert().vegalite_to_svg(_spec(chart))).encode("utf-8")


def check_image(raw: bytes, fmt: str) -> bytes:
    """``raw`` if it is a PNG or an SVG image as ``fmt`` says (what the page rendered),
    else ``ValueError`` in one line."""
    if fmt == "png":
        ok = raw.startswith(_PNG_MAGIC)
    elif fmt == "svg":
        ok = b"<svg" in raw[:4096]
    else:
        raise ValueError(f"not an image format: {fmt!r}; valid: png, svg")
    if not ok:
        raise ValueError(f"the page sent no {fmt.upper()} image ({len(raw):,} bytes)")
    return raw
