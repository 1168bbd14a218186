"""The explorer widget's model, without a browser (the browser tests drive the real UI)."""

from __future__ import annotations

import gzip
import json
import time

import pandas as pd
import pytest

import aperiodic_jupyter as aj
from aperiodic_jupyter import Client, QueryError
from aperiodic_jupyter.core.cache import MemoryCache
from aperiodic_jupyter.jupyter.charts import MAX_POINTS
from aperiodic_jupyter.jupyter.explorer import FlowExplorer

from .server import API_KEY


def saved_state(widget) -> dict:
    """What a notebook saves for the explorer (its code aside)."""
    state = widget.get_state()
    return {k: v for k, v in state.items() if k not in ("_esm", "_css")}


def test_prefilled_from_python_and_loaded_from_python():
    w = FlowExplorer("okx", "ETH", "4h", "2024-02")
    seen = []
    w.observe(lambda change: seen.append(change["name"]), ["query", "df"])
    df = w.load()
    assert len(df) == 29 * 6 and w.df is df
    assert w.query.symbol == "perpetual-ETH-USDT:USDT" and w.query.exchange == "okx-perps"
    assert seen == ["query", "df"]
    assert (w.progress_done, w.progress_total) == (1, 1)
    assert "SIMULATED" in w.summary and w.simulated and w.status == "loaded"
    assert w.panel is w and w.charts == 1 and w.loads == 1  # the chart went to the page with the load


def test_the_load_button_fetches_in_a_worker_thread():
    w = FlowExplorer(client=Client("demo", cache_dir=False, memory_cache=MemoryCache()))
    # exactly what js/explorer.js sends on click
    w._handle_custom_msg(
        {"type": "load", "query": {"symbol": "SOL", "interval": "1d", "range_text": "2024-01..2024-06"}}, []
    )
    deadline = time.monotonic() + 60
    while w.df is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.df is not None and len(w.df) == 182
    assert w.symbol == "SOL" and w.loading is False
    assert w.progress_total == 6


def test_errors_show_inline_in_one_line():
    w = FlowExplorer(range="2024-03..2024-01")
    with pytest.raises(QueryError):
        w.load()
    assert w.error == "range ends (2024-01-31) before it starts (2024-03-01); write START..END"
    w.range_text = "2024-01"
    w.symbol = "NOPE"
    w.load(wait=False)
    assert w.error.startswith("unknown symbol 'NOPE'") and "\n" not in w.error


def test_api_key_is_never_widget_state(api, monkeypatch):
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    aj.set_api_key(API_KEY)
    w = FlowExplorer(source="api", range="2024-01")
    w.load()
    assert w.df.attrs["source"] == "api"
    state = saved_state(w)
    text = json.dumps(state, default=str) + gzip.decompress(state["chart_spec"]).decode() + gzip.decompress(state["data"]).hex()
    assert API_KEY not in text and API_KEY.encode().hex() not in text
    assert "X-Amz" not in text and "/files/" not in text
    assert not any("key" in name or "secret" in name for name in w.keys)  # synced trait names


def test_saved_state_holds_the_chart_not_the_frame():
    w = FlowExplorer(interval="1m", range="2024-01")
    w.load()
    state = saved_state(w)
    assert "summary" in state and "44,640 rows" in state["summary"]
    # The chart's bars (aggregated to at most MAX_POINTS), packed; never the 44,640 rows.
    (layout,) = [part for part in state["data_layout"] if part["rows"] > 1]
    assert layout["rows"] <= MAX_POINTS and len(state["data"]) < 150_000
    small = {k: v for k, v in state.items() if not isinstance(v, bytes)}
    assert len(json.dumps(small, default=str)) < 20_000


