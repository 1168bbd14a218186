"""Flow views, the flow panel and its exports, without a browser."""

from __future__ import annotations

import gzip
import io
import json

import pandas as pd
import pytest

from aperiodic_jupyter.jupyter.chart_data import unpack
from aperiodic_jupyter.jupyter.charts import BRUSH, chart_frame, downsample, flow_chart
from aperiodic_jupyter.jupyter.panel import FlowPanel


@pytest.fixture(scope="module")
def quarter(demo):
    return demo.get_flow("binance-futures", "BTC", "1h", "2024-01..2024-03")


def payload_bytes(chart) -> int:
    return len(json.dumps(chart.to_dict(), separators=(",", ":")))


def test_chart_has_every_flow_view_a_shared_brush_and_a_demo_label(quarter):
    spec = flow_chart(quarter, panels="all").to_dict()
    titles = [v.get("title", "") for v in spec["vconcat"]]
    assert any("Volume delta" in t for t in titles)
    assert any("buy vs sell" in t for t in titles)
    assert any("50 %" in t for t in titles)
    assert any("Buyers' order-size mix" in t for t in titles) and any("Sellers'" in t for t in titles)
    assert any("toxicity" in t for t in titles) and any("entropy" in t for t in titles)
    assert [p["name"] for p in spec["params"]] == [BRUSH]
    assert "SIMULATED demo data" in spec["title"]["subtitle"][0]
    text = json.dumps(spec)
    assert '"type": "utc"' in text  # times are drawn in UTC, not the browser's zone
    assert "(base)" in text and "notional" in text  # units on the axes


def test_api_data_carries_no_demo_label(quarter):
    real = quarter.copy()
    real.attrs = {**quarter.attrs, "simulated": False, "source": "api"}
    spec = flow_chart(real).to_dict()
    assert "SIMULATED" not in json.dumps(spec.get("title", {}))


def test_small_frames_are_drawn_bar_for_bar(demo):
    df = demo.get_flow("binance-futures", "ETH", "1h", "2024-01")
    data, agg = chart_frame(df)
    assert agg is None and len(data) == len(df) == 744


def test_a_year_of_minute_bars_is_aggregated_below_one_megabyte(demo):
    year = demo.get_flow("binance-futures", "BTC", "1m", "2024-01-01", "2024-12-31")
    assert len(year) == 527_040  # 2024 is a leap year: 366 days of 1440 bars
    chart = flow_chart(year)
    assert payload_bytes(chart) < 1_000_000
    subtitle = chart.to_dict()["title"]["subtitle"]
    assert any("aggregated to" in s and "1m bars" in s for s in subtitle)


def test_aggregation_sums_sums_and_recomputes_ratios(demo):
    df = demo.get_flow("binance-futures", "BTC", "1m", "2024-01-01", "2024-01-03")
    small, agg = downsample(df, 100)
    assert agg == "1h"
    assert small["taker_buy_volume"].sum() == pytest.approx(df["taker_buy_volume"].sum(), rel=1e-6)
    first = df[df["time"] < df["time"].iloc[0] + pd.Timedelta(hours=1)]
    expected = first["taker_buy_volume"].sum() / (first["taker_buy_volume"].sum() + first["taker_sell_volume"].sum())
    assert small["taker_buy_sell_percentage"].iloc[0] == pytest.approx(expected, rel=1e-6)


