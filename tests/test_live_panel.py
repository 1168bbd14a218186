"""``%flow … live`` in a real IPython shell, as a user types it: the live panel gains
bars, its state line follows the flow, Stop / re-running the cell / an interrupt stop
it and leave no thread behind; against the loopback WebSocket and REST servers, a
dropped connection is reconnected and its gap filled from REST on the chart, and a
rejected channel ends in one line with the history kept. The key is never in the
widget's state. The real kernel's interrupt while idle is tested at the end.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import threading
import time

import pandas as pd
import pytest
from jupyter_client.manager import start_new_kernel

from aperiodic_jupyter import get_flow, settings, stream_flow
from aperiodic_jupyter.core.live import stop_all
from aperiodic_jupyter.jupyter.chart_data import unpack
from aperiodic_jupyter.jupyter.charts import chart_frame
from aperiodic_jupyter.jupyter.live_cells import stop_all_panels
from aperiodic_jupyter.jupyter.live_panel import TAIL_MIN, LivePanel
from aperiodic_jupyter.jupyter.panel import FlowPanel

from .server import API_KEY
from .ws_server import Session

#: The demo feed sped up: a 1m bar every 0.1 s. LINK is a quiet coin whose month simulates fast.
DEMO = "%flow binance LINK 1m live --speed 600 -p delta,cvd"


def live_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("aperiodic-live")]


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def rows_of(data_layout: list, data: bytes, layout: dict, tail: bytes) -> list[dict]:
    """The rows a page draws from a chart's state: the rows sent with the chart, those
    from the tail's ``from`` on (and before its ``keep``) replaced by the tail (what
    js/chart_view.js does)."""
    dataset = next(part["dataset"] for part in data_layout if part["dataset"] in ("flow", "venues"))
    rows = unpack(data_layout, data)[dataset]
    if layout.get("columns"):
        field, keep = layout["field"], layout.get("keep", float("-inf"))
        rows = [r for r in rows if keep <= r[field] < layout["from"]] + unpack([layout], tail)[dataset]
    return rows


def chart_rows(panel: LivePanel) -> list[dict]:
    """The rows a page draws from a settled panel's state (stopped, or between updates)."""
    return rows_of(panel.data_layout, panel.data, panel.tail_layout, panel.tail)


class Page:
    """What a page holds, from the messages the widget sends it: its state, and the rows
    its view draws (drawn anew when ``charts`` changes, else changed by each tail, as
    js/chart_view.js does)."""

    def __init__(self, panel: LivePanel) -> None:
        self.state: dict = dict(panel.get_state())  # what the page got when it rendered
        self.rows: list[dict] = []
        self.saved: list[int] = []  # bar rows of the state after each message: what a saved notebook holds
        self.sent: list[int] = []  # of which sent as the chart's rows (the rest: the tail)
        panel.comm.publish_msg = self._message

    def _message(self, msg_type, data=None, metadata=None, buffers=None, **keys) -> None:
        data = data or {}
        changed = dict(data.get("state", {}))
        for path, buffer in zip(data.get("buffer_paths", []), buffers or [], strict=True):
            changed[path[0]] = bytes(buffer)
        self.state.update(changed)
        s = self.state
        if "charts" in changed:
            self.rows = rows_of(s["data_layout"], s["data"], s["tail_layout"], s["tail"])
        elif "tail" in changed and s["tail_layout"].get("columns"):
            layout = s["tail_layout"]
            field, keep = layout["field"], layout.get("keep", float("-inf"))
            tail = unpack([layout], s["tail"])[layout["dataset"]]
            self.rows = [r for r in self.rows if keep <= r[field] < layout["from"]] + tail
        if s.get("data_layout"):
            self.sent.append(sum(p["rows"] for p in s["data_layout"] if p["dataset"] == "flow"))
            self.saved.append(self.sent[-1] + s["tail_layout"].get("rows", 0))


@pytest.fixture(autouse=True)
def nothing_left_running():
    yield
    stop_all_panels()
    stop_all()
    assert wait_until(lambda: not live_threads(), 5), live_threads()


# -- the demo feed --------------------------------------------------------------------------


