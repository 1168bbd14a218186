"""Live flow against a real WebSocket server and the REST server, both on 127.0.0.1.

Each test is a user's script: the key and both URLs are set the way a user sets them
(``%config``/environment), ``stream_flow`` is iterated, and what comes out is checked
against what the REST files hold. The clock is pinned to yesterday 12:00:30 UTC so that
every bar, the history and the gap fills lie in the past whatever the time of the run.
"""

from __future__ import annotations

import _thread
import asyncio
import logging
import threading
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from aperiodic_jupyter import QueryError, get_flow, settings
from aperiodic_jupyter.core.errors import AuthError, StreamClosed, StreamError, StreamRefused, SubscriptionRejected
from aperiodic_jupyter.core.live import Bar, stop_all, stream_flow
from aperiodic_jupyter.core.schema import FLOW_COLUMNS, PRICE_COLUMNS
from aperiodic_jupyter.core.sources.stream import MAX_DELAY, backoff_delay

from .server import API_KEY
from .ws_server import LOGGER, Session

NOON = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=30, microsecond=0)
DAY = NOON.date().isoformat()


#: Hourly bars keep the REST files small; the protocol is the same at every interval.
IV = "1h"


def T(k: int) -> datetime:
    """The start of the k-th bar after 12:00 yesterday (negative: before)."""
    return NOON.replace(second=0) + timedelta(hours=k)


#: What tests change from a user's call: a fixed clock and a quick reconnect.
FAST = {"now": lambda: NOON, "backoff": 0.01}


@pytest.fixture(autouse=True)
def keyed(monkeypatch, rest, ws):
    """The user's setup: a key, and both endpoints pointed at the loopback servers."""
    monkeypatch.setenv("APERIODIC_API_URL", rest.base_url)
    monkeypatch.setenv("APERIODIC_STREAM_URL", ws.url)
    settings.api_key = API_KEY
    rest._faults.clear()
    yield
    stop_all()


def take(live, n: int, timeout: float = 10.0) -> list[Bar]:
    """The first ``n`` bars (fewer only if the flow ends or ``timeout`` passes)."""
    got: list[Bar] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        batch = live.poll(timeout=deadline - time.monotonic(), limit=n - len(got))
        if batch is None:
            break
        got += batch
    return got


def rest_frame(exchange="binance", symbol="BTC", *, with_price=False) -> pd.DataFrame:
    return get_flow(exchange, symbol, IV, DAY, DAY, progress=False, with_price=with_price)


def between(df: pd.DataFrame, first: datetime, last: datetime) -> pd.DataFrame:
    return df[(df["time"] >= first) & (df["time"] <= last)].reset_index(drop=True)


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


# -- history, then live ------------------------------------------------------------------


def test_history_then_each_published_bar_with_the_rest_files_numbers(ws):
    ws.script(Session().ack().bars(T(0), T(1)))
    live = stream_flow("binance", "BTC", IV, history=10, **FAST)
    bars = take(live, 12)

    assert [b.time for b in bars] == [T(k) for k in range(-10, 2)]
    assert [b.origin for b in bars] == ["history"] * 10 + ["live"] * 2
    assert not any(b.update for b in bars)
    expected = between(rest_frame(), T(-10), T(1))
    assert [b["taker_buy_count"] for b in bars] == expected["taker_buy_count"].tolist()
    # One connection, the key in its header, one subscription naming the symbol.
    assert ws.keys == [API_KEY]
    assert ws.subscriptions[0]["op"] == "subscribe"
    assert ws.subscriptions[0]["channels"] == [
        {"dataset": "flow", "exchange": "binance-futures", "interval": IV, "symbols": ["perpetual-BTC-USDT:USDT"]}
    ]
    assert live.state == f"live · last bar {DAY} {T(1):%H:%M:%S} UTC"
    assert live.history is not None and len(live.history) == 10


