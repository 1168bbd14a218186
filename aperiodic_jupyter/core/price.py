"""Price next to flow: open, high, low and close joined onto a flow frame by bar start.

Flow and OHLCV files of the same exchange, symbol, interval and timestamp source share
bar starts, but a bar with no trades may be missing from either; the join keeps every
bar of both (an outer join), with NaN where one side has none. When the price cannot
be had, the flow is returned whole and ``df.attrs["price"]`` says why.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .schema import PRICE_COLUMNS, TIME

__all__ = ["join_price", "price_status"]


def join_price(flow: pd.DataFrame, price: pd.DataFrame | None, error: str | None = None) -> pd.DataFrame:
    """``flow`` with ``open high low close`` (quote per base) joined on ``time``.

    Args:
        flow: a flow frame (``time`` column, tz-aware UTC).
        price: an OHLCV frame of the same query, or ``None`` when it failed.
        error: why the price is missing (one line), recorded in ``attrs["price"]``.
    """
    attrs = dict(flow.attrs)
    if price is None:
        out = flow.copy()
        attrs["price"] = {"joined": False, "error": error or "no price data"}
    else:
        keep = [TIME] + [c for c in PRICE_COLUMNS if c in price.columns]
        out = flow.merge(price[keep], on=TIME, how="outer", sort=True)
        attrs["price"] = {
            "joined": True,
            "bars": int(len(price)),
            "source": price.attrs.get("source"),
            "missing_price": int(out[PRICE_COLUMNS[-1]].isna().sum()) if PRICE_COLUMNS[-1] in out else len(out),
        }
    out.attrs = attrs
    return out


def price_status(attrs: dict[str, Any]) -> str:
    """A few words for a summary line: ``""`` when the price is joined or was not
    asked for, else why it is missing."""
    price = attrs.get("price")
    if not price or price.get("joined"):
        return ""
    return f"no price: {price.get('error', 'unavailable')}"
