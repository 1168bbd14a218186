"""The simulated live feed: the demo tape's bars, published as their minutes end on a
clock sped up for demonstrations, with no key and no network, labelled simulated."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from aperiodic_jupyter import QueryError, get_flow, make_query
from aperiodic_jupyter.core.live import Bar, stop_all, stream_flow
from aperiodic_jupyter.core.ranges import Month
from aperiodic_jupyter.core.schema import FLOW_COLUMNS, PRICE_COLUMNS
from aperiodic_jupyter.core.sources.demo import DemoFeed, DemoSource

#: Yesterday 12:00:30 UTC: the feed's clock starts here, so its bars are in the past and
#: the demo source can be asked for the same minutes afterwards. The tests stream LINK,
#: a quiet coin whose month simulates fast.
NOON = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=30, microsecond=0)
DAY = NOON.date().isoformat()


def T(k: int) -> datetime:
    return NOON.replace(second=0) + timedelta(minutes=k)


@pytest.fixture(autouse=True)
def stop_flows():
    yield
    stop_all()


def take(live, n: int, timeout: float = 15.0) -> list[Bar]:
    got: list[Bar] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        batch = live.poll(timeout=deadline - time.monotonic(), limit=n - len(got))
        if batch is None:
            break
        got += batch
    return got


def test_with_no_key_the_live_flow_is_the_simulated_demo_feed_continuing_its_history():
    live = stream_flow("binance", "LINK", "1m", history=30, speed=600, now=lambda: NOON)
    bars = take(live, 36)
    assert isinstance(live.feed, DemoFeed)

    assert [b.time for b in bars] == [T(k) for k in range(-30, 6)]  # no gap, no overlap
    assert [b.origin for b in bars] == ["history"] * 30 + ["live"] * 6
    # The live bars are the demo's own numbers: what the demo source serves for those
    # minutes once they are past, from the same tape as the history.
    past = get_flow("binance", "LINK", "1m", DAY, DAY, progress=False)
    expected = past[(past["time"] >= T(-30)) & (past["time"] <= T(5))].reset_index(drop=True)
    pd.testing.assert_frame_equal(live.frame()[expected.columns].iloc[:36], expected, check_exact=False, rtol=1e-12)
    # speed=600: a 1m bar every 0.1 s, after the first (30 s of it had gone: 0.05 s).
    while live.poll(0):  # what came during the comparison
        pass
    arrived = []
    for _ in range(3):
        assert live.poll(timeout=5)
        arrived.append(time.monotonic())
    assert 0.1 <= arrived[-1] - arrived[0] < 1.5


def test_the_demo_feed_is_labelled_simulated_everywhere():
    live = stream_flow("binance", "LINK", "1m", history=5, speed=600, source="demo", now=lambda: NOON)
    take(live, 6)
    df = live.frame()
    assert live.simulated and live.state.startswith("live (simulated ×600) · last bar")
    assert df.attrs["simulated"] is True and df.attrs["source"] == "demo" and "SIMULATED" in df.attrs["label"]
    assert live.history is not None and live.history.attrs["simulated"] is True
    assert list(df.columns) == ["time", *FLOW_COLUMNS]


def test_two_venues_with_price_from_one_simulated_feed():
    live = stream_flow(["binance", "okx"], "LINK", "1m", history=2, with_price=True, speed=600, now=lambda: NOON)
    bars = take(live, 12)  # 2 × 2 history bars, then per venue and minute: flow, then its price
    venues = ("binance-futures", "okx-perps")
    assert {(b.exchange, b.time) for b in bars} == {(e, T(k)) for e in venues for k in (-2, -1, 0, 1)}
    assert all(b["close"] > 0 for b in bars if b.origin == "history")
    priced = [b for b in bars if b.update]  # the price frame completes its bar
    assert {(b.exchange, b.time) for b in priced} == {(e, T(k)) for e in venues for k in (0, 1)}
    assert all(b["close"] > 0 and b["taker_buy_count"] >= 0 for b in priced)
    df = live.frame()
    assert list(df.columns) == ["time", "exchange", "symbol", *FLOW_COLUMNS, *PRICE_COLUMNS]
    assert df.attrs["simulated"] is True


def test_stop_ends_the_simulated_feed_and_its_thread():
    live = stream_flow("binance", "LINK", "1m", history=0, speed=600, now=lambda: NOON)
    take(live, 2)
    live.stop()
    assert live.state == "stopped" and not live.running
    assert not [t for t in threading.enumerate() if t.name.startswith("aperiodic-live")]
    assert live.poll(timeout=0.2) is None


def test_speed_must_be_a_positive_factor():
    with pytest.raises(QueryError, match="speed must be a positive factor"):
        stream_flow("binance", "BTC", "1m", speed=0, source="demo")


def test_bars_is_the_month_without_the_clock():
    q = make_query("binance-futures", "LINK", "1h", "2024-02")
    clocked = DemoSource(now=lambda: datetime(2024, 2, 10, 7, 30, tzinfo=UTC)).month_table(q, Month(2024, 2))
    whole = DemoSource(now=lambda: datetime(2024, 2, 10, 7, 30, tzinfo=UTC)).bars(q, Month(2024, 2))
    assert whole.num_rows == 29 * 24 and clocked.num_rows == 9 * 24 + 7
    pd.testing.assert_frame_equal(whole.slice(0, clocked.num_rows).to_pandas(), clocked.to_pandas())