def test_the_live_frame_is_get_flows_frame(ws):
    ws.script(Session().ack().bars(T(0), T(1), T(2)))
    live = stream_flow("binance", "BTC", IV, history=5, **FAST)
    take(live, 8)
    df = live.frame()

    expected = between(rest_frame(), T(-5), T(2))
    pd.testing.assert_frame_equal(df, expected, check_like=False)  # values, columns, dtypes
    assert list(df.columns) == ["time", *FLOW_COLUMNS] and str(df["time"].dt.tz) == "UTC"
    assert df.attrs["source"] == "api" and df.attrs["simulated"] is False
    assert df.attrs["query"]["symbol"] == "perpetual-BTC-USDT:USDT"
    assert df.attrs["live"]["state"].startswith("live · last bar")


# -- gaps --------------------------------------------------------------------------------


def test_a_drop_is_reconnected_and_the_gap_filled_from_rest_with_exactly_the_missing_bars(ws):
    ws.script(
        Session().ack().bars(T(0), T(1)).drop(),  # no close frame
        Session().ack().bars(T(1), T(5), T(6)),  # T(1) again: what it sent last, repeated
    )
    live = stream_flow("binance", "BTC", IV, history=3, **FAST)
    bars = take(live, 10)

    assert [b.time for b in bars] == [T(k) for k in range(-3, 7)]  # every bar once, in order
    assert [b.origin for b in bars] == ["history"] * 3 + ["live"] * 2 + ["rest"] * 3 + ["live"] * 2
    assert len(live.gaps) == 1
    down, up = live.gaps[0]
    assert down.tzinfo is not None and down <= up
    fill = live.fills[-1]
    assert (fill.bars, fill.missing, fill.error) == (3, 0, None)
    assert fill.text == f"gap filled {DAY} {T(2):%H:%M}–{T(4):%H:%M} from REST"
    assert live.state.endswith(fill.text)
    pd.testing.assert_frame_equal(live.frame(), between(rest_frame(), T(-3), T(6)))
    assert len(ws.subscriptions) == 2 and ws.subscriptions[0]["channels"] == ws.subscriptions[1]["channels"]


def test_bars_published_while_the_history_loaded_come_from_rest_first(ws):
    ws.script(Session().ack().bars(T(3), T(4)))  # the history ends at 11:59; 12:00-12:02 were missed
    live = stream_flow("binance", "BTC", IV, history=2, **FAST)
    bars = take(live, 7)

    assert [(b.time, b.origin) for b in bars] == [
        (T(-2), "history"), (T(-1), "history"),
        (T(0), "rest"), (T(1), "rest"), (T(2), "rest"),
        (T(3), "live"), (T(4), "live"),
    ]  # fmt: skip
    assert live.gaps == []  # not an outage: the first connection


def test_a_gap_rest_cannot_fill_says_so_and_the_stream_goes_on(ws, rest):
    rest.inject("list", status=403, body={"error": "plan does not cover this"})
    ws.script(Session().ack().bars(T(0)).drop(), Session().ack().bars(T(3), T(4)))
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    bars = take(live, 3)

    assert [(b.time, b.origin) for b in bars] == [(T(0), "live"), (T(3), "live"), (T(4), "live")]
    assert live.fills[-1].error and live.fills[-1].bars == 0
    assert f"gap {DAY} {T(1):%H:%M}–{T(2):%H:%M} not filled: " in live.state


def test_with_price_the_stream_the_history_and_the_gap_all_carry_price(ws):
    ws.script(Session().ack().bars(T(0)).drop(), Session().ack().bars(T(3)))
    live = stream_flow("binance", "BTC", IV, history=2, with_price=True, **FAST)
    bars = take(live, 8)

    # A bar's flow and price come in two frames: the second is an update of the bar.
    assert [(b.time, b.update) for b in bars] == [
        (T(-2), False), (T(-1), False),
        (T(0), False), (T(0), True),
        (T(1), False), (T(2), False),
        (T(3), False), (T(3), True),
    ]  # fmt: skip
    assert bars[3]["close"] == bars[3]["close"] and bars[4].origin == "rest"
    channels = ws.subscriptions[0]["channels"]
    assert [c["dataset"] for c in channels] == ["flow", "ohlcv"]
    expected = between(rest_frame(with_price=True), T(-2), T(3))
    df = live.frame()
    assert list(df.columns) == ["time", *FLOW_COLUMNS, *PRICE_COLUMNS]
    pd.testing.assert_frame_equal(df[["time", *PRICE_COLUMNS]], expected[["time", *PRICE_COLUMNS]])


