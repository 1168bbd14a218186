"""A chart's rows as compact binary columns, for the widget state a notebook saves.

A Vega-Lite spec from the chart builders carries its rows as JSON records in
``datasets``, every key repeated on every row (a month of 1h bars is about 200 kB). The
panel sends the spec without them, and the rows once, as one gzip'd buffer of columns:
times as float64 (epoch milliseconds), every other number as float32 (seven significant
digits, more than the builders keep), text as 16-bit codes into a list of values.
Each column's bytes are stored byte-plane by byte-plane (all first bytes, then all
second bytes ...), which lets gzip find the repeated exponent bytes. ``decodeRows`` in
``js/chart_view.js`` reverses it; :func:`unpack` does in Python, for the tests.
"""

from __future__ import annotations

import gzip
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["pack_spec", "pack_records", "unpack", "temporal_fields"]

_MISSING_CODE = 0xFFFF  # a text column's code for a missing value
_DTYPES = {"f64": "<f8", "f32": "<f4", "str": "<u2"}


def temporal_fields(spec: Any) -> set[str]:
    """Fields a spec encodes as time anywhere (``{"field": ..., "type": "temporal"}``):
    they keep float64, since float32 would move an epoch-millisecond time by minutes."""
    found: set[str] = set()
    if isinstance(spec, dict):
        if spec.get("type") == "temporal" and isinstance(spec.get("field"), str):
            found.add(spec["field"])
        for value in spec.values():
            found |= temporal_fields(value)
    elif isinstance(spec, list):
        for value in spec:
            found |= temporal_fields(value)
    return found


def _planes(values: np.ndarray) -> bytes:
    return values.view(np.uint8).reshape(-1, values.itemsize).T.tobytes()


def _column(name: str, values: pd.Series, temporal: set[str]) -> tuple[dict[str, Any], bytes]:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        kind = "f64" if name in temporal else "f32"
        return {"name": name, "type": kind}, _planes(values.to_numpy("float64").astype(_DTYPES[kind]))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) >= _MISSING_CODE:
        raise ValueError(f"column {name!r} has {len(uniques):,} distinct values; a chart takes fewer than {_MISSING_CODE:,}")
    codes = np.where(codes < 0, _MISSING_CODE, codes).astype(_DTYPES["str"])
    return {"name": name, "type": "str", "values": [str(u) for u in uniques]}, _planes(codes)


def pack_records(name: str, records: list[dict[str, Any]], temporal: set[str]) -> tuple[dict[str, Any], bytes]:
    """One dataset's rows: ``(layout, raw column bytes)``; layout is ``{"dataset",
    "rows", "columns": [{"name", "type", "values"?}]}``."""
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    columns, parts = [], []
    for col in frame.columns:
        meta, raw = _column(str(col), frame[col], temporal)
        columns.append(meta)
        parts.append(raw)
    return {"dataset": name, "rows": len(records), "columns": columns}, b"".join(parts)


def pack_spec(spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], bytes]:
    """``(spec without its rows, layout per dataset, gzip'd columns)``."""
    rest = {k: v for k, v in spec.items() if k != "datasets"}
    temporal = temporal_fields(rest)
    layout, parts = [], []
    for name, records in (spec.get("datasets") or {}).items():
        meta, raw = pack_records(name, records, temporal)
        layout.append(meta)
        parts.append(raw)
    return rest, layout, gzip.compress(b"".join(parts), compresslevel=6, mtime=0)


def unpack(layout: list[dict[str, Any]], packed: bytes) -> dict[str, list[dict[str, Any]]]:
    """The records :func:`pack_spec` packed (numbers as float32 or float64 gave them,
    missing values as ``None``)."""
    raw = gzip.decompress(packed)
    offset = 0
    out: dict[str, list[dict[str, Any]]] = {}
    for part in layout:
        n = part["rows"]
        rows: list[dict[str, Any]] = [{} for _ in range(n)]
        for col in part["columns"]:
            dtype = np.dtype(_DTYPES[col["type"]])
            size = n * dtype.itemsize
            values = np.frombuffer(raw[offset : offset + size], np.uint8).reshape(dtype.itemsize, n).T.copy().view(dtype).ravel()
            offset += size
            for row, v in zip(rows, values.tolist(), strict=True):
                if col["type"] == "str":
                    row[col["name"]] = None if v == _MISSING_CODE else col["values"][v]
                else:
                    row[col["name"]] = None if v != v else v  # NaN is missing
        out[part["dataset"]] = rows
    return out