def test_a_live_line_shows_a_panel_whose_chart_gains_bars_as_tails(ip):
    result = ip.run_cell(f"p = {DEMO} --history 30")
    assert result.success, result.error_in_exec
    p = ip.user_ns["p"]
    assert ip.shown == [p] and isinstance(p, LivePanel) and isinstance(p, FlowPanel)
    assert p.wait(45, timeout=20) >= 45

    # The state line, the label, the summary.
    assert p.live_running and p.live_state.startswith("live (simulated ×600) · last bar ")
    assert " s ago" in p.live_state.split(" · ")[2] and p.simulated
    assert "SIMULATED" in repr(p) and "SIMULATED" in p.summary
    p.stop()

    # The history came first, drawn once; every later bar travelled as a tail.
    assert p.charts == 1
    df = p.df
    assert df["time"].is_monotonic_increasing and df["time"].diff().iloc[1:].eq(pd.Timedelta("1min")).all()
    assert df.attrs["simulated"] is True and list(df.columns) == list(get_flow("binance", "LINK", "1m", "2024-01-01").columns)
    assert p.tail_layout["rows"] >= 15 and f"{len(df):,} rows" in p.summary
    # What the page holds is the chart of the frame, bar for bar (float32 on the wire).
    names = [c["name"] for c in p.data_layout[0]["columns"]]
    drawn = json.loads(chart_frame(df)[0][names].to_json(orient="records"))
    sent = chart_rows(p)
    assert [r["time"] for r in sent] == [r["time"] for r in drawn]
    assert [r["delta"] for r in sent] == pytest.approx([r["delta"] for r in drawn], rel=1e-6)


def test_stop_ends_the_flow_and_both_threads_and_keeps_the_bars(ip):
    ip.run_cell(f"p = {DEMO} --history 5")
    p = ip.user_ns["p"]
    p.wait(15, timeout=20)
    assert {"aperiodic-live", "aperiodic-live-view"} <= set(live_threads())  # the flow's thread and the panel's
    p._handle_custom_msg({"type": "stop"}, [])  # what the Stop button sends
    assert live_threads() == []
    assert p.live_state == "stopped" and not p.live_running and not p.running
    held = len(p.df)
    time.sleep(0.3)
    assert len(p.df) == held >= 15  # nothing more comes; the bars received stay
    assert p.export_bytes("csv")[0].count(b"\n") == held + 1  # exports work on them


def test_running_the_cell_again_stops_its_previous_panel(ip):
    cell = f"p = {DEMO} --history 5"
    ip.run_cell(cell)
    first = ip.user_ns["p"]
    first.wait(8, timeout=20)
    ip.run_cell(cell)
    second = ip.user_ns["p"]
    assert second is not first
    assert first.live_state == "stopped" and not first.running
    assert second.wait(8, timeout=20) >= 8 and second.running
    # Another cell leaves it running.
    ip.run_cell("x = 1")
    assert second.running


def test_an_interrupt_stops_every_live_panel(ip):
    ip.run_cell(f"{DEMO} --history 5 -o a")
    ip.run_cell("%flow binance,okx LINK 1m live --speed 600 --history 5 -o b")
    a, b = ip.user_ns["a"], ip.user_ns["b"]
    assert ip.shown == [a, b] and a.wait(6, 20) and b.wait(12, 20)
    assert set(b.df["exchange"]) == {"binance-futures", "okx-perps"}  # two venues, one flow
    ip.run_cell("raise KeyboardInterrupt")  # what the kernel's interrupt raises in a running cell
    assert wait_until(lambda: not a.running and not b.running, 5)
    assert a.live_state == b.live_state == "stopped" and live_threads() == []