# -- what the stream may send ---------------------------------------------------------------


def test_data_frames_before_the_acknowledgement_are_kept(ws):
    ws.script(Session().bars(T(0)).ack().bars(T(1)))
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    assert [b.time for b in take(live, 2)] == [T(0), T(1)]


def test_a_re_published_open_bar_is_an_update_and_an_identical_repeat_is_nothing(ws):
    ws.script(Session().ack().bars(T(0), partial=True).bars(T(0)).bars(T(0)).bars(T(1)))
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    bars = take(live, 3)

    assert [(b.time, b.update) for b in bars] == [(T(0), False), (T(0), True), (T(1), False)]
    final = between(rest_frame(), T(0), T(0))["taker_buy_count"].item()
    assert bars[0]["taker_buy_count"] == final // 2 and bars[1]["taker_buy_count"] == final
    df = live.frame()
    assert df["time"].tolist() == [T(0), T(1)] and df["taker_buy_count"].iloc[0] == final
    assert take(live, 1, timeout=0.3) == []  # the third copy of T(0) gave nothing


def test_heartbeats_pongs_warnings_unknown_ops_and_junk_do_not_break_the_stream(ws):
    ws.script(
        Session()
        .ack()
        .heartbeat()
        .send({"op": "pong"})
        .warn("slow_consumer", "you are falling behind")
        .send({"op": "something_new", "x": 1})
        .send("not json")
        .send({"channel": "flow.binance-futures.1h", "data": "no row"})
        .bars(T(0))
    )
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    assert [b.time for b in take(live, 1)] == [T(0)]
    assert "the live stream reported an error (slow_consumer): you are falling behind; it goes on" in live.notices
    assert len(ws.subscriptions) == 1 and live.gaps == []


def test_silence_past_the_idle_limit_is_a_dead_connection_heartbeats_are_not(ws):
    ws.script(
        Session().ack().heartbeats(every=0.1, times=6).bars(T(0)),  # 0.6 s quiet but alive
        Session().ack().bars(T(3)),
    )
    live = stream_flow("binance", "BTC", IV, history=0, idle_timeout=0.35, **FAST)
    assert [b.time for b in take(live, 1)] == [T(0)]
    assert len(ws.subscriptions) == 1  # heartbeats kept it up
    # Then the first session goes silent (held open, no frame): presumed dead, reconnected.
    assert [b.time for b in take(live, 3)][-1] == T(3)
    assert len(ws.subscriptions) == 2 and len(live.gaps) == 1


def test_a_graceful_1000_is_reconnected_with_the_same_subscription(ws):
    states: list[str] = []
    ws.script(Session().ack().bars(T(0)).close(1000, "draining"), Session().ack().bars(T(1)))
    live = stream_flow("binance", "BTC", IV, history=0, on_state=states.append, **FAST)
    assert [b.time for b in take(live, 2)] == [T(0), T(1)]
    assert ws.subscriptions[0]["channels"] == ws.subscriptions[1]["channels"]
    assert "reconnecting (attempt 1) · the server closed the connection (1000: draining)" in states


@pytest.mark.parametrize(
    "code, reason, line",
    [
        (4001, "", "the live stream closed for good (4001): the plan no longer includes live data, or the API key was rotated"),
        (1008, "", "the live stream closed for good (1008): the control-frame rate limit stayed exhausted"),
        (4029, "maintenance window", "the live stream closed for good (4029): maintenance window"),
    ],
)
def test_final_close_codes_end_in_one_line_without_reconnecting(ws, code, reason, line):
    ws.script(Session().ack().bars(T(0)).close(code, reason))
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    got = []
    with pytest.raises(StreamClosed) as err:
        for bar in live:
            got.append(bar)
    assert [b.time for b in got] == [T(0)]
    assert str(err.value) == line and err.value.close_code == code
    assert live.state == line and live.error is err.value
    assert wait_until(lambda: not live.running) and len(ws.subscriptions) == 1


