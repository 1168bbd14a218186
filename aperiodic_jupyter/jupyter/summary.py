"""The summary line: what a frame is, in one line, above every chart and in its text form."""

from __future__ import annotations

import pandas as pd

from ..core.price import price_status
from .labels import source_label

__all__ = ["summary_line"]


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
