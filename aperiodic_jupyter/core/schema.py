"""The flow schema: column names, dtypes and units, in one place.

The API files, the flow engine, the demo source and the chart labels all read from here,
so a frame computed locally is interchangeable with one downloaded from the API.

Units: ``*_volume`` columns without a size bucket are **base asset** (BTC for BTC-USDT);
``volume_delta_notional`` and the bucket ``*_order_volume`` columns are **quote
currency** notional (USDT for USDT-margined perpetuals, "USD" in chart labels).
"""

from __future__ import annotations

import pyarrow as pa

SIDES = ("buy", "sell")
SIZES = ("small", "medium", "large")

#: Size bucket edges in quote notional: small < 100, medium 100 to < 1,000, large >= 1,000.
SIZE_EDGES = (100.0, 1_000.0)

TIME = "time"

#: (column, arrow type, unit/meaning) in the order this package writes them.
_HEAD: list[tuple[str, pa.DataType, str]] = [
    ("taker_buy_volume", pa.float32(), "base asset"),
    ("taker_sell_volume", pa.float32(), "base asset"),
    ("taker_buy_count", pa.int64(), "trades"),
    ("taker_sell_count", pa.int64(), "trades"),
    ("volume_delta", pa.float32(), "base asset, buy minus sell"),
    ("volume_delta_notional", pa.float64(), "quote notional, buy minus sell"),
    ("flow_entropy", pa.float64(), "nats, 0 to ln 2"),
    ("flow_toxicity_score", pa.float64(), "z-score product, unitless"),
    ("taker_buy_sell_ratio", pa.float64(), "buy volume / sell volume"),
    ("taker_buy_sell_count_ratio", pa.float64(), "buy count / sell count"),
    ("taker_buy_sell_percentage", pa.float64(), "buy volume share, 0 to 1"),
    ("taker_buy_sell_count_percentage", pa.float64(), "buy count share, 0 to 1"),
]


def _bucket_columns() -> list[tuple[str, pa.DataType, str]]:
    out: list[tuple[str, pa.DataType, str]] = []
    kinds = [
        ("order_volume", pa.float32(), "quote notional"),
        ("order_count", pa.int64(), "trades"),
        ("order_percentage", pa.float64(), "bucket notional / side base volume (API quirk)"),
        ("order_count_percentage", pa.float64(), "bucket count / side count, 0 to 1"),
    ]
    for kind, dtype, unit in kinds:
        for side in SIDES:
            for size in SIZES:
                out.append((f"taker_{side}_{size}_{kind}", dtype, unit))
    return out


FLOW_COLUMNS_SPEC: list[tuple[str, pa.DataType, str]] = _HEAD + _bucket_columns()

#: Every flow column except ``time``, in canonical order.
FLOW_COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in FLOW_COLUMNS_SPEC)

#: Units by column name, for docstrings and chart axis labels.
FLOW_UNITS: dict[str, str] = {name: unit for name, _, unit in FLOW_COLUMNS_SPEC}

#: The schema of a flow file as the API serves it: ``time`` is naive and means UTC.
FLOW_FILE_SCHEMA = pa.schema(
    [pa.field(TIME, pa.timestamp("us"))] + [pa.field(name, dtype) for name, dtype, _ in FLOW_COLUMNS_SPEC]
)

#: Column groups for selecting subsets (used by the magic's ``--columns``).
COLUMN_GROUPS: dict[str, tuple[str, ...]] = {
    "volumes": ("taker_buy_volume", "taker_sell_volume", "volume_delta", "volume_delta_notional"),
    "counts": ("taker_buy_count", "taker_sell_count"),
    "ratios": (
        "taker_buy_sell_ratio",
        "taker_buy_sell_count_ratio",
        "taker_buy_sell_percentage",
        "taker_buy_sell_count_percentage",
    ),
    "toxicity": ("flow_toxicity_score", "flow_entropy"),
    "sizes": tuple(name for name, _, _ in _bucket_columns()),
}


#: An ``ohlcv`` file as the demo source writes it (the API's may carry more columns;
#: they are passed through): ``time`` naive UTC bar start, prices in quote per base,
#: ``volume`` in base asset, ``trades`` a count.
OHLCV_FILE_SCHEMA = pa.schema(
    [
        pa.field(TIME, pa.timestamp("us")),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),
        pa.field("trades", pa.int64()),
    ]
)
#: The price columns joined onto flow frames by ``with_price``.
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
