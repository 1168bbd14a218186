"""Export bytes: CSV and Parquet of a frame, PNG and SVG of a chart. Nothing here
fetches or displays; the panels send these bytes to the browser as binary buffers."""

from __future__ import annotations

import io
from typing import Any

import altair as alt
import pandas as pd

__all__ = ["to_csv_bytes", "to_parquet_bytes", "chart_png", "chart_svg", "MIME"]

#: Every export format and its MIME type: the one list of formats.
MIME = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "png": "image/png", "svg": "image/svg+xml"}


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


def chart_png(chart: alt.TopLevelMixin | dict[str, Any], scale: float = 2.0) -> bytes:
    """PNG of a chart, rendered offline by vl-convert."""
    import vl_convert as vlc

    return bytes(vlc.vegalite_to_png(_spec(chart), scale=scale))


def chart_svg(chart: alt.TopLevelMixin | dict[str, Any]) -> bytes:
    """SVG of a chart, rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(_spec(chart)).encode("utf-8")