@pytest.mark.parametrize(
    "status, words",
    [
        (401, "the live stream refused the API key (401)"),
        (403, "your plan has no live data (403 from the live stream)"),
        (426, "the live stream asks for a newer client (426 Upgrade Required)"),
    ],
)
def test_handshake_refusals_401_403_426_are_final(ws, status, words):
    ws.script(Session().refuse(status))
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    with pytest.raises(StreamRefused) as err:
        list(live)
    assert str(err.value).startswith(words) and "\n" not in str(err.value)
    assert err.value.status_code == status and API_KEY not in str(err.value)
    assert len(ws.keys) == 1  # never retried


def test_429_and_503_at_the_handshake_are_retried_with_backoff(ws):
    states: list[str] = []
    ws.script(Session().refuse(429, "too many connections"), Session().refuse(503), Session().ack().bars(T(0)))
    live = stream_flow("binance", "BTC", IV, history=0, on_state=states.append, **FAST)
    assert [b.time for b in take(live, 1)] == [T(0)]
    assert len(ws.keys) == 3
    assert [s.split(" · ")[0] for s in states if s.startswith("reconnecting")] == [
        "reconnecting (attempt 1)",
        "reconnecting (attempt 2)",
    ]
    assert "reconnecting (attempt 1) · the stream answered 429 (too many connections)" in states


def test_an_unreachable_stream_ends_in_one_line_after_a_few_tries():
    live = stream_flow("binance", "BTC", IV, history=0, stream_url="ws://127.0.0.1:9/v1/stream", **FAST)
    with pytest.raises(StreamError, match=r"^could not reach the live stream at ws://127\.0\.0\.1:9/v1/stream after 5 attempts"):
        list(live)