def brush_from_the_page(widget, lo: pd.Timestamp, hi: pd.Timestamp) -> None:
    """What js/chart_view.js writes when the user drags the bottom strip."""
    widget.set_state({"brush": [lo.value // 10**6, hi.value // 10**6]})


def test_panel_summary_brush_and_exports(quarter, tmp_path):
    ns: dict = {}
    panel = FlowPanel(quarter, namespace=ns)
    assert "2,184 rows" in panel.summary and "SIMULATED" in panel.summary and panel.simulated
    assert panel.brushed is quarter

    lo, hi = pd.Timestamp("2024-02-01", tz="UTC"), pd.Timestamp("2024-02-02 23:00", tz="UTC")
    brush_from_the_page(panel, hi, lo)  # dragged right to left
    assert panel.brush_range == (lo, hi)
    assert len(panel.brushed) == 48
    brush_from_the_page(panel, lo, hi)

    raw, name, mime = panel.export_bytes("parquet")
    assert name == "binance-futures_perpetual-BTC-USDT-USDT_1h_2024-01-01_2024-03-31.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(raw)), quarter)  # exports round-trip
    raw, name, _ = panel.export_bytes("csv", "brush")
    lines = raw.decode().splitlines()
    assert len(lines) == 49 and lines[1].startswith("2024-02-01T00:00:00Z,")
    assert "20240201T0000-20240202T2300" in name
    png, _, mime = panel.export_bytes("png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and mime == "image/png"
    svg, _, _ = panel.export_bytes("svg", "brush")
    assert svg.lstrip().startswith(b"<svg")

    panel.to_variable("feb", "brush")
    assert len(ns["feb"]) == 48
    with pytest.raises(ValueError, match="not a Python variable name"):
        panel.to_variable("2fast")
    with pytest.raises(ValueError, match="builtin"):
        panel.to_variable("print")

    panel.set_state({"brush": []})  # a double-click clears the brush
    assert panel.brush_range is None and panel.brushed is quarter


def replies(widget, monkeypatch) -> list:
    sent: list = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append((content, buffers)))
    return sent


def test_export_messages_answer_with_binary_buffers(quarter, monkeypatch):
    panel = FlowPanel(quarter, namespace={})
    sent = replies(panel, monkeypatch)
    panel._handle_custom_msg({"type": "export", "format": "csv", "scope": "full", "dest": "download"}, [])
    content, buffers = sent[-1]
    assert content["type"] == "file" and content["filename"].endswith(".csv")
    assert isinstance(buffers[0], bytes) and buffers[0].startswith(b"time,")
    panel._handle_custom_msg({"type": "export", "format": "csv", "scope": "brush"}, [])
    assert sent[-1][0] == {"type": "status", "text": "error: nothing is brushed: drag across the bottom strip first"}


def test_save_to_file_writes_into_the_kernels_folder_and_never_overwrites(quarter, monkeypatch, tmp_path):
    # VS Code's webview saves no browser download: the bar writes through the kernel instead.
    monkeypatch.chdir(tmp_path)
    panel = FlowPanel(quarter, namespace={})
    sent = replies(panel, monkeypatch)
    for _ in range(2):
        panel._handle_custom_msg({"type": "export", "format": "parquet", "scope": "full", "dest": "file"}, [])
    stem = "binance-futures_perpetual-BTC-USDT-USDT_1h_2024-01-01_2024-03-31"
    first, second = tmp_path / f"{stem}.parquet", tmp_path / f"{stem}-1.parquet"
    assert {p.name for p in tmp_path.iterdir()} == {first.name, second.name}  # no temporary file left
    assert sent[-1][0] == {"type": "status", "text": f"saved {second} ({second.stat().st_size:,} bytes)"}
    pd.testing.assert_frame_equal(pd.read_parquet(second), quarter)


def test_to_python_without_ipython_puts_the_frame_on_the_widget(quarter, monkeypatch):
    import aperiodic_jupyter.jupyter.chart_widget as chart_widget

    monkeypatch.setattr(chart_widget, "ipython_namespace", lambda: None)  # as in marimo or a script
    panel = FlowPanel(quarter)
    assert panel.has_namespace is False  # the bar shows "to Python", not "to variable"
    sent = replies(panel, monkeypatch)
    brush_from_the_page(panel, pd.Timestamp("2024-03-01", tz="UTC"), pd.Timestamp("2024-03-01 09:00", tz="UTC"))
    panel.set_state({"to_python": {"n": 1, "scope": "brush"}})  # the button, as the page writes it
    assert len(panel.exported) == 10 and sent[-1][0] == {"type": "status", "text": "10 rows are on .exported"}
    # A page that still shows "to variable" is answered the same way, never with an error.
    panel._handle_custom_msg({"type": "variable", "name": "flows", "scope": "full"}, [])
    assert len(panel.exported) == len(quarter) and sent[-1][0]["text"] == "2,184 rows are on .exported"


def test_the_rows_travel_once_packed_and_only_the_fields_drawn(quarter):
    panel = FlowPanel(quarter, panels="cvd,delta")
    spec = panel.spec.to_dict()
    rows = unpack(panel.data_layout, panel.data)["flow"]
    assert [set(r) for r in rows[:1]] == [{"time", "delta", "dn", "buy"}]  # cvd, delta, and the overview strip
    assert rows[0] == pytest.approx(spec["datasets"]["flow"][0], rel=1e-6)
    assert rows[-1]["time"] == spec["datasets"]["flow"][-1]["time"]  # times are exact (float64)
    sent = json.loads(gzip.decompress(panel.chart_spec))
    assert "datasets" not in sent and sent["vconcat"] == spec["vconcat"]
    json_rows = len(json.dumps(spec["datasets"]["flow"]))
    assert len(panel.data) < json_rows / 4, (len(panel.data), json_rows)


def test_append_sends_only_the_changed_rows_and_redraws_when_the_chart_changes(demo):
    january = demo.get_flow("binance-futures", "BTC", "1h", "2024-01")
    panel = FlowPanel(january.iloc[:500], panels="cvd,delta")
    charts = panel.charts
    last = january.iloc[499:505].copy()
    last.loc[last.index[0], "volume_delta"] = 123.25  # the open bar, re-published with more trades
    panel.append(last)
    assert panel.charts == charts and len(panel.df) == 505  # no new chart: a tail
    tail = unpack([panel.tail_layout], panel.tail)["flow"]
    assert len(tail) == 6 and tail[0]["delta"] == 123.25
    assert panel.tail_layout["from"] == january["time"].iloc[499].value // 10**6
    # The page's rows (data, then the tail from its first time) are the new chart's rows.
    base = unpack(panel.data_layout, panel.data)["flow"]
    page = [r for r in base if r["time"] < panel.tail_layout["from"]] + tail
    expected = FlowPanel(panel.df, panels="cvd,delta")
    assert page == unpack(expected.data_layout, expected.data)["flow"]
    panel.append(january.iloc[505:])  # past a quarter of the chart: drawn anew
    assert panel.charts == charts + 1 and panel.tail == b"" and len(panel.df) == 744


def test_chart_spec_is_strict_json(quarter):
    # Kernels reject NaN in widget messages: missing values must travel as null.
    json.dumps(flow_chart(quarter).to_dict(), allow_nan=False)