def test_the_page_holds_the_window_the_saved_state_a_bounded_tail_and_p_df_the_ring():
    settings.live_max_bars = 150
    # 40 bars a second: about ten a chart update, so tails grow and the rows are sent anew now and then.
    flow = stream_flow("binance", "LINK", "1m", history=20, speed=2400, source="demo")
    p = LivePanel(flow, panels="delta", chart_bars=40)
    page = Page(p)
    sizes = []
    p.observe(lambda change: sizes.append(len(page.rows)), "summary")  # after each update
    assert p.wait(150, timeout=20) == 150
    start = p.df["time"].iloc[-1]
    assert wait_until(lambda: p.df["time"].iloc[-1] >= start + pd.Timedelta(minutes=200), 30)
    p.stop()
    assert len(p.df) == 150  # the ring: the oldest bars went
    assert max(sizes) == 40 and sizes[-1] == 40  # the page: the window, sliding
    assert [r["time"] for r in page.rows] == [int(t.value // 1_000_000) for t in p.df["time"].iloc[-40:]]
    assert max(page.saved) <= 40 + TAIL_MIN and len(set(page.sent)) > 1  # the rows were sent anew on the way
    assert p.charts == 1  # ...without drawing the chart anew: a brush on it stays


def test_a_batch_longer_than_the_window_replaces_it_whole():
    # One chart update every 2 s at 100 bars a second: each batch is more than the window.
    flow = stream_flow("binance", "LINK", "1m", history=20, speed=6000, source="demo")
    p = LivePanel(flow, panels="delta", chart_bars=40, rate=0.5)
    page = Page(p)
    assert p.wait(400, timeout=30) >= 400
    p.stop()
    assert p.live_state == "stopped"  # it followed to the end
    assert [r["time"] for r in page.rows] == [int(t.value // 1_000_000) for t in p.df["time"].iloc[-40:]]
    assert [r["time"] for r in chart_rows(p)] == [r["time"] for r in page.rows]  # what a saved notebook draws


def test_titles_that_follow_the_data_are_redrawn_and_others_checked_ever_less_often(monkeypatch):
    import aperiodic_jupyter.jupyter.live_panel as live_panel

    monkeypatch.setattr(live_panel, "SPEC_CHECK", 0.3)  # seconds (30 in a session)
    monkeypatch.setattr(live_panel, "SPEC_CHECK_MAX", 1.2)
    # The divergence panel's title says the correlation over the bars in view: it changes.
    flows = [stream_flow("binance", "LINK", "1m", history=20, speed=600, source="demo", with_price=True) for _ in range(2)]
    moving = LivePanel(flows[0], panels="delta,divergence")
    steady = LivePanel(flows[1], panels="delta")
    assert moving.wait(20, 20) and steady.wait(20, 20)

    def bars_in_title() -> int:
        return int(re.search(r"r = [-+]\d\.\d\d over (\d+) bars", json.dumps(moving._spec_sent)).group(1))

    first = bars_in_title()
    assert wait_until(lambda: moving.charts > 1, 10)  # drawn anew with its new title
    assert bars_in_title() > first
    time.sleep(2.5)
    assert steady.charts == 1 and steady._live_check_every == 1.2  # nothing to redraw: checked less and less
    moving.stop()
    steady.stop()


def test_while_it_updates_the_panel_gives_freed_memory_back_now_and_then(monkeypatch):
    import aperiodic_jupyter.jupyter.live_panel as live_panel

    # Each update frees a frame and chart rows; the allocators would keep that memory
    # (issue 12): the update thread hands it back every RELEASE_EVERY seconds (10).
    released = []
    monkeypatch.setattr(live_panel, "RELEASE_EVERY", 0.0)
    monkeypatch.setattr(live_panel, "release_memory", lambda: released.append(threading.current_thread().name))
    p = LivePanel(stream_flow("binance", "LINK", "1m", history=20, speed=600, source="demo"), panels="delta")
    assert p.wait(25, timeout=20) >= 25
    p.stop()
    assert released and set(released) == {"aperiodic-live-view"}  # the update thread, between updates


# -- the real stream's protocol, on loopback servers ----------------------------------------------


@pytest.fixture
def keyed(ip, monkeypatch, rest, ws):
    """The user's setup: a key, and both endpoints pointed at the loopback servers."""
    monkeypatch.setenv("APERIODIC_API_URL", rest.base_url)
    monkeypatch.setenv("APERIODIC_STREAM_URL", ws.url)
    ip.run_cell(f"%config Aperiodic.api_key = '{API_KEY}'")
    return ip


def this_minute() -> pd.Timestamp:
    """The open 1m bar, far enough from midnight that the next five are today too."""
    now = pd.Timestamp.now(tz="UTC")
    if (now + pd.Timedelta(minutes=6)).date() != now.date():
        time.sleep((now.ceil("D") - now).total_seconds() + 1)
        now = pd.Timestamp.now(tz="UTC")
    return now.floor("1min")


def test_a_dropped_stream_is_reconnected_and_the_gap_filled_from_rest_on_the_chart(keyed, ws, caplog):
    caplog.set_level(logging.DEBUG)
    t0 = this_minute()
    minute = pd.Timedelta(minutes=1)
    ws.script(Session().ack().bars(t0.to_pydatetime()).drop(), Session().ack().bars((t0 + 3 * minute).to_pydatetime()))
    states: list[str] = []
    keyed.run_cell("p = %flow binance BTC 1m live --history 3 -p delta")
    p = keyed.user_ns["p"]
    p.observe(lambda change: states.append(change["new"]), "live_state")
    assert p.wait(7, timeout=20) == 7

    # Every bar once, in order: history, the live bar, the two REST filled, the next live one.
    day = t0.date().isoformat()
    expected = get_flow("binance", "BTC", "1m", day, day, progress=False)
    expected = expected[(expected["time"] >= t0 - 3 * minute) & (expected["time"] <= t0 + 3 * minute)].reset_index(drop=True)
    pd.testing.assert_frame_equal(p.df, expected, check_like=True)
    assert wait_until(lambda: "gap filled" in p.live_state)
    assert f"gap filled {t0 + minute:%H:%M}–{t0 + 2 * minute:%H:%M} from REST" in p.live_state
    assert p.live_state.startswith("live · last bar ") and not p.simulated
    assert any(s.startswith("reconnecting (attempt 1)") for s in states) or len(ws.subscriptions) == 2
    assert [r["time"] for r in chart_rows(p)] == [int(t.value // 1_000_000) for t in expected["time"]]

    # The key: in the handshake only; never in the widget's state, its outputs or a log line.
    assert ws.keys and set(ws.keys) == {API_KEY}
    state = p.get_state()
    spec = gzip.decompress(state["chart_spec"]).decode()
    text = json.dumps({k: v for k, v in state.items() if not isinstance(v, bytes)}, default=str)
    assert API_KEY not in text + spec + repr(p) + "".join(states)
    assert API_KEY not in "\n".join(r.getMessage() for r in caplog.records if r.name != "fake-stream")


def test_a_rejected_channel_ends_in_one_line_and_the_history_stays(keyed, ws):
    ws.script(Session().ack(reject={"binance-futures": "not_live"}))
    keyed.run_cell("p = %flow binance BTC 1m live --history 4 -p delta")
    p = keyed.user_ns["p"]
    assert wait_until(lambda: not p.running, 20)
    assert p.live_state == (
        "the live stream refused every channel: flow.binance-futures.1m (not_live: flow is not_live on binance-futures)"
    )
    assert not p.live_running and wait_until(lambda: not live_threads(), 5), live_threads()  # nothing left behind
    assert len(p.df) == 4 and p.charts == 1 and len(chart_rows(p)) == 4  # the history stays on the chart


# -- a real kernel ------------------------------------------------------------------------------


def test_the_kernels_interrupt_while_idle_stops_the_live_panel(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("APERIODIC_")} | {"APERIODIC_CACHE_DIR": str(tmp_path)}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        run = lambda code: kc.execute_interactive(code, timeout=60)  # noqa: E731
        run("%load_ext aperiodic_jupyter")
        run(f"p = {DEMO} --history 5\nn = p.wait(10, timeout=30)")
        out: list[str] = []
        kc.execute_interactive(
            "print(n >= 10, p.running)", timeout=30, output_hook=lambda m: out.append(m["content"].get("text", ""))
        )
        assert "".join(out).split() == ["True", "True"]
        km.interrupt_kernel()  # the kernel is idle: ipykernel would ignore it
        time.sleep(1.0)
        out.clear()
        code = "import threading\nprint(p.live_state, p.running, [t.name for t in threading.enumerate() if t.name.startswith('aperiodic-live')])"
        kc.execute_interactive(code, timeout=30, output_hook=lambda m: out.append(m["content"].get("text", "")))
        assert "".join(out).strip() == "stopped False []"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
