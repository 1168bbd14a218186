"""The demo source: simulated months of flow, with no key and no network.

Each month is a simulated, *thinned* trade tape (tens of trades a minute, where a real
BTC tape has hundreds) run through the real flow engine, so every column follows the
published definitions and the data has exactly the API's schema. It is deterministic:
the same query gives the same numbers on any machine with the same numpy major version.

The model, in a few lines:

- **Price**: monthly log-price anchors follow a seeded random walk from a realistic
  January 2024 level (so months join up and venues agree); inside a month a Brownian
  bridge between anchors, with minute returns scaled by the volatility state and nudged
  by order-flow imbalance (buy pressure lifts prices).
- **Volatility clustering**: an hourly AR(1) log-volatility process.
- **Intraday seasonality**: activity peaks around the US open (13-16 UTC), is lowest
  at 03-06 UTC, and is lower at weekends; busier when volatile.
- **Regimes**: an hourly Markov chain of buy pressure / balance / sell pressure sets the
  chance that a taker buys.
- **Trade sizes**: heavy-tailed (log-normal, σ = 2) notionals, so all three size buckets
  fill; BTC and ETH trade more often and bigger than small coins.
- **Arrival time** (``timestamp=true``): exchange time plus a log-normal feed latency
  with rare spikes, kept in order as a TCP stream delivers it.

Data is labelled everywhere: ``df.attrs["simulated"] is True`` and charts say so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..compute import Trades, compute_flow_table, compute_ohlcv_table
from ..errors import FetchCancelled, QueryError
from ..query import Query, interval_ns
from ..ranges import Month
from ..symbols import instrument
from ..venues import venue
from .base import OnMonth, empty_month
from .stream import Connecting, Event, Row, Subscribed, Subscription

__all__ = ["DemoSource", "DemoFeed", "simulate_month", "DEMO_LABEL"]

DEMO_LABEL = "SIMULATED demo data: not real market data"

_VERSION = "demo-v2"  # bump when the model changes: it reseeds every series
_REFERENCE = Month(2024, 1)
# Base price in January 2024, trades a minute on the thinned Binance tape, median notional.
_PROFILES: dict[str, tuple[float, float, float]] = {
    "BTC": (42_500.0, 40.0, 600.0),
    "ETH": (2_300.0, 30.0, 450.0),
    "SOL": (100.0, 18.0, 300.0),
    "BNB": (310.0, 10.0, 250.0),
    "XRP": (0.6, 12.0, 200.0),
    "DOGE": (0.085, 12.0, 180.0),
    "ADA": (0.55, 8.0, 150.0),
    "AVAX": (36.0, 8.0, 150.0),
    "LINK": (15.0, 7.0, 150.0),
    "LTC": (70.0, 6.0, 150.0),
}
# Relative activity by UTC hour: quiet Asia late night, busiest around the US open.
_HOURLY = np.array(
    [
        0.9,
        0.85,
        0.8,
        0.7,
        0.65,
        0.65,
        0.7,
        0.8,
        0.95,
        1.0,
        1.0,
        1.0,
        1.05,
        1.3,
        1.5,
        1.5,
        1.35,
        1.2,
        1.1,
        1.05,
        1.0,
        1.0,
        0.95,
        0.9,
    ]
)
_MONTH_VOL = 0.15  # std of a month's log return


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, (_VERSION, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _profile(base: str) -> tuple[float, float, float]:
    key = base.upper().removeprefix("1000000").removeprefix("1000")
    if key in _PROFILES and not base.upper().startswith("1000"):
        return _PROFILES[key]
    h = np.random.default_rng(_seed("profile", base.upper()))
    return 10 ** h.uniform(-3, 2.5), h.uniform(2.0, 8.0), h.uniform(80.0, 200.0)


def _anchor(base: str, month: Month) -> float:
    """Log price at the start of ``month``: a seeded monthly walk from January 2024."""
    level = math.log(_profile(base)[0])
    m = _REFERENCE
    step = 1 if month >= m else -1
    while m != month:
        nxt = m.next() if step == 1 else _prev(m)
        shock_month = m if step == 1 else nxt
        shock = np.random.default_rng(_seed("anchor", base.upper(), shock_month)).normal(0.0, _MONTH_VOL)
        level += step * shock
        m = nxt
    return level


def _prev(m: Month) -> Month:
    return Month(m.year - (m.month == 1), (m.month - 2) % 12 + 1)


def simulate_month(exchange: str, symbol: str, month: Month, timestamp: str = "exchange") -> Trades:
    """The simulated trade tape of one month (prices in quote, quantities in base)."""
    inst = instrument(exchange, symbol)
    base_price, rate, median_notional = _profile(inst.base)
    rate *= venue(exchange).demo_activity
    # One market per base: every venue shares its volatility, pressure regimes and price
    # path (so venues agree on price up to a small basis and their flows move together);
    # each venue draws its own trades.
    market = np.random.default_rng(_seed("market", inst.base.upper(), month))
    rng = np.random.default_rng(_seed("tape", exchange, inst.atlas, month))
    start = pd.Timestamp(month.first_day)
    n_min = (month.last_day.day) * 1440
    n_hours = n_min // 60

    # Hourly state: AR(1) log-vol and a 3-state pressure regime.
    eps = market.normal(size=n_hours)
    u = market.random(n_hours)
    logvol = np.empty(n_hours)
    regime = np.empty(n_hours)
    lv, rg = market.normal(0.0, 0.35), float(market.integers(-1, 2))
    for h in range(n_hours):
        lv = 0.93 * lv + 0.13 * eps[h]
        if u[h] < 0.12:
            rg = float(np.clip(rg + (1 if u[h] < 0.06 else -1), -1, 1)) if rg == 0 else 0.0
        logvol[h], regime[h] = lv, rg
    vol_h = np.exp(logvol)

    minute_hour = np.arange(n_min) // 60
    hours_of_day = (start.hour + minute_hour) % 24
    weekday = (start.day_of_week + minute_hour // 24) % 7
    season = _HOURLY[hours_of_day] * np.where(weekday >= 5, 0.7, 1.0)
    vol_m = vol_h[minute_hour]
    p_buy = np.clip(0.5 + 0.07 * regime[minute_hour] + market.normal(0.0, 0.05, n_min), 0.08, 0.92)

    # Minute returns: vol-scaled noise plus a push from flow imbalance, bridged to the
    # next month's anchor so consecutive months join up.
    sigma = _MONTH_VOL / math.sqrt(n_min)
    r = sigma * vol_m * (market.normal(size=n_min) + 1.5 * (p_buy - 0.5))
    path = np.concatenate([[0.0], np.cumsum(r)])
    target = _anchor(inst.base, month.next()) - _anchor(inst.base, month)
    path -= np.linspace(0.0, 1.0, n_min + 1) * (path[-1] - target)
    basis = rng.normal(0.0, 3e-4)  # this venue's premium over the shared path, ~±3 bp
    log_level = _anchor(inst.base, month) + path + basis

    counts = rng.poisson(rate * season * vol_m**0.8)
    n = int(counts.sum())
    minute = np.repeat(np.arange(n_min), counts)
    offset_ns = np.sort(minute * 60_000_000_000 + rng.integers(0, 60_000_000_000, n))
    frac = (offset_ns - minute * 60_000_000_000) / 60e9
    logp = log_level[minute] + (log_level[minute + 1] - log_level[minute]) * frac + rng.normal(0.0, 2e-5, n)
    price = np.exp(logp)
    is_buy = rng.random(n) < p_buy[minute]
    # Heavier size on the side the regime favours: whales lean with the flow.
    lean = np.where(is_buy, 1.0, -1.0) * regime[minute // 60]
    notional = np.minimum(np.exp(rng.normal(math.log(median_notional) + 0.15 * lean, 2.0)), 5e6)
    qty = notional / price

    t_ns = start.value + offset_ns
    if timestamp == "true":
        latency = np.exp(rng.normal(math.log(25e6), 0.6, n))
        spikes = rng.random(n) < 0.002
        latency[spikes] += rng.uniform(0.2e9, 2e9, int(spikes.sum()))
        t_ns = np.maximum.accumulate(t_ns + latency.astype(np.int64))
    return Trades(t_ns, price, qty, is_buy)


#: What the demo simulates, each from the month's tape.
_METRICS = {"flow": compute_flow_table, "ohlcv": compute_ohlcv_table}


class DemoSource:
    """Simulated months for every perpetual of the shipped venue lists, within each
    instrument's listing dates, up to the present minute.

    Args:
        now: clock for the present (tests pass a fixed one).
    """

    name = "demo"
    simulated = True
    label = DEMO_LABEL
    # The model's version is part of the cache's folder: months simulated by an older
    # model are never served as this one's.
    cache_namespace = f"demo-{_VERSION.removeprefix('demo-')}"

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))
        self._cancelled_at = float("-inf")

    def __repr__(self) -> str:
        return "DemoSource()"

    def close(self) -> None:
        pass

    def check(self, query: Query) -> None:
        if query.metric not in _METRICS:
            raise QueryError(
                f"the demo source simulates only {' and '.join(_METRICS)}, not {query.metric!r}; use source='api'"
            )

    def month_table(self, query: Query, month: Month) -> pa.Table:
        """One month of simulated data for ``query``, shaped like an API file: the bars
        complete at the present minute (a bar still in progress is not served yet)."""
        now = pd.Timestamp(self._now()).tz_convert("UTC").tz_localize(None)
        return self._table(query, month, until=now.floor("min"))

    def bars(self, query: Query, month: Month) -> pa.Table:
        """Every bar of ``month`` the tape holds, whatever the clock says: what the live
        feed (:class:`DemoFeed`) publishes as its simulated clock passes each bar's end."""
        return self._table(query, month, until=None)

    def _table(self, query: Query, month: Month, until: pd.Timestamp | None) -> pa.Table:
        self.check(query)
        inst = instrument(query.exchange, query.symbol)
        lo = pd.Timestamp(month.first_day)
        hi = pd.Timestamp(month.next().first_day)
        if inst.first_capture:
            lo = max(lo, pd.Timestamp(inst.first_capture).tz_convert("UTC").tz_localize(None).normalize())
        if inst.end_date:
            hi = min(hi, pd.Timestamp(inst.end_date).tz_convert("UTC").tz_localize(None).normalize() + pd.Timedelta(days=1))
        if until is not None:
            hi = min(hi, until)
        if lo >= hi:
            return empty_month()
        tape = simulate_month(query.exchange, inst.atlas, month, query.timestamp)
        # Flow and price bars come from the same tape, so simulated price moves with
        # simulated buying and selling as it does in real data.
        table = _METRICS[query.metric](tape, query.interval, start=lo, end=hi)
        # A bar still in progress at `until` is incomplete; the API would not have it yet.
        last_complete = (hi.value - interval_ns(query.interval)) // 1000
        times = table.column("time").cast(pa.int64())
        keep = pc.less_equal(times, pa.scalar(last_complete, pa.int64()))
        return table.filter(keep)

    def fetch_months(self, query: Query, months: Sequence[Month], on_month: OnMonth) -> None:
        started = time.monotonic()
        for month in months:
            # A cancel takes effect between months (one month simulates in under a second).
            if self._cancelled_at > started:
                raise FetchCancelled("the fetch was cancelled; months finished before it are kept")
            on_month(month, self.month_table(query, month), None)

    def cancel(self) -> None:
        """Cancel every fetch running now, between two months."""
        self._cancelled_at = time.monotonic()


