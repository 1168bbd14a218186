"""Altair views of a flow frame. Views never fetch: they take a frame and return a chart.

``flow_chart(df)`` stacks six panels that share one UTC time axis — volume delta,
taker buy vs sell volume, buy share with its 50 % line, buyers' and sellers' order-size
mix, toxicity and entropy — above an overview strip whose brush zooms them all. The
brush is the ``brush`` selection of the chart (read it back through
``alt.JupyterChart(...).selections.brush``).

Large frames are aggregated here, in Python, to at most ``max_points`` bars before
anything is sent to the browser (a year of 1-minute bars is 525,600 rows; Altair refuses
more than 5,000 by default, for good reason). Sums are summed, ratios are recomputed
from the sums, entropy and toxicity are averaged, and the chart says so.
"""

from __future__ import annotations

import json
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from ..core.query import INTERVAL_SECONDS
from ..core.schema import SIDES, SIZES

__all__ = ["flow_chart", "downsample", "chart_frame", "brushed_range", "BRUSH", "MAX_POINTS"]

BRUSH = "brush"
_DATASET = "flow"
MAX_POINTS = 2500
# Aggregation steps: every interval the API serves, then weeks.
_RULES = [(f"{seconds}s", label) for label, seconds in INTERVAL_SECONDS.items()] + [("7D", "1w")]
_ADDITIVE = [
    "taker_buy_volume",
    "taker_sell_volume",
    "taker_buy_count",
    "taker_sell_count",
    "volume_delta",
    "volume_delta_notional",
] + [f"taker_{side}_{size}_order_volume" for side in SIDES for size in SIZES]
_MEAN = ["flow_entropy", "flow_toxicity_score"]
# Short keys: chart data is JSON records, so every key is repeated on every row.
_SHORT = {
    "volume_delta": "delta",
    "taker_buy_volume": "buy",
    "taker_sell_volume": "sell",
    "taker_buy_sell_percentage": "buy_pct",
    "flow_toxicity_score": "tox",
    "flow_entropy": "ent",
}
BUY_COLOR, SELL_COLOR = "#1a9850", "#d73027"
SIZE_COLORS = ["#fdae61", "#74add1", "#313695"]


def _bar_seconds(times: pd.Series) -> float:
    if len(times) < 2:
        return 60.0
    return float(times.diff().dropna().min().total_seconds()) or 60.0


def downsample(df: pd.DataFrame, max_points: int = MAX_POINTS) -> tuple[pd.DataFrame, str | None]:
    """At most ``max_points`` bars: the frame itself, or the finest coarser interval
    (30s, 1m, ... 1d, 1w) that fits, with sums summed and ratios recomputed. Returns
    ``(frame, new interval or None)``."""
    if len(df) <= max_points:
        return df, None
    times = df["time"]
    span = (times.iloc[-1] - times.iloc[0]).total_seconds() + _bar_seconds(times)
    bar = _bar_seconds(times)
    fits = [(r, lab) for r, lab in _RULES if pd.Timedelta(r).total_seconds() > bar and span / pd.Timedelta(r).total_seconds() <= max_points]
    rule, label = fits[0] if fits else _RULES[-1]
    # Sub-day bins align to the epoch (so 4h bars start at 00:00 UTC); pandas aligns day bins itself.
    grouped = df.set_index("time").resample(rule, **({} if rule.endswith("D") else {"origin": "epoch"}))
    present = [c for c in _ADDITIVE if c in df.columns]
    out = grouped[present].sum()
    for c in _MEAN:
        if c in df.columns:
            out[c] = grouped[c].mean()
    out = out[grouped.size() > 0]
    buy, sell = out["taker_buy_volume"].astype("float64"), out["taker_sell_volume"].astype("float64")
    total = buy + sell
    out["taker_buy_sell_percentage"] = (buy / total).where(total > 0)
    out["taker_buy_sell_ratio"] = (buy / sell).where(sell > 0)
    return out.reset_index(), label


