"""Altair views of a flow frame. Views never fetch: they take a frame and return a chart.

``flow_chart(df, panels=...)`` stacks the chosen panels (:data:`PANELS`: price, CVD,
volume delta, buy vs sell volume, buy share, order-size mix, toxicity, entropy, and the
price-vs-delta divergence view) on one UTC time axis above an overview strip whose
brush zooms them all. The
brush is the chart's ``brush`` selection; the panel widget sends its range back to
Python (``FlowPanel.brush_range``).

Large frames are aggregated here, in Python, to at most ``max_points`` bars before
anything is sent to the browser (a year of 1-minute bars is 525,600 rows; Altair refuses
more than 5,000 by default, for good reason). Sums are summed, ratios are recomputed
from the sums, entropy and toxicity are averaged, and the chart says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import altair as alt
import numpy as np
import pandas as pd

from ..core.query import INTERVAL_SECONDS
from ..core.schema import SIDES, SIZES
from .labels import source_label
from .panel_choice import DEFAULT_PANELS, PANELS, PRICE_PANELS, parse_panels

__all__ = [
    "flow_chart",
    "downsample",
    "chart_frame",
    "parse_panels",
    "BRUSH",
    "FLOW_DATASET",
    "LinkedViews",
    "MAX_POINTS",
    "PANELS",
    "DEFAULT_PANELS",
]

BRUSH = "brush"
#: The name of the flow chart's rows in the spec's ``datasets`` (one row per bar, in time order).
FLOW_DATASET = "flow"
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
# How price bars aggregate: the first open, the highest high, the lowest low, the last close.
_PRICE_AGG = {"open": "first", "high": "max", "low": "min", "close": "last"}
# Short keys: chart data is JSON records, so every key is repeated on every row.
_SHORT = {
    "volume_delta": "delta",
    "taker_buy_volume": "buy",
    "taker_sell_volume": "sell",
    "taker_buy_sell_percentage": "buy_pct",
    "flow_toxicity_score": "tox",
    "flow_entropy": "ent",
    "volume_delta_notional": "dn",
}
_SHORT_PRICE = {"open": "o", "high": "h", "low": "l", "close": "c"}
BUY_COLOR, SELL_COLOR = "#1a9850", "#d73027"
SIZE_COLORS = ["#fdae61", "#74add1", "#313695"]


def _bar_seconds(times: pd.Series) -> float:
    if len(times) < 2:
        return 60.0
    return float(times.diff().dropna().min().total_seconds()) or 60.0


def downsample(df: pd.DataFrame, max_points: int = MAX_POINTS) -> tuple[pd.DataFrame, str | None]:
    """At most ``max_points`` bars: the frame itself, or the finest coarser interval
    (30s, 1m, ... 1d, 1w) that fits, with sums summed, ratios recomputed and price bars
    merged (first open, highest high, lowest low, last close). Returns ``(frame, new
    interval or None)``."""
    if len(df) <= max_points:
        return df, None
    times = df["time"]
    bar = _bar_seconds(times)
    span = (times.iloc[-1] - times.iloc[0]).total_seconds() + bar
    fits = [
        (r, lab)
        for r, lab in _RULES
        if pd.Timedelta(r).total_seconds() > bar and span / pd.Timedelta(r).total_seconds() <= max_points
    ]
    rule, label = fits[0] if fits else _RULES[-1]
    present = [c for c in _ADDITIVE if c in df.columns]
    # Only the aggregated columns: resampling a whole flow frame (some forty columns)
    # first copies and consolidates all of them, up to 0.6 s for a year of 1-minute bars.
    kept = ["time", *present, *(c for c in [*_MEAN, *_PRICE_AGG] if c in df.columns)]
    # Sub-day bins align to the epoch (so 4h bars start at 00:00 UTC); pandas aligns day bins itself.
    grouped = df[kept].set_index("time").resample(rule, **({} if rule.endswith("D") else {"origin": "epoch"}))
    out = grouped[present].sum()
    for c in _MEAN:
        if c in df.columns:
            out[c] = grouped[c].mean()
    for c, how in _PRICE_AGG.items():
        if c in df.columns:
            out[c] = grouped[c].agg(how)
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
    if "close" in small.columns:
        for col, short in _SHORT_PRICE.items():
            out[short] = _round(small[col], 8)
    return out, agg


#: A bar's start as tooltips show it: what Vega-Lite writes for a minute time unit.
TIP_TIME_FORMAT = "%b %d, %Y %H:%M"


def time_tip(view: alt.Chart, field: str) -> tuple[alt.Chart, alt.Tooltip]:
    """``view`` with each bar's start (``field``, epoch ms) written as UTC text
    (:data:`TIP_TIME_FORMAT`) as its rows arrive, and the tooltip line showing it.

    Why not ``alt.Tooltip("utcyearmonthdatehoursminutes(time):T")``, which shows the
    same text: Vega-Lite formats it for every item on every redraw, with a format string
    it builds anew each time (see :func:`formatted_tips`)."""
    expr = f"utcFormat(datum[{json.dumps(field)}], {json.dumps(TIP_TIME_FORMAT)})"
    return view.transform_calculate(tip_time=expr), alt.Tooltip("tip_time:N", title="bar start (UTC)")


def formatted_tips(view: alt.Chart, lines: Iterable[tuple[str, str, str]]) -> tuple[alt.Chart, list[alt.Tooltip]]:
    """``view`` with each tooltip line's number written as text as its rows arrive, and
    the tooltip lines showing them; ``lines`` are ``(field, title, d3 format)``.

    Why: Vega evaluates a mark's tooltip for every item whenever it redraws the mark,
    and a brush move redraws every panel of a chart (one Vega view): formatting some
    30,000 numbers and times per move was most of a move's time on a year of 1-minute
    bars (``benchmarks/browser_analysis.md``). A calculate transform runs when the rows
    arrive (after a brush filter, when the brushed rows change), so a redraw only looks
    the text up. The text is what ``alt.Tooltip(field, format=...)`` shows: the same
    ``format`` call."""
    calc: dict[str, str] = {}
    tips: list[alt.Tooltip] = []
    for field, title, fmt in lines:
        calc[f"tip_{field}"] = f"format(datum[{json.dumps(field)}], {json.dumps(fmt)})"
        tips.append(alt.Tooltip(f"tip_{field}:N", title=title))
    return view.transform_calculate(**calc), tips


#: One panel as Altair builds it.
_View = alt.Chart | alt.LayerChart | alt.FacetChart


@dataclass(frozen=True)
class _Context:
    """What every panel builder needs: the data, the shared x axis and brush, units."""

    base: alt.Chart
    x: alt.X
    brush: alt.Parameter
    tip: alt.Tooltip
    data: pd.DataFrame
    interval: str
    width: int

    def tips(self, view: alt.Chart, *lines: tuple[str, str, str]) -> tuple[alt.Chart, list[alt.Tooltip]]:
        """``view`` and its tooltip: the bar's start, then ``(field, title, d3
        format)`` per line, formatted as the rows arrive (:func:`formatted_tips`)."""
        view, tips = formatted_tips(view, lines)
        return view, [self.tip, *tips]


def _price(c: _Context) -> _View:
    # Candles while each has room to be seen; a close line once they would be slivers.
    title = "Price (quote per base)"
    y = alt.Y("c:Q", title="price (quote)", scale=alt.Scale(zero=False))
    base, tips = c.tips(c.base, *((k, name, ",.6~g") for name, k in _SHORT_PRICE.items()))
    if len(c.data) <= c.width // 4:
        up = alt.when(alt.datum.c >= alt.datum.o).then(alt.value(BUY_COLOR)).otherwise(alt.value(SELL_COLOR))
        wick = c.base.mark_rule().encode(
            x=c.x, y=alt.Y("l:Q", title="price (quote)", scale=alt.Scale(zero=False)), y2="h:Q", color=up
        )
        body = base.mark_bar().encode(x=c.x, y="o:Q", y2="c:Q", color=up, tooltip=tips)
        return alt.layer(wick, body).properties(title=f"{title}: candles", height=140)
    line = base.mark_line(strokeWidth=1, color="#333").encode(x=c.x, y=y, tooltip=tips)
    return line.properties(title=f"{title}: close", height=140)


def _cvd(c: _Context) -> _View:
    # Recomputed over the brushed range: the filter keeps the zoomed bars, the window
    # sums from the first of them, so CVD always starts at 0 at the left edge.
    cum = c.base.transform_filter(c.brush).transform_window(
        cvd="sum(delta)", cvd_n="sum(dn)", sort=[alt.SortField("time")], frame=[None, 0]
    )
    tipped, tips = c.tips(cum, ("cvd", "CVD (base)", ",.4f"), ("cvd_n", "CVD (notional)", ",.0f"))
    base_line = tipped.mark_line(strokeWidth=1.5, color="#2166ac").encode(
        x=c.x, y=alt.Y("cvd:Q", title="CVD (base)", axis=alt.Axis(titleColor="#2166ac")), tooltip=tips
    )
    notional = cum.mark_line(strokeWidth=1, strokeDash=[4, 2], color="#b35806").encode(
        x=c.x, y=alt.Y("cvd_n:Q", title="CVD (notional, quote)", axis=alt.Axis(titleColor="#b35806", format="~s"))
    )
    return (
        alt.layer(base_line, notional)
        .resolve_scale(y="independent")
        .properties(title="Cumulative volume delta from the first bar in view: base (solid) and notional (dashed)", height=110)
    )


def _delta(c: _Context) -> _View:
    base, tips = c.tips(c.base, ("delta", "volume delta (base)", ",.4f"))
    return (
        base.mark_bar()
        .encode(
            x=c.x,
            y=alt.Y("delta:Q", title="volume delta (base)"),
            color=alt.when(alt.datum.delta >= 0).then(alt.value(BUY_COLOR)).otherwise(alt.value(SELL_COLOR)),
            tooltip=tips,
        )
        .properties(title="Volume delta per bar (taker buy − sell, base asset)")
    )


def _volumes(c: _Context) -> _View:
    return (
        c.base.transform_fold(["buy", "sell"], as_=["side", "volume"])
        .mark_line(strokeWidth=1)
        .encode(
            x=c.x,
            y=alt.Y("volume:Q", title="volume (base)"),
            color=alt.Color(
                "side:N",
                scale=alt.Scale(domain=["buy", "sell"], range=[BUY_COLOR, SELL_COLOR]),
                legend=alt.Legend(orient="top", title=None),
            ),
        )
        .properties(title="Taker buy vs sell volume (base asset)")
    )


def _buy_share(c: _Context) -> _View:
    base, tips = c.tips(c.base, ("buy_pct", "taker buy share", ".1%"))
    return alt.layer(
        base.mark_line(strokeWidth=1, color="#4c78a8").encode(
            x=c.x,
            y=alt.Y("buy_pct:Q", title="taker buy share", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            tooltip=tips,
        ),
        alt.Chart().mark_rule(strokeDash=[4, 4], color="#666").encode(y=alt.datum(0.5)),
    ).properties(title="Taker buy percentage of volume (50 % = balanced)")


def _mix(c: _Context, side: str) -> _View:
    # Log scale: large trades carry most notional, so small and medium would vanish
    # in a linear stack; on a log axis each bucket's level and swings stay readable.
    cols: list[Any] = [f"{side}_{size}" for size in SIZES]
    folded = c.base.transform_fold(cols, as_=["bucket", "notional"]).transform_filter("datum.notional > 0")
    base, tips = c.tips(folded, ("notional", "notional", ",.0f"))
    return (
        base.mark_line(strokeWidth=1)
        .encode(
            x=c.x,
            y=alt.Y("notional:Q", scale=alt.Scale(type="log"), title="notional (quote)", axis=alt.Axis(format="~s", tickCount=3)),
            color=alt.Color(
                "bucket:N",
                scale=alt.Scale(domain=cols, range=SIZE_COLORS),
                legend=alt.Legend(orient="top", title=None, labelExpr="split(datum.label, '_')[1]"),
            ),
            tooltip=[*tips[:1], alt.Tooltip("bucket:N"), *tips[1:]],
        )
        .properties(
            title=f"{'Buyers' if side == 'buy' else 'Sellers'}' order-size mix: notional by size (small < $100 ≤ medium < $1,000 ≤ large)",
            height=90,
        )
    )


def _sizes(c: _Context) -> list[_View]:
    return [_mix(c, "buy"), _mix(c, "sell")]


def _toxicity(c: _Context) -> _View:
    base, tips = c.tips(c.base, ("tox", "toxicity", ".2f"))
    return (
        base.mark_line(strokeWidth=1, color="#7b3294")
        .encode(x=c.x, y=alt.Y("tox:Q", title="toxicity (z × z)"), tooltip=tips)
        .properties(title="Flow toxicity score", height=80)
    )


def _entropy(c: _Context) -> _View:
    base, tips = c.tips(c.base, ("ent", "entropy", ".3f"))
    return (
        base.mark_line(strokeWidth=1, color="#008837")
        .encode(x=c.x, y=alt.Y("ent:Q", title="entropy (nats)", scale=alt.Scale(domain=[0, 0.7])), tooltip=tips)
        .properties(title="Flow entropy (ln 2 ≈ 0.693 = balanced)", height=80)
    )


def divergence_summary(data: pd.DataFrame, interval: str) -> str:
    """One line: the correlation of each bar's price change with its volume delta."""
    ret = data["c"] / data["o"] - 1.0
    ok = ret.notna() & data["dn"].notna()
    if ok.sum() < 3 or ret[ok].std() == 0 or data["dn"][ok].std() == 0:
        return "Price change vs volume delta: too few bars for a correlation"
    r = float(np.corrcoef(data["dn"][ok], ret[ok])[0, 1])
    lean = "buying lifts price" if r > 0.1 else "selling lifts price" if r < -0.1 else "no clear relation"
    return f"Price change vs volume delta per {interval} bar: r = {r:+.2f} over {int(ok.sum()):,} bars ({lean})"