class DemoFeed:
    """The demo's live feed: the simulated tape's bars, each published as a real stream
    would, once its end has passed on a clock that starts at the present and runs
    ``speed`` times faster than real time (``speed=600``: a 1m bar every 0.1 s). The
    bars are the demo source's own (the same tape and numbers as
    :meth:`DemoSource.month_table`), so the feed continues the demo history exactly.
    No key, no network; it never drops or refuses, and everything it yields is
    simulated.

    Args:
        queries: one per series (venue and symbol), all of one interval.
        datasets: ``flow``, and ``ohlcv`` for price bars from the same tape.
        speed: how much faster than real time the simulated clock runs.
        now: the clock the feed starts from (tests pass a fixed one).
    """

    simulated = True

    def __init__(
        self,
        queries: Sequence[Query],
        datasets: Sequence[str] = ("flow",),
        *,
        speed: float = 1.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
            raise QueryError(f"speed must be a positive factor (600: a 1m bar every 0.1 s), got {speed!r}")
        for dataset in datasets:
            if dataset not in _METRICS:
                raise QueryError(f"the demo feed simulates only {' and '.join(_METRICS)}, not {dataset!r}")
        self.queries = list(queries)
        self.datasets = tuple(datasets)
        self.speed = float(speed)
        self._now = now or (lambda: datetime.now(UTC))
        self._source = DemoSource()
        # The month each series is publishing from, kept whole: one simulation per
        # month, not one per bar. Only the current month is held.
        self._months: dict[tuple[Query, str], tuple[Month, pa.Table, np.ndarray]] = {}
        names = dict.fromkeys(f"{d}.{q.exchange}.{q.interval}" for q in self.queries for d in self.datasets)
        self.subscription = Subscription(tuple(names))

    def __repr__(self) -> str:
        return f"DemoFeed({len(self.queries)} series, speed={self.speed:g})"

    async def events(self) -> AsyncGenerator[Event, None]:
        yield Connecting(0)
        yield Subscribed(self.subscription)
        loop = asyncio.get_running_loop()
        start_real = loop.time()
        start = int(pd.Timestamp(self._now()).tz_convert("UTC").value // 1000)  # µs
        step = {q: interval_ns(q.interval) // 1000 for q in self.queries}
        next_bar = {q: start // step[q] * step[q] for q in self.queries}  # the bar in progress now
        while self.queries:
            q = min(self.queries, key=lambda x: next_bar[x] + step[x])
            closes = next_bar[q] + step[q]
            simulated_now = start + (loop.time() - start_real) * self.speed * 1e6
            wait = (closes - simulated_now) / 1e6 / self.speed
            if wait > 0:
                await asyncio.sleep(wait)
            for dataset in self.datasets:
                row = await self._row(q, dataset, next_bar[q])
                if row is not None:
                    yield Row(f"{dataset}.{q.exchange}.{q.interval}", row)
            next_bar[q] += step[q]

    async def _row(self, query: Query, dataset: str, time_us: int) -> dict[str, Any] | None:
        """The published row of one bar, as the stream sends it (``time`` in µs), or
        ``None`` for a bar the tape has no row for (price bars with no trade)."""
        month = Month.of(pd.Timestamp(time_us, unit="us").date())
        held = self._months.get((query, dataset))
        if held is None or held[0] != month:
            # A month simulates in about half a second: off the event loop.
            table = await asyncio.to_thread(self._source.bars, dataclasses.replace(query, metric=dataset), month)
            held = (month, table, table.column("time").cast(pa.int64()).to_numpy())
            self._months[(query, dataset)] = held
        _, table, times = held
        i = int(np.searchsorted(times, time_us))
        if i >= len(times) or times[i] != time_us:
            return None
        values = table.slice(i, 1).to_pylist()[0]
        values.pop("time")
        return {"symbol": query.symbol, "interval": query.interval, "time": time_us, **values}
