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

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

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

__all__ = ["DemoSource", "simulate_month", "DEMO_LABEL"]

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
        """One month of simulated data for ``query``, shaped like an API file."""
        self.check(query)
        inst = instrument(query.exchange, query.symbol)
        lo = pd.Timestamp(month.first_day)
        hi = pd.Timestamp(month.next().first_day)
        now = pd.Timestamp(self._now()).tz_convert("UTC").tz_localize(None)
        if inst.first_capture:
            lo = max(lo, pd.Timestamp(inst.first_capture).tz_convert("UTC").tz_localize(None).normalize())
        if inst.end_date:
            hi = min(hi, pd.Timestamp(inst.end_date).tz_convert("UTC").tz_localize(None).normalize() + pd.Timedelta(days=1))
        hi = min(hi, now.floor("min"))
        if lo >= hi:
            return empty_month()
        tape = simulate_month(query.exchange, inst.atlas, month, query.timestamp)
        # Flow and price bars come from the same tape, so simulated price moves with
        # simulated buying and selling as it does in real data.
        table = _METRICS[query.metric](tape, query.interval, start=lo, end=hi)
        # A bar still in progress at `now` is incomplete; the API would not have it yet.
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
