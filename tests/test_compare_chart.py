"""The venue comparison view, read as a user's session: fetch BTC on three venues from
the demo source, stack them into one tidy frame, and draw them side by side."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import vl_convert as vlc

import aperiodic_jupyter as aj
from aperiodic_jupyter.jupyter.charts import BRUSH
from aperiodic_jupyter.jupyter.compare_chart import venue_chart, venue_frame

VENUES = ("binance-futures", "okx-perps", "hyperliquid-perps")
SIMULATED = {"simulated": True, "label": "SIMULATED demo data: not real market data", "source": "demo"}


def venues_frame(get_flow, interval="1h", start="2024-11", end=None, venues=VENUES, **options):
    """What a user writes: one frame per venue, an exchange and a symbol column, concat."""
    parts = []
    for ex in venues:
        f = get_flow(ex, "BTC", interval, start, end, with_price=True, **options)
        f.insert(1, "exchange", ex)
        f.insert(2, "symbol", f.attrs["query"]["symbol"])
        parts.append(f)
    df = pd.concat(parts, ignore_index=True)
    df.attrs = dict(SIMULATED)
    return df


@pytest.fixture(scope="module")
def november(demo):
    return venues_frame(demo.get_flow)


def panels(spec) -> dict[str, dict]:
    """The panels by title (the overview strip has none)."""
    return {v["title"]: v for v in spec["vconcat"] if "title" in v}


def panel(spec, words: str) -> dict:
    return next(v for t, v in panels(spec).items() if words in t)


def encodings(view) -> list[dict]:
    """Every encoding block of a panel, layered or not."""
    return [v["encoding"] for v in view.get("layer", [view]) if "encoding" in v]


def test_the_users_frame_holds_three_venues_with_their_own_symbols(november):
    assert november.groupby("exchange")["symbol"].first().to_dict() == {
        "binance-futures": "perpetual-BTC-USDT:USDT",
        "hyperliquid-perps": "perpetual-BTC-USDC:USDC",
        "okx-perps": "perpetual-BTC-USDT:USDT",
    }
    assert november.groupby("exchange").size().to_dict() == dict.fromkeys(VENUES, 720)


def test_four_panels_with_units_in_their_titles(november):
    spec = venue_chart(november).to_dict()
    titles = list(panels(spec))
    assert len(titles) == 4
    assert any(t.startswith("Cumulative volume delta per venue") and "notional" in t for t in titles)
    assert any("share of all venues' taker buy + sell volume" in t and "notional" in t for t in titles)
    assert any("Taker buy percentage" in t and "50 %" in t for t in titles)
    assert any("Close per venue (quote per base)" in t and "basis" in t for t in titles)
    assert spec["title"]["text"] == "BTC across 3 venues · 1h"
    # Notional is USDT on binance and okx but USDC on hyperliquid: the chart says so.
    assert "notional in USDC and USDT, taken at par" in spec["title"]["subtitle"]
    price = panel(spec, "Close per venue")
    assert price["encoding"]["y"]["scale"] == {"zero": False}
    buy = panel(spec, "Taker buy percentage")
    assert {"datum": 0.5} in [e.get("y") for e in encodings(buy)]  # the balanced line


def test_one_colour_per_venue_the_same_in_every_panel_with_the_legend_on_top(november):
    spec = venue_chart(november).to_dict()
    colours = [e["color"] for view in panels(spec).values() for e in encodings(view) if "color" in e]
    assert len(colours) == 4 and all(c == colours[0] for c in colours)
    scale = colours[0]["scale"]
    assert colours[0]["field"] == "v" and scale["domain"] == list(VENUES)
    assert len(set(scale["range"])) == 3
    assert colours[0]["legend"]["orient"] == "top"


def test_the_overview_brush_zooms_every_panel(november):
    spec = venue_chart(november).to_dict()
    assert [p["name"] for p in spec["params"]] == [BRUSH]
    assert spec["params"][0]["select"] == {"type": "interval", "encodings": ["x"]}
    overview = spec["vconcat"][-1]
    assert "title" not in overview and spec["params"][0]["views"] == [overview["name"]]  # drawn on the strip
    for title, view in panels(spec).items():
        xs = [e["x"] for e in encodings(view) if "x" in e]
        assert xs and all(x["scale"] == {"type": "utc", "domain": {"param": BRUSH}} for x in xs), title


def test_cvd_restarts_at_the_brush_for_each_venue(november):
    spec = venue_chart(november).to_dict()
    cvd = panel(spec, "Cumulative volume delta")
    filt, window = cvd["transform"][:2]
    assert filt == {"filter": {"param": BRUSH}}  # the zoomed bars first ...
    assert window["groupby"] == ["v"] and window["frame"] == [None, 0]  # ... then a sum per venue
    assert window["window"] == [{"op": "sum", "field": "dn", "as": "cvd"}]
    assert window["sort"] == [{"field": "t"}]
    # Unzoomed, each venue's last CVD is its month's total notional delta.
    rows = pd.DataFrame(spec["datasets"]["venues"])
    totals = november.groupby("exchange")["volume_delta_notional"].sum()
    for venue, dn in rows.groupby("v")["dn"].sum().items():
        assert dn == pytest.approx(totals[venue], rel=1e-4)


def test_volume_shares_are_per_bar_notional_and_sum_to_one(november):
    spec = venue_chart(november).to_dict()
    share = panel(spec, "share of all venues'")
    assert share["transform"][0]["joinaggregate"] == [{"op": "sum", "field": "vol", "as": "tot"}]
    assert share["transform"][0]["groupby"] == ["t"]
    assert share["encoding"]["y"]["stack"] == "zero"
    rows = pd.DataFrame(spec["datasets"]["venues"])
    shares = rows["vol"] / rows.groupby("t")["vol"].transform("sum")
    assert shares.groupby(rows["t"]).sum().to_numpy() == pytest.approx(1.0)
    first = november[november["exchange"] == "okx-perps"].iloc[0]
    notional = sum(first[f"taker_{s}_{z}_order_volume"] for s in ("buy", "sell") for z in ("small", "medium", "large"))
    assert rows[rows["v"] == "okx-perps"]["vol"].iloc[0] == pytest.approx(notional, rel=1e-4)


def test_chart_rows_are_short(november):
    data, agg, _ = venue_frame(november)
    assert agg is None and len(data) == 3 * 720
    assert list(data.columns) == ["t", "v", "dn", "vol", "bp", "c"]


def test_a_year_of_minute_bars_on_two_venues_is_under_one_megabyte(demo):
    year = venues_frame(demo.get_flow, "1m", "2024-01-01", "2024-12-31", venues=VENUES[:2])
    assert len(year) == 2 * 527_040
    spec = venue_chart(year).to_dict()
    size = len(json.dumps(spec, separators=(",", ":")))
    assert size < 1_000_000, size
    rows = pd.DataFrame(spec["datasets"]["venues"])
    per_venue = rows.groupby("v")["t"].agg(list)
    assert per_venue.map(len).max() <= 2500
    assert per_venue["binance-futures"] == per_venue["okx-perps"]  # the same bins on each venue
    assert any("527,040 1m bars per venue aggregated to 2,196 4h bars per venue" in s for s in spec["title"]["subtitle"])
    # Sums are kept whole through the aggregation.
    total = year[year["exchange"] == "okx-perps"]["volume_delta_notional"].sum()
    assert rows[rows["v"] == "okx-perps"]["dn"].sum() == pytest.approx(total, rel=1e-4)


def test_without_price_columns_the_price_panel_is_left_out_and_the_subtitle_says_why(november):
    flow_only = november.drop(columns=["open", "high", "low", "close"])
    flow_only.attrs = dict(november.attrs)
    spec = venue_chart(flow_only).to_dict()
    assert len(panels(spec)) == 3 and not any("Close" in t for t in panels(spec))
    assert "no price panel: the frame has no price columns (fetch with with_price=True)" in spec["title"]["subtitle"]
    assert "c" not in spec["datasets"]["venues"][0]


def test_the_simulated_label_is_on_demo_data_only(november):
    assert venue_chart(november).to_dict()["title"]["subtitle"][0] == SIMULATED["label"]
    real = november.copy()
    real.attrs = {"simulated": False, "source": "api"}
    assert "SIMULATED" not in json.dumps(venue_chart(real).to_dict()["title"])


def test_a_venue_with_fewer_bars_still_draws_and_is_named(demo):
    # Hyperliquid's BTC capture starts 2024-10-29 in the demo: 72 bars of 744.
    october = venues_frame(demo.get_flow, start="2024-10")
    spec = venue_chart(october).to_dict()
    rows = pd.DataFrame(spec["datasets"]["venues"])
    assert rows.groupby("v").size().to_dict() == {"binance-futures": 744, "okx-perps": 744, "hyperliquid-perps": 72}
    assert any(s.startswith("hyperliquid-perps has bars 2024-10-29 00:00") for s in spec["title"]["subtitle"])


def test_get_flow_of_several_venues_draws_with_each_venues_coverage_note():
    df = aj.get_flow(list(VENUES), "BTC", "1h", "2024-10", source="demo", progress=False, with_price=True)
    subtitle = venue_chart(df).to_dict()["title"]["subtitle"]
    assert subtitle[0] == SIMULATED["label"]
    notes = [s for s in subtitle if "hyperliquid-perps" in s]
    assert len(notes) == 1 and "captures perpetual-BTC-USDC:USDC from 2024-10-29" in notes[0]


def test_a_frame_without_flow_columns_is_refused_in_one_line(november):
    with pytest.raises(ValueError, match="needs the columns volume_delta_notional"):
        venue_chart(november.drop(columns=["volume_delta_notional"]))


def test_the_spec_renders_and_every_venue_draws_in_every_panel(november, tmp_path):
    spec = venue_chart(november).to_dict()
    png = vlc.vegalite_to_png(spec, scale=1.5)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "venues.png").write_bytes(png)
    marks = re.findall(r'aria-roledescription="([a-z]+) mark"', vlc.vegalite_to_svg(spec))
    assert marks.count("line") == 3 * 3  # CVD, buy share and close: one line per venue
    assert marks.count("area") == 3 + 1  # one share band per venue, and the overview
    # Zoomed to four days, it still renders (the brush is the only selection).
    lo, hi = (int(pd.Timestamp(d, tz="UTC").timestamp() * 1000) for d in ("2024-11-12", "2024-11-16"))
    spec["params"][0]["value"] = {"x": [lo, hi]}
    assert vlc.vegalite_to_png(spec)[:4] == b"\x89PNG"
