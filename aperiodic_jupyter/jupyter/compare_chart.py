"""Venues side by side: one Altair view of a tidy frame that holds several venues.

``venue_chart(df)`` takes ONE frame with ``time``, ``exchange`` and ``symbol`` columns
(what ``get_flow(["binance-futures", "okx-perps"], "BTC", ...)`` returns) and stacks,
on one UTC time axis, one colour per venue (the close on top, as in ``flow_chart``):

1. CVD per venue in notional (quote), from the first bar in view: the brush filters
   the bars, then a running sum per venue restarts at the zoomed left edge;
2. each venue's share of all venues' taker volume per bar (notional, stacked to 100 %);
3. the taker buy share per venue, with its 50 % line;
4. the close per venue (the gap between the lines is the basis), when the frame has
   price columns; otherwise the panel is left out and the subtitle says why.

Below them the overview strip carries the ``brush`` selection (as in
:func:`~aperiodic_jupyter.jupyter.charts.flow_chart`), which zooms every panel.

Large frames are aggregated in Python first: every venue to the same coarser bars (so
shares compare like with like), at most ``max_points`` bars per venue, with sums summed,
the buy share recomputed from the sums and the last close kept.
"""

from __future__ import annotations

import json
from typing import Any

import altair as alt
import pandas as pd

from ..core.query import INTERVAL_SECONDS
from ..core.schema import SIZES
from .charts import (
    _RULES,
    BRUSH,
    MAX_POINTS,
    LinkedViews,
    _bar_seconds,
    _round,
    chart_config,
    formatted_tips,
    overview_strip,
    span_of,
    time_axis,
    time_tip,
)
from .labels import source_label

__all__ = ["venue_chart", "venue_frame", "VENUE_COLORS"]

_DATASET = "venues"
#: One colour per venue, in the order venues first appear in the frame.
VENUE_COLORS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#9d755d", "#bab0ac"]
_REQUIRED = ("time", "taker_buy_volume", "taker_sell_volume", "volume_delta_notional")
_BUCKETS = {side: [f"taker_{side}_{size}_order_volume" for size in SIZES] for side in ("buy", "sell")}


def _series_labels(df: pd.DataFrame) -> pd.Series:
    """The venue name per row; ``exchange symbol`` when a venue holds several symbols."""
    venue = df["exchange"].astype(str)
    if "symbol" in df.columns and (df.groupby(venue, sort=False)["symbol"].nunique() > 1).any():
        return venue + " " + df["symbol"].astype(str)
    return venue


def _rule(df: pd.DataFrame, key: pd.Series, max_points: int) -> tuple[str | None, str | None, float]:
    """The one bar all venues are drawn at: ``(resample rule, its label, native bar
    seconds)``, rule ``None`` when every venue fits in ``max_points`` bars as is. The
    same choice as :func:`~aperiodic_jupyter.jupyter.charts.downsample`, made over the
    span of all venues so every venue lands on the same bins."""
    bar = min(_bar_seconds(g.sort_values()) for _, g in df["time"].groupby(key, sort=False))
    if key.value_counts().max() <= max_points:
        return None, None, bar
    span = (df["time"].max() - df["time"].min()).total_seconds() + bar
    fits = [
        (r, lab)
        for r, lab in _RULES
        if pd.Timedelta(r).total_seconds() > bar and span / pd.Timedelta(r).total_seconds() <= max_points
    ]
    rule, label = fits[0] if fits else _RULES[-1]
    return rule, label, bar


def _bars(g: pd.DataFrame, rule: str | None, notional: bool) -> pd.DataFrame:
    """One venue's plotted columns at ``rule`` bars (sums summed, the last close kept)."""
    sums = ["taker_buy_volume", "taker_sell_volume", "volume_delta_notional"]
    if notional:
        sums += _BUCKETS["buy"] + _BUCKETS["sell"]
    cols = sums + (["close"] if "close" in g.columns else [])
    g = g.sort_values("time")
    if rule is None:
        out = g.set_index("time")[cols]
    else:
        # Sub-day bins align to the epoch (so 4h bars start at 00:00 UTC), as in charts.py.
        grouped = g.set_index("time")[cols].resample(rule, **({} if rule.endswith("D") else {"origin": "epoch"}))
        out = grouped[sums].sum()
        if "close" in cols:
            out["close"] = grouped["close"].last()
        out = out[grouped.size() > 0]
    return out.reset_index()