def test_backoff_is_exponential_jittered_and_capped_at_30_s():
    for attempt in range(12):
        ceiling = min(MAX_DELAY, 1.0 * 2**attempt)
        delays = [backoff_delay(attempt, 1.0) for _ in range(50)]
        assert all(ceiling / 2 <= d < ceiling or d == ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert max(backoff_delay(40) for _ in range(50)) <= 30.0


# -- channels ---------------------------------------------------------------------------------


def test_two_venues_share_one_connection_and_one_subscription(ws):
    ws.script(Session().ack().bars(T(0), T(1)))
    live = stream_flow(["binance", "okx"], "BTC", IV, history=2, **FAST)
    bars = take(live, 8)

    assert len(ws.keys) == 1 and len(ws.subscriptions) == 1
    assert [c["exchange"] for c in ws.subscriptions[0]["channels"]] == ["binance-futures", "okx-perps"]
    assert {(b.exchange, b.time) for b in bars} == {(e, T(k)) for e in ("binance-futures", "okx-perps") for k in (-2, -1, 0, 1)}
    df = live.frame()
    expected = get_flow(["binance", "okx"], "BTC", IV, DAY, DAY, progress=False)
    pd.testing.assert_frame_equal(df, between(expected, T(-2), T(1)))


def test_a_channel_refused_as_not_live_is_named_and_the_others_stream(ws):
    ws.script(Session().ack(reject={"okx-perps": "not_live"}).bars(T(0)))
    live = stream_flow(["binance", "okx"], "BTC", IV, history=0, **FAST)
    bars = take(live, 1)

    assert [(b.exchange, b.time) for b in bars] == [("binance-futures", T(0))]
    assert live.subscription.granted == ("flow.binance-futures.1h",)
    [rejection] = live.subscription.rejected
    assert (rejection.channel, rejection.code) == ("flow.okx-perps.1h", "not_live")
    assert live.state.endswith("refused: flow.okx-perps.1h (not_live: flow is not_live on okx-perps)")


def test_every_channel_refused_ends_in_one_line_and_the_history_stays(ws):
    ws.script(Session().ack(reject={"binance-futures": "unknown_channel"}))
    live = stream_flow("binance", "BTC", IV, history=3, **FAST)
    got = []
    with pytest.raises(SubscriptionRejected) as err:
        for bar in live:
            got.append(bar)
    assert str(err.value) == (
        "the live stream refused every channel: flow.binance-futures.1h (unknown_channel: flow is unknown_channel on binance-futures)"
    )
    assert err.value.rejected[0].code == "unknown_channel"
    assert [b.origin for b in got] == ["history"] * 3
    assert len(live.frame()) == 3 and len(live.history) == 3


def test_a_subscription_refused_with_op_error_is_final(ws):
    ws.script(Session().refuse_subscription("limit_exceeded", "at most 200 channels"))
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    with pytest.raises(SubscriptionRejected, match=r"refused the subscription \(limit_exceeded\): at most 200 channels"):
        list(live)


def test_channels_the_server_removes_are_named_and_removing_all_is_final(ws):
    ws.script(
        Session()
        .ack()
        .bars(T(0))
        .unsubscribe("flow.okx-perps.1h", "not_entitled", "plan changed")
        .bars(T(1), dataset="flow")
        .unsubscribe("flow.binance-futures.1h", "not_entitled", "plan changed")
    )
    live = stream_flow(["binance", "okx"], "BTC", IV, history=0, **FAST)
    got = []
    with pytest.raises(SubscriptionRejected, match="removed every channel"):
        for bar in live:
            got.append(bar)
    assert {(b.exchange, b.time) for b in got} >= {("binance-futures", T(0)), ("okx-perps", T(0)), ("binance-futures", T(1))}
    assert any("removed flow.okx-perps.1h (not_entitled: plan changed)" in n for n in live.notices)


# -- stopping, async, threads ---------------------------------------------------------------------


def test_stop_from_another_thread_ends_the_loop_promptly_and_leaves_nothing_behind(ws):
    ws.script(Session().ack().bars(T(0)).heartbeats(every=0.05, times=400))
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    threading.Timer(0.3, live.stop).start()
    started = time.monotonic()
    got = list(live)  # ends when stopped
    assert time.monotonic() - started < 2.0
    assert [b.time for b in got] == [T(0)]
    assert live.state == "stopped" and live.error is None
    assert wait_until(lambda: not live.running)  # stop() itself returns once the thread is gone
    assert not [t for t in threading.enumerate() if t.name.startswith("aperiodic-live")]
    assert wait_until(lambda: ws.open == 0)  # the socket is closed


def test_ctrl_c_while_iterating_stops_the_flow(ws):
    ws.script(Session().ack().bars(T(0)).heartbeats(every=0.05, times=400))
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    threading.Timer(0.3, _thread.interrupt_main).start()  # what the kernel's interrupt does
    with pytest.raises(KeyboardInterrupt):
        for _bar in live:
            pass
    assert live.state == "stopped" and not live.running
    assert wait_until(lambda: ws.open == 0)


def test_stop_during_a_slow_gap_fill_is_prompt(ws, rest):
    rest.inject("file", delay=5.0, times=50)
    ws.script(Session().ack().bars(T(0)).drop(), Session().ack().bars(T(4)))
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    take(live, 1)
    assert wait_until(lambda: live.state.startswith("filling gap"))
    started = time.monotonic()
    live.stop()
    assert time.monotonic() - started < 2.0 and not live.running
    rest._faults.clear()


def test_async_for_in_a_running_loop(ws):
    ws.script(Session().ack().bars(T(0), T(1), T(2)))

    async def cell():
        seen = []
        async with stream_flow("binance", "BTC", IV, history=1, **FAST) as live:
            async for bar in live:
                seen.append((bar.time, bar.origin))
                if len(seen) == 3:
                    break
            more = await live.apoll(timeout=2)  # awaited: the loop runs while it waits
            seen += [(bar.time, bar.origin) for bar in more]
        return seen, live

    seen, live = asyncio.run(cell())
    assert seen == [(T(-1), "history"), (T(0), "live"), (T(1), "live"), (T(2), "live")]
    assert live.state == "stopped" and not live.running


def test_the_key_is_never_logged_shown_or_in_an_error(ws, caplog):
    caplog.set_level(logging.DEBUG)  # websockets logs every handshake header at DEBUG
    ws.script(Session().ack().bars(T(0)).drop(), Session().refuse(401))
    states: list[str] = []
    live = stream_flow("binance", "BTC", IV, history=0, on_state=states.append, **FAST)
    with pytest.raises(StreamRefused) as err:
        list(live)
    assert ws.keys == [API_KEY, API_KEY]  # it was sent, in the header
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != LOGGER)  # not the test server's
    assert "X-API-KEY: ***" in ours
    assert API_KEY not in ours
    assert all(API_KEY not in s for s in [*states, *live.notices, str(err.value), repr(live), str(live.frame().attrs)])