def _divergence(c: _Context) -> _View:
    # Not a time panel: it follows the brush by filtering to the zoomed bars.
    pts = c.base.transform_filter(c.brush).transform_calculate(ret="(datum.c / datum.o - 1) * 100")
    x = alt.X("dn:Q", title="volume delta (notional, quote)", axis=alt.Axis(format="~s"))
    y = alt.Y("ret:Q", title="price change (%)")
    tipped, tips = c.tips(pts, ("dn", "delta (notional)", ",.0f"), ("ret", "change %", ".3f"))
    dots = tipped.mark_circle(size=14, opacity=0.5, color="#4c78a8").encode(x=x, y=y, tooltip=tips)
    fit = pts.transform_regression("dn", "ret").mark_line(color="#b2182b", strokeWidth=1.5).encode(x=x, y=y)
    return alt.layer(dots, fit).properties(title=divergence_summary(c.data, c.interval), height=180, width=c.width // 2)


_BUILDERS: dict[str, Any] = {
    "price": _price,
    "cvd": _cvd,
    "delta": _delta,
    "volumes": _volumes,
    "buy_share": _buy_share,
    "sizes": _sizes,
    "toxicity": _toxicity,
    "entropy": _entropy,
    "divergence": _divergence,
}
#: The chart-frame columns each panel reads (its marks and tooltips): only these travel.
_FIELDS: dict[str, tuple[str, ...]] = {
    "price": tuple(_SHORT_PRICE.values()),
    "cvd": ("delta", "dn"),
    "delta": ("delta",),
    "volumes": ("buy", "sell"),
    "buy_share": ("buy_pct",),
    "sizes": tuple(f"{side}_{size}" for side in SIDES for size in SIZES),
    "toxicity": ("tox",),
    "entropy": ("ent",),
    "divergence": ("o", "c", "dn"),
}
_OVERVIEW_FIELD = "buy"  # what the overview strip under every chart draws


#: A chart spanning more than this labels month starts "Jan 2024" (its ticks are months).
LONG_SPAN = pd.Timedelta(days=200)


def time_axis(span: pd.Timedelta | None) -> alt.Axis:
    """The time axis of every panel, for a chart whose bars span ``span``: one label style
    at every zoom, "Jan 14" for a day, "06:00" within one ("06:00:15" within a minute);
    the date at midnight marks where a day starts among hour ticks. Vega's own
    multi-format picks a label by what a tick's time is aligned to, so a zoomed month
    showed "Feb 2024" among "Jan 30" and "Feb 02"; here month starts read "Feb 01",
    except on a chart longer than :data:`LONG_SPAN`, whose ticks are months ("Feb 2024")."""
    day = "utcdate(datum.value) == 1 ? '%b %Y' : '%b %d'" if span is not None and span > LONG_SPAN else "'%b %d'"
    return alt.Axis(
        labelExpr=(
            "utcFormat(datum.value, utcseconds(datum.value) ? '%H:%M:%S'"
            f" : (utchours(datum.value) || utcminutes(datum.value)) ? '%H:%M' : {day})"
        ),
        # About 90 px per tick on a 720 px panel: room for every label, so dropping
        # overlapping labels never leaves only the "12:00" ones of a zoomed week.
        tickCount=8,
        labelOverlap=True,
        labelSeparation=6,  # room between labels, so "Nov 12" and "06:00" never touch
    )


def span_of(times: pd.Series) -> pd.Timedelta | None:
    """From the first to the last of ``times`` (``None`` without any)."""
    return (times.max() - times.min()) if len(times) else None


class LinkedViews(alt.VConcatChart):
    """A stack of views whose rows live in the top-level ``datasets`` and never pass
    through Altair's schema checks.

    Altair validates every row it is given, when the rows are set with ``.properties``
    and again when ``to_dict`` walks and validates the whole spec: seconds for a couple
    of thousand bars, against milliseconds for the rest of the chart. The rows are JSON
    numbers, text and nulls from ``DataFrame.to_json``, so checking them finds nothing.
    Give them to the constructor (``datasets=``) or set them as an attribute
    (``chart.datasets = {...}``); ``to_dict`` converts the chart without them and puts
    them back: the same dict Altair's own gives.
    """

    def __init__(self, vconcat: list[Any], **kwargs: Any) -> None:
        """Everything at once (``title``, ``resolve``, ``config``, ``datasets`` ...):
        each ``.properties``/``.configure_*`` call after this makes the chart anew,
        deep-copying every panel (about 100 ms each for the flow chart). ``datasets`` is
        kept out of Altair's checks (set after the chart is made)."""
        datasets = kwargs.pop("datasets", alt.Undefined)
        super().__init__(vconcat=vconcat, **kwargs)
        if datasets is not alt.Undefined:
            self.datasets = datasets

    def to_dict(
        self,
        validate: bool = True,
        *,
        format: Literal["vega-lite", "vega"] = "vega-lite",
        ignore: list[str] | None = None,
        context: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The Vega-Lite (or, compiled, Vega) spec, rows included; see the class."""
        rows = self._get("datasets")
        # Altair's own path where it does more than convert: a nested chart, or data
        # pre-transformed by VegaFusion.
        nested = context is not None and not context.get("top_level", True)
        if not isinstance(rows, dict) or nested or alt.data_transformers.active == "vegafusion":
            return super().to_dict(validate, format=format, ignore=ignore, context=context)
        bare = self.copy(deep=False)
        bare.datasets = alt.Undefined
        spec = super(LinkedViews, bare).to_dict(validate, ignore=ignore, context=context)
        # Fresh row dicts, as Altair's walk would make: callers may change the result.
        spec["datasets"] = {**spec.get("datasets", {}), **{k: [dict(r) for r in v] for k, v in rows.items()}}
        if format == "vega":
            compile_spec = alt.vegalite_compilers.get()
            if compile_spec is None:
                raise ValueError("No active vega-lite compiler plugin found")
            return compile_spec(spec)
        return spec


def chart_config(description: str, **extra: Any) -> alt.Config:
    """The top-level config every linked chart shares: no frame around panels, small
    axis text, and ``description`` as every mark's ARIA description (SVG only);
    ``extra`` adds config entries (``title=alt.TitleConfig(...)``).

    Why one fixed description: by default Vega-Lite describes each item (bar, line
    point) with every field it encodes, formatted; Vega redoes that for every item of
    every panel on each brush move, over half of a move's time on a year of 1-minute
    bars (``benchmarks/browser_analysis.md``). The canvas the page draws has no ARIA
    attributes, and an SVG export keeps its marks' roles ("line mark") and this line."""
    return alt.Config(
        view=alt.ViewConfig(stroke=None),
        axis=alt.AxisConfig(labelFontSize=10, titleFontSize=11),
        mark=alt.MarkConfig(description=description),
        **extra,
    )


def overview_strip(base: alt.Chart, brush: alt.Parameter, time_field: str, y: str, axis: alt.Axis) -> alt.Chart:
    """The strip under every view: an area of ``y`` over time carrying the brush that
    zooms every panel above it."""
    return (
        base.mark_area(color="#9ecae1")
        .encode(
            x=alt.X(
                f"{time_field}:T",
                title="time (UTC) — drag here to zoom all panels, double-click to reset",
                scale=alt.Scale(type="utc"),
                axis=axis,
            ),
            y=alt.Y(y, title=None, axis=None),
        )
        .add_params(brush)
        .properties(height=50)
    )


def flow_chart(
    df: pd.DataFrame,
    *,
    panels: str | list[str] | tuple[str, ...] | None = None,
    max_points: int = MAX_POINTS,
    width: int = 720,
    title: str | None = None,
) -> LinkedViews:
    """The linked views of one symbol's frame (see module docstring and :data:`PANELS`).

    Price panels are drawn when the frame has price columns (``with_price=True``);
    otherwise they are left out and the subtitle says why."""
    chosen = parse_panels(panels)
    attrs: dict[str, Any] = dict(df.attrs)
    data, agg = chart_frame(df, max_points)
    q = attrs.get("query", {})
    heading = title or " ".join(str(q.get(k, "")) for k in ("exchange", "symbol", "interval")).strip() or "taker flow"
    subtitle = []
    if source_label(attrs):  # simulated or preview data says so on every view
        subtitle.append(str(source_label(attrs)))
    note = attrs.get("coverage", {}).get("note")
    if note:  # the chart must not pass a short frame off as the whole asked range
        subtitle.append(str(note))
    if agg:
        subtitle.append(
            f"{len(df):,} {q.get('interval', '')} bars aggregated to {len(data):,} {agg} bars for display; sums summed, entropy and toxicity averaged"
        )
    if "c" not in data.columns and PRICE_PANELS & set(chosen):
        why = (attrs.get("price") or {}).get("error") or "the frame has no price columns (fetch with with_price=True)"
        subtitle.append(f"no price panel: {why}")
        chosen = tuple(p for p in chosen if p not in PRICE_PANELS)
    brush = alt.selection_interval(name=BRUSH, encodings=["x"])
    drawn = {"time", _OVERVIEW_FIELD}.union(*(_FIELDS[p] for p in chosen))
    data = data[[c for c in data.columns if c in drawn]]
    # JSON has no NaN: pandas writes missing values as null, which Vega skips. The rows
    # live once, in the top-level datasets; panels refer to them by name (Altair deep-
    # copies every panel while composing, and inline rows would be copied each time).
    records = json.loads(data.to_json(orient="records"))
    rows = alt.Chart(alt.NamedData(name=FLOW_DATASET)).properties(width=width, height=110)
    # The bar's start as text, before any panel's own transforms: Vega-Lite computes
    # it once for every panel (and the folded rows of the order-size panels copy it).
    base, tip = time_tip(rows, "time")
    axis = time_axis(span_of(df["time"]) if "time" in df.columns else None)
    ctx = _Context(
        base=base,
        x=alt.X("time:T", title=None, scale=alt.Scale(type="utc", domain=brush), axis=axis),
        brush=brush,
        tip=tip,
        data=data,
        interval=agg or str(q.get("interval", "")),
        width=width,
    )
    views: list[Any] = []
    for name in chosen:
        built = _BUILDERS[name](ctx)
        views += built if isinstance(built, list) else [built]
    return LinkedViews(
        vconcat=[*views, overview_strip(rows, brush, "time", f"{_OVERVIEW_FIELD}:Q", axis)],
        spacing=12,
        title=alt.TitleParams(heading, subtitle=subtitle or alt.Undefined, subtitleColor="#b2182b", anchor="start", fontSize=15),
        resolve=alt.Resolve(scale=alt.ScaleResolveMap(color="independent")),
        config=chart_config(f"{heading}: taker flow per bar; the tooltip gives the values"),
        # Given here, not through .properties(): that would schema-check every row.
        datasets={FLOW_DATASET: records},
    )