def venue_frame(df: pd.DataFrame, max_points: int = MAX_POINTS) -> tuple[pd.DataFrame, str | None, dict[str, Any]]:
    """The long, small frame the view is drawn from, and what was done to get it.

    Columns (short keys: every key is repeated on every row of the chart's JSON):
    ``t`` bar start (epoch ms, UTC), ``v`` venue, ``dn`` volume delta (notional, quote),
    ``vol`` taker buy + sell volume (notional when the size buckets are present, else
    base), ``bp`` taker buy share (0..1), ``c`` close (quote per base, when present).
    Returns ``(frame, aggregated interval or None, facts)``."""
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"venue_chart needs the columns {', '.join(missing)}: pass a flow frame")
    if "exchange" not in df.columns:
        exchange = (df.attrs.get("query") or {}).get("exchange")
        if not exchange:
            raise ValueError("venue_chart needs an exchange column (one tidy frame of several venues)")
        df = df.assign(exchange=exchange)
    key = _series_labels(df)
    notional = all(c in df.columns for side in _BUCKETS.values() for c in side)
    # Only the plotted columns travel on: a flow frame has some forty.
    cols = ["time", *_REQUIRED[1:], *(_BUCKETS["buy"] + _BUCKETS["sell"] if notional else []), "close"]
    small = df[[c for c in cols if c in df.columns]]
    if small["time"].dt.tz is None:
        small = small.assign(time=small["time"].dt.tz_localize("UTC"))
    rule, label, bar = _rule(small, key, max_points)
    groups = {str(venue): g for venue, g in small.groupby(key, sort=False)}
    venues = list(groups)
    parts = []
    for venue, rows in groups.items():
        g = _bars(rows, rule, notional)
        buy, sell = g["taker_buy_volume"].astype("float64"), g["taker_sell_volume"].astype("float64")
        if notional:
            vol = g[_BUCKETS["buy"] + _BUCKETS["sell"]].astype("float64").sum(axis=1)
        else:
            vol = buy + sell
        part = pd.DataFrame(
            {
                "t": (g["time"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1),
                "v": venue,
                "dn": _round(g["volume_delta_notional"]),
                "vol": _round(vol, 5),
                "bp": _round((buy / (buy + sell)).where(buy + sell > 0), 4),
            }
        )
        if "close" in g.columns:
            # Seven digits: the basis between venues is often a few units in the fifth.
            part["c"] = _round(g["close"], 7)
        parts.append(part)
    data = pd.concat(parts, ignore_index=True)
    if "c" in data.columns and data["c"].isna().all():
        data = data.drop(columns="c")
    facts = {
        "venues": venues,
        "notional": notional,
        "bar_seconds": bar,
        "rows_in": {v: len(g) for v, g in groups.items()},
        "spans": {v: (g["time"].min(), g["time"].max()) for v, g in groups.items()},
        "symbols": sorted(df["symbol"].astype(str).unique()) if "symbol" in df.columns else [],
    }
    return data, label, facts


def _quotes(symbols: list[str]) -> list[str]:
    # Atlas symbols read type-BASE-QUOTE[:SETTLE]: perpetual-BTC-USDT:USDT -> USDT.
    return sorted({s.split(":")[0].split("-")[2] for s in symbols if s.count("-") >= 2})


def _bases(symbols: list[str]) -> list[str]:
    return sorted({s.split("-")[1] for s in symbols if s.count("-") >= 2})


def _interval_label(seconds: float) -> str:
    return next((lab for lab, s in INTERVAL_SECONDS.items() if s == seconds), f"{seconds:g}s")


def _subtitle(df: pd.DataFrame, data: pd.DataFrame, agg: str | None, facts: dict[str, Any], interval: str) -> list[str]:
    attrs: dict[str, Any] = dict(df.attrs)
    lines: list[str] = []
    if source_label(attrs):  # simulated or preview data says so on every view
        lines.append(str(source_label(attrs)))
    # The chart must not pass a short venue off as the whole asked range.
    notes = [str((attrs.get("coverage") or {}).get("note") or "")]
    parts: dict[str, Any] = attrs.get("parts") or {}
    notes += [str((p.get("coverage") or {}).get("note") or "") for p in parts.values()]
    lines += [n for n in dict.fromkeys(notes) if n]
    lines += [f"skipped {s}" for s in attrs.get("skipped") or []]
    first = min(lo for lo, _ in facts["spans"].values())
    last = max(hi for _, hi in facts["spans"].values())
    slack = pd.Timedelta(seconds=facts["bar_seconds"])
    for venue, (lo, hi) in facts["spans"].items():
        if (lo - first > slack or last - hi > slack) and not any(venue.split(" ")[0] in n for n in lines):
            lines.append(
                f"{venue} has bars {lo:%Y-%m-%d %H:%M}..{hi:%Y-%m-%d %H:%M} UTC only: its CVD starts there and it has no share elsewhere"
            )
    if agg:
        counts = sorted(set(facts["rows_in"].values()))
        per = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}–{counts[-1]:,}"
        lines.append(
            f"{per} {interval} bars per venue aggregated to {data.groupby('v').size().max():,} {agg} bars per venue for display; "
            "sums summed, buy share recomputed from the sums, last close kept"
        )
    if "c" not in data.columns:
        errors = [str((p.get("price") or {}).get("error")) for p in parts.values() if (p.get("price") or {}).get("error")]
        err = (attrs.get("price") or {}).get("error")
        why = "; ".join(dict.fromkeys(([str(err)] if err else []) + errors)) or (
            "the frame has no price columns (fetch with with_price=True)"
        )
        lines.append(f"no price panel: {why}")
    else:
        priced = set(data.loc[data["c"].notna(), "v"])
        unpriced = [v for v in facts["venues"] if v not in priced]
        if unpriced:
            lines.append(f"no price for {', '.join(unpriced)}")
    return lines