# -- memory, settings, bad input ----------------------------------------------------------------------


def test_the_ring_keeps_the_newest_bars_and_memory_stays_flat(ws):
    settings.live_max_bars = 50
    times = [T(k) for k in range(0, 300)]
    ws.script(Session().ack().bars(*times))

    snaps = []

    def ours() -> int:  # bytes held by memory this package allocated (not the test server's)
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*aperiodic_jupyter*")])
        snaps.append(snap)
        return sum(stat.size for stat in snap.statistics("filename"))

    tracemalloc.start()
    try:
        live = stream_flow("binance", "BTC", IV, history=0, **FAST)
        take(live, 50)
        early = ours()
        taken = len(got := take(live, 250))
        last = got[-1]
        del got  # taken and let go, as a consumer does
        late = ours()
    finally:
        tracemalloc.stop()
    growth = [str(x) for x in snaps[1].compare_to(snaps[0], "lineno")[:3]]
    assert taken == 250 and last.time == T(299) and live.overflow == 0
    df = live.frame()
    assert df["time"].tolist() == [T(k) for k in range(250, 300)]
    assert late - early < 16 * 1024, (early, late, growth)  # 250 more bars (64 bytes each would fail)


def test_the_ring_is_allocated_once_and_its_frames_take_nothing_from_arrows_pool(ws):
    # A live view builds a frame of the whole ring several times a second, all session
    # long. Built through Arrow, each frame's buffers came from Arrow's pool, whose
    # allocator kept tens of MB of them once freed: the resident memory crept up long
    # after the ring was full (issue 12). The frame is NumPy's memory, and the ring's
    # arrays are the ones allocated at the start.
    pool = pa.default_memory_pool()
    if not hasattr(pool, "num_allocations"):
        pytest.skip("this pyarrow does not count its pool's allocations")
    settings.live_max_bars = 50
    ws.script(Session().ack().bars(*[T(k) for k in range(300)]))
    live = stream_flow("binance", "BTC", IV, history=0, **FAST)
    take(live, 20)
    (series,) = live._series.values()
    arrays = (series.ring.times.ctypes.data, series.ring.values.ctypes.data)
    live.frame()
    taken = len(take(live, 280))
    before = pool.num_allocations()
    frames = [live.frame() for _ in range(20)]
    assert pool.num_allocations() == before  # not one buffer from Arrow's pool
    assert taken == 280 and (series.ring.times.ctypes.data, series.ring.values.ctypes.data) == arrays
    assert all(f["time"].tolist() == [T(k) for k in range(250, 300)] for f in frames)
    # The frame is still get_flow's: dtypes included (an integer column with a missing
    # value is float64, as Arrow's to_pandas makes it).
    assert str(frames[0]["time"].dtype) == "datetime64[ns, UTC]" and str(frames[0]["taker_buy_count"].dtype) == "int64"


def test_bad_input_is_one_line_before_anything_connects(ws):
    ws.script()
    cases = [
        (dict(interval="2m"), QueryError, "unknown interval '2m'"),
        (dict(history=-1), QueryError, "history is a number of bars"),
        (dict(max_bars=0), QueryError, "max_bars must be a whole number"),
        (dict(history=500, max_bars=100), QueryError, "history of 500 bars is more than the live frame keeps (max_bars=100)"),
        (dict(speed=10), QueryError, "speed=10 runs the simulated demo feed faster"),
        (dict(source="preview"), QueryError, "the Aperiodic preview serves files only, not the live stream"),
        (dict(stream_url="https://stream.example/v1"), QueryError, "invalid stream URL"),
        (dict(exchange="kraken"), QueryError, "unknown exchange 'kraken'"),
    ]
    for kwargs, kind, words in cases:
        args = {"exchange": "binance", "symbol": "BTC", "interval": IV, **kwargs}
        with pytest.raises(kind) as err:
            stream_flow(args.pop("exchange"), args.pop("symbol"), args.pop("interval"), **args)
        assert words in str(err.value) and "\n" not in str(err.value), kwargs
    settings.api_key = None
    with pytest.raises(AuthError, match="no Aperiodic API key for the live stream: set APERIODIC_API_KEY"):
        stream_flow("binance", "BTC", IV, source="api")
    assert ws.keys == []