def test_brush_reaches_the_explorer():
    w = FlowExplorer(interval="1h", range="2024-01")
    w.load()
    lo, hi = pd.Timestamp("2024-01-10", tz="UTC"), pd.Timestamp("2024-01-10 11:00", tz="UTC")
    w.set_state({"brush": [lo.value // 10**6, hi.value // 10**6]})  # what the page writes on a drag
    assert w.brush_range == (lo, hi) and w.panel.brush_range == (lo, hi)
    assert len(w.brushed) == 12
    # The names the page gives the PNG and SVG it renders, as the kernel names its files.
    assert w.file_stems == {"full": w.filename("png")[: -len(".png")], "brush": w.filename("png", "brush")[: -len(".png")]}
    assert w.file_stems["brush"].endswith("_20240110T0000-20240110T1100")


def test_cancel_stops_a_stalled_load_at_once_and_keeps_nothing_partial(api, make_client):
    from aperiodic_jupyter import FetchCancelled

    api.inject("file", stall=30.0, times=1, match="2023-02")
    client = make_client(api, file_deadline=60.0)
    w = FlowExplorer("binance", "BTC", "1h", "2023-01..2023-03", client=client, panels="cvd,delta")
    w.load(wait=False)
    deadline = time.monotonic() + 20
    while api.inflight == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    w._handle_custom_msg({"type": "cancel"}, [])  # the Cancel button
    w._thread.join(10)
    assert not w._thread.is_alive() and time.monotonic() - started < 3
    assert w.status.startswith("cancelled") and w.error == "" and w.df is None
    assert client.plan(make_query_for(w))["cached"].tolist().count("no") >= 1  # the stalled month is not cached
    assert FetchCancelled.__name__ in aj.__all__


def make_query_for(w):
    return aj.make_query(w.exchange, w.symbol, w.interval, w.range_text)


def test_cancel_stops_a_long_demo_load_between_months():
    w = FlowExplorer("binance", "BTC", "1m", "2023-01..2023-12", client=Client("demo", cache_dir=False, memory_cache=MemoryCache()))
    w.load(wait=False)
    time.sleep(0.5)
    started = time.monotonic()
    w.cancel()
    w._thread.join(10)
    assert time.monotonic() - started < 3 and w.status.startswith("cancelled") and w.df is None



# -- the Live toggle ------------------------------------------------------------------------


def live_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("aperiodic-live")]


def test_the_live_toggle_follows_the_market_and_stop_ends_it():
    # As the page does it: Live ticked, Load clicked (the simulated feed, sped up).
    w = FlowExplorer("binance", "LINK", "1m", panels="delta,cvd", history=20, speed=600)
    w._handle_custom_msg({"type": "load", "query": {"symbol": "LINK", "interval": "1m", "live": True}}, [])
    assert w.live and w.live_running
    deadline = time.monotonic() + 30
    while (w.df is None or len(w.df) < 40) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(w.df) >= 40 and w.loads == 1 and not w.loading and w.charts == 1  # later bars came as tails
    assert w.status.startswith("live (simulated ×600) · last bar ") and w.error == ""
    assert "SIMULATED" in w.summary and w.query.symbol == "perpetual-LINK-USDT:USDT"
    assert w.tail_layout["rows"] >= 1 and "keep" in w.tail_layout
    w._handle_custom_msg({"type": "stop"}, [])  # the Stop button
    assert not w.live_running and w.status == "stopped" and live_threads() == []
    held = len(w.df)
    time.sleep(0.3)
    assert len(w.df) == held  # nothing more comes; the bars stay, and export works on them
    assert w.export_bytes("csv")[0].count(b"\n") == held + 1


def test_live_from_python_waits_for_the_history_and_unticking_live_stops_it():
    w = FlowExplorer("okx", "LINK", "1m", live=True, history=15, speed=600, panels="delta")
    df = w.load()
    assert df is w.df and len(df) >= 15 and w.live_running
    w.live = False  # the toggle unticked on the page
    assert not w.live_running and live_threads() == []
    # Unticked, Load fetches the range again.
    w.range_text = "2024-01-01"
    assert len(w.load()) == 24 * 60 and not w.live_running


def test_live_errors_are_one_line_inline():
    w = FlowExplorer("binance", "BTC", "1m", live=True, source="preview")
    w.load(wait=False)
    assert w.error.startswith("the Aperiodic preview serves files only, not the live stream") and not w.live_running
    w.source, w.timestamp = "demo", "true"
    w.load(wait=False)
    assert w.error == "live follows the stream's exchange-time bars: set timestamp to exchange"


def test_the_magic_opens_the_explorer_with_live_ticked(ip):
    ip.run_cell("%flow binance LINK 1m live --widget --speed 600 --history 10 -o w")
    w = ip.user_ns["w"]
    assert isinstance(w, FlowExplorer) and w.live and not w.live_running and ip.shown == [w]  # ticked, not started
    assert len(w.load()) >= 10 and w.live_running
    w.stop()
    assert live_threads() == []


def test_running_the_explorers_cell_again_stops_what_it_followed(ip):
    cell = (
        "from aperiodic_jupyter import FlowExplorer\n"
        "w = FlowExplorer('binance', 'LINK', '1m', live=True, history=10, speed=600, panels='delta')\n"
        "w.load()"
    )
    ip.run_cell(cell)
    first = ip.user_ns["w"]
    assert first.live_running
    ip.run_cell(cell)
    second = ip.user_ns["w"]
    assert not first.live_running and first.status == "stopped" and second.live_running
    second.stop()
    assert live_threads() == []