def _round(values: pd.Series, digits: int = 6) -> pd.Series:
    """Round to ``digits`` significant digits: a chart needs no more, and JSON shrinks."""
    v = values.astype("float64").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(np.isfinite(v) & (v != 0), np.floor(np.log10(np.abs(v))), 0)
    scale = 10.0 ** (digits - 1 - mag)
    return pd.Series(np.round(v * scale) / scale, index=values.index)


def chart_frame(df: pd.DataFrame, max_points: int = MAX_POINTS) -> tuple[pd.DataFrame, str | None]:
    """The small frame the chart is drawn from: only the plotted columns, bars
    aggregated to ``max_points``, times as epoch milliseconds, floats rounded."""
    small, agg = downsample(df, max_points)
    t = small["time"]
    if t.dt.tz is None:
        t = t.dt.tz_localize("UTC")
    out = pd.DataFrame({"time": (t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)})
    for col, short in _SHORT.items():
        out[short] = _round(small[col])
    for side in SIDES:
        for size in SIZES:
            out[f"{side}_{size}"] = _round(small[f"taker_{side}_{size}_order_volume"], 4)
    return out, agg


def flow_chart(df: pd.DataFrame, *, max_points: int = MAX_POINTS, width: int = 720, title: str | None = None) -> alt.VConcatChart:
    """The linked flow views of one symbol's frame (see module docstring)."""
    attrs: dict[str, Any] = dict(df.attrs)
    data, agg = chart_frame(df, max_points)
    q = attrs.get("query", {})
    heading = title or " ".join(str(q.get(k, "")) for k in ("exchange", "symbol", "interval")).strip() or "taker flow"
    subtitle = []
    if attrs.get("simulated"):
        subtitle.append(str(attrs.get("label", "SIMULATED demo data")))
    note = attrs.get("coverage", {}).get("note")
    if note:  # the chart must not pass a short frame off as the whole asked range
        subtitle.append(str(note))
    if agg:
        subtitle.append(
            f"{len(df):,} {q.get('interval', '')} bars aggregated to {len(data):,} {agg} bars for display; sums summed, entropy and toxicity averaged"
        )
    brush = alt.selection_interval(name=BRUSH, encodings=["x"])
    x_axis = alt.X("time:T", title=None, scale=alt.Scale(type="utc", domain=brush))
    # JSON has no NaN: pandas writes missing values as null, which Vega skips. The rows
    # live once, in the top-level datasets; panels refer to them by name (Altair deep-
    # copies every panel while composing, and inline rows would be copied each time).
    records = json.loads(data.to_json(orient="records"))
    base = alt.Chart(alt.NamedData(name=_DATASET)).properties(width=width, height=110)
    tooltip_time = alt.Tooltip("utcyearmonthdatehoursminutes(time):T", title="bar start (UTC)")

    delta = (
        base.mark_bar()
        .encode(
            x=x_axis,
            y=alt.Y("delta:Q", title="volume delta (base)"),
            color=alt.when(alt.datum.delta >= 0).then(alt.value(BUY_COLOR)).otherwise(alt.value(SELL_COLOR)),
            tooltip=[tooltip_time, alt.Tooltip("delta:Q", title="volume delta (base)", format=",.4f")],
        )
        .properties(title="Volume delta per bar (taker buy − sell, base asset)")
    )

    volumes = (
        base.transform_fold(["buy", "sell"], as_=["side", "volume"])
        .mark_line(strokeWidth=1)
        .encode(
            x=x_axis,
            y=alt.Y("volume:Q", title="volume (base)"),
            color=alt.Color(
                "side:N",
                scale=alt.Scale(domain=["buy", "sell"], range=[BUY_COLOR, SELL_COLOR]),
                legend=alt.Legend(orient="top", title=None),
            ),
        )
        .properties(title="Taker buy vs sell volume (base asset)")
    )

    pct = alt.layer(
        base.mark_line(strokeWidth=1, color="#4c78a8").encode(
            x=x_axis,
            y=alt.Y("buy_pct:Q", title="taker buy share", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            tooltip=[tooltip_time, alt.Tooltip("buy_pct:Q", title="taker buy share", format=".1%")],
        ),
        alt.Chart().mark_rule(strokeDash=[4, 4], color="#666").encode(y=alt.datum(0.5)),
    ).properties(title="Taker buy percentage of volume (50 % = balanced)")

    def mix(side: str) -> alt.Chart:
        # Log scale: large trades carry most notional, so small and medium would vanish
        # in a linear stack; on a log axis each bucket's level and swings stay readable.
        cols: list[Any] = [f"{side}_{size}" for size in SIZES]
        return (
            base.transform_fold(cols, as_=["bucket", "notional"])
            .transform_filter("datum.notional > 0")
            .mark_line(strokeWidth=1)
            .encode(
                x=x_axis,
                y=alt.Y(
                    "notional:Q", scale=alt.Scale(type="log"), title="notional (quote)", axis=alt.Axis(format="~s", tickCount=3)
                ),
                color=alt.Color(
                    "bucket:N",
                    scale=alt.Scale(domain=cols, range=SIZE_COLORS),
                    legend=alt.Legend(orient="top", title=None, labelExpr="split(datum.label, '_')[1]"),
                ),
                tooltip=[tooltip_time, alt.Tooltip("bucket:N"), alt.Tooltip("notional:Q", format=",.0f")],
            )
            .properties(
                title=f"{'Buyers' if side == 'buy' else 'Sellers'}' order-size mix: notional by size (small < $100 ≤ medium < $1,000 ≤ large)",
                height=90,
            )
        )

    tox = (
        base.mark_line(strokeWidth=1, color="#7b3294")
        .encode(
            x=x_axis,
            y=alt.Y("tox:Q", title="toxicity (z × z)"),
            tooltip=[tooltip_time, alt.Tooltip("tox:Q", title="toxicity", format=".2f")],
        )
        .properties(title="Flow toxicity score", height=80)
    )
    ent = (
        base.mark_line(strokeWidth=1, color="#008837")
        .encode(
            x=x_axis,
            y=alt.Y("ent:Q", title="entropy (nats)", scale=alt.Scale(domain=[0, 0.7])),
            tooltip=[tooltip_time, alt.Tooltip("ent:Q", title="entropy", format=".3f")],
        )
        .properties(title="Flow entropy (ln 2 ≈ 0.693 = balanced)", height=80)
    )

    overview = (
        base.mark_area(color="#9ecae1")
        .encode(
            x=alt.X(
                "time:T", title="time (UTC) — drag here to zoom all panels, double-click to reset", scale=alt.Scale(type="utc")
            ),
            y=alt.Y("buy:Q", title=None, axis=None),
        )
        .add_params(brush)
        .properties(height=50)
    )

    chart = alt.vconcat(delta, volumes, pct, mix("buy"), mix("sell"), tox, ent, overview, spacing=12)
    return (
        chart.properties(
            datasets={_DATASET: records},
            title=alt.TitleParams(
                heading, subtitle=subtitle or alt.Undefined, subtitleColor="#b2182b", anchor="start", fontSize=15
            ),
        )
        .resolve_scale(color="independent")
        .configure_view(stroke=None)
        .configure_axis(labelFontSize=10, titleFontSize=11)
    )


def brushed_range(value: dict[str, Any] | None) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The UTC time range of a brush selection value (``{"time": [lo, hi]}``)."""
    if not value or "time" not in value or len(value["time"]) != 2:
        return None
    lo, hi = (_utc(v) for v in value["time"])
    return min(lo, hi), max(lo, hi)


def _utc(v: Any) -> pd.Timestamp:
    # Vega sends temporal selections as epoch milliseconds (or ISO text when saved).
    ts = pd.Timestamp(v, unit="ms") if isinstance(v, (int, float)) else pd.Timestamp(v)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
