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