def venue_chart(
    df: pd.DataFrame,
    *,
    max_points: int = MAX_POINTS,
    width: int = 720,
    title: str | None = None,
) -> LinkedViews:
    """The venue comparison view of one tidy multi-venue frame (see module docstring).

    Args:
        df: flow bars of several venues: ``time`` (UTC), ``exchange``, ``symbol`` and the
            flow columns (``taker_buy_volume``, ``taker_sell_volume``,
            ``volume_delta_notional``, the size-bucket notionals ...), optionally
            ``open high low close``. ``df.attrs`` may carry ``simulated``/``label``,
            ``coverage``, and per-part ``parts``/``skipped`` as ``get_flow`` of several
            venues sets them.
        max_points: at most this many bars per venue are sent to the browser.
        width: panel width in pixels.
        title: the heading; by default the base asset, the venues and the interval.
    """
    data, agg, facts = venue_frame(df, max_points)
    venues: list[str] = facts["venues"]
    q = df.attrs.get("query") or {}
    queries = df.attrs.get("queries") or []
    interval = str(q.get("interval") or (queries[0].get("interval") if queries else "") or _interval_label(facts["bar_seconds"]))
    bases = _bases(facts["symbols"])
    exchanges = list(dict.fromkeys(df["exchange"].astype(str))) if "exchange" in df.columns else venues
    where = f"on {exchanges[0]}" if len(exchanges) == 1 else f"across {len(exchanges)} venues"
    heading = title or f"{'/'.join(bases) or 'Taker flow'} {where} · {interval}"
    subtitle = _subtitle(df, data, agg, facts, interval)
    quotes = _quotes(facts["symbols"])
    quote = f"quote, {quotes[0]}" if len(quotes) == 1 else "quote"
    if len(quotes) > 1:
        subtitle.append(f"notional in {' and '.join(quotes)}, taken at par")
    unit = f"notional, {quote}" if facts["notional"] else "base asset"

    brush = alt.selection_interval(name=BRUSH, encodings=["x"])
    base = alt.Chart(alt.NamedData(name=_DATASET)).properties(width=width, height=110)
    axis = time_axis(span_of(df["time"]) if "time" in df.columns else None)
    x = alt.X("t:T", title=None, scale=alt.Scale(type="utc", domain=brush), axis=axis)
    color = alt.Color(
        "v:N",
        title=None,
        scale=alt.Scale(domain=venues, range=[VENUE_COLORS[i % len(VENUE_COLORS)] for i in range(len(venues))]),
        legend=alt.Legend(orient="top", symbolType="stroke", symbolStrokeWidth=3, labelFontSize=11),
    )

    def tips(view: alt.Chart, *lines: tuple[str, str, str]) -> tuple[alt.Chart, list[alt.Tooltip]]:
        # Formatted as the rows arrive, not per item on every redraw (charts.formatted_tips).
        view, time = time_tip(view, "t")
        view, tooltip = formatted_tips(view, lines)
        return view, [time, alt.Tooltip("v:N", title="venue"), *tooltip]

    # 1. CVD per venue: the brush keeps the zoomed bars, the window sums each venue's
    #    delta from the first of them, so every line starts at 0 at the left edge.
    cum, cvd_tips = tips(
        base.transform_filter(brush).transform_window(cvd="sum(dn)", groupby=["v"], sort=[alt.SortField("t")], frame=[None, 0]),
        ("cvd", "CVD (notional)", ",.0f"),
    )
    cvd = (
        cum.mark_line(strokeWidth=1.5)
        .encode(x=x, y=alt.Y("cvd:Q", title=f"CVD ({quote})", axis=alt.Axis(format="~s")), color=color, tooltip=cvd_tips)
        .properties(title=f"Cumulative volume delta per venue from the first bar in view (notional, {quote})", height=150)
    )
    # 2. Share of all venues' taker volume per bar, stacked: the bands sum to 100 %.
    shares, share_tips = tips(
        base.transform_joinaggregate(tot="sum(vol)", groupby=["t"]).transform_calculate(
            sh="datum.tot > 0 ? datum.vol / datum.tot : null", o=f"indexof({json.dumps(venues)}, datum.v)"
        ),
        ("sh", "share", ".1%"),
        ("vol", f"taker volume ({unit})", ",.0f" if facts["notional"] else ",.4f"),
    )
    share = (
        shares.mark_area(opacity=0.85, interpolate="step-after")
        .encode(
            x=x,
            y=alt.Y(
                "sh:Q", title="share of taker volume", stack="zero", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
            ),
            color=color,
            order=alt.Order("o:Q"),
            tooltip=share_tips,
        )
        .properties(title=f"Each venue's share of all venues' taker buy + sell volume per bar ({unit})", height=110)
    )
    # 3. Taker buy share per venue around the balanced line.
    buys, buy_tips = tips(base, ("bp", "taker buy share", ".1%"))
    buy_share = alt.layer(
        buys.mark_line(strokeWidth=1, opacity=0.85).encode(
            x=x,
            y=alt.Y("bp:Q", title="taker buy share", axis=alt.Axis(format="%"), scale=alt.Scale(zero=False)),
            color=color,
            tooltip=buy_tips,
        ),
        alt.Chart().mark_rule(strokeDash=[4, 4], color="#666").encode(y=alt.datum(0.5)),
    ).properties(title="Taker buy percentage of volume per venue (50 % = balanced)", height=110)
    views: list[Any] = [cvd, share, buy_share]
    # 4. Close per venue: the gap between the lines is the basis; the tooltip gives it
    #    against the mean of the venues' closes in that bar.
    if "c" in data.columns:
        closes, close_tips = tips(
            base.transform_filter("isValid(datum.c)")
            .transform_joinaggregate(cm="mean(c)", groupby=["t"])
            .transform_calculate(bs="(datum.c / datum.cm - 1) * 10000"),
            ("c", "close", ",.7~g"),
            ("bs", "vs venues' mean (bp)", "+.1f"),
        )
        price = (
            closes.mark_line(strokeWidth=1.2)
            .encode(
                x=x,
                y=alt.Y("c:Q", title="close (quote)", scale=alt.Scale(zero=False), axis=alt.Axis(format=",.6~g")),
                color=color,
                tooltip=close_tips,
            )
            .properties(title="Close per venue (quote per base): the gap between the lines is the basis", height=140)
        )
        views.insert(0, price)
    overview = overview_strip(base, brush, "t", "sum(vol):Q", axis)
    # JSON has no NaN: pandas writes null, which Vega skips. The rows live once, in the
    # top-level datasets; every panel refers to them by name.
    records = json.loads(data.to_json(orient="records"))
    return LinkedViews(
        vconcat=[*views, overview],
        spacing=12,
        title=alt.TitleParams(heading, subtitle=subtitle or alt.Undefined, subtitleColor="#b2182b", anchor="start", fontSize=15),
        config=chart_config(
            f"{heading}: taker flow per venue and bar; the tooltip gives the values", title=alt.TitleConfig(anchor="start")
        ),
        # Given here, not through .properties(): that would schema-check every row.
        datasets={_DATASET: records},
    )
