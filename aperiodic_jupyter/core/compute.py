"""The flow engine: taker-flow metrics from a tape of trades.

``compute_flow(trades, "1m")`` turns trades (time, price, quantity, taker side) into one
row per bar with every column of the API's flow schema, named, typed and defined as the
API defines them, so a locally computed frame is interchangeable with a downloaded one.

Decisions where the published definitions are silent (also in the README):

- **Buckets** by quote notional ``price * quantity``: small < 100, medium 100 to < 1,000,
  large >= 1,000.
- **Zero denominators** give NaN, never inf (a bar with no sells has a NaN buy/sell ratio).
- **Entropy** of the buy/sell base-volume split in natural log (0 to ln 2 ≈ 0.693);
  0 for a one-sided bar, NaN for an empty bar.
- **Bucket percentages** keep the API's literal, unit-mixed meaning: bucket notional
  divided by the side's *base* volume (so values in the thousands for BTC). The
  meaningful share (bucket notional / side notional, summing to 1) is
  :func:`order_size_shares`.
- **Toxicity** = z(volume_delta_notional) × z(realized vol), each z-score taken over a
  trailing window of ``TOXICITY_WINDOW`` bars ending at the current bar (past bars only,
  no look-ahead), with at least two bars: the first bar is NaN, as in the real data.
  Realized vol of a bar is ``sqrt(sum((Δ ln price)^2))`` over consecutive trades inside
  the bar. A zero standard deviation gives NaN.
- **Empty bars** between the first and last trade (or inside an explicit ``start``/``end``
  span) appear with zero volumes and counts and NaN ratios; pass ``fill_empty=False`` to
  drop them.

Everything is vectorised with numpy: no Python loop per trade.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import FormatError, QueryError
from .query import INTERVALS, interval_ns
from .schema import FLOW_FILE_SCHEMA, OHLCV_FILE_SCHEMA, SIDES, SIZE_EDGES, SIZES, TIME

__all__ = ["compute_flow", "compute_flow_table", "compute_ohlcv_table", "order_size_shares", "TOXICITY_WINDOW", "Trades"]

#: Bars in the trailing z-score windows of the toxicity score.
TOXICITY_WINDOW = 20

_TIME_NAMES = ("time", "timestamp", "transact_time", "created_time", "ts", "datetime")
_PRICE_NAMES = ("price", "px")
_QTY_NAMES = ("quantity", "qty", "size", "amount", "sz", "volume")


class Trades:
    """A normalised trade tape: sorted int64 epoch-ns times, float64 prices and base
    quantities, and a boolean "taker bought" flag."""

    __slots__ = ("time_ns", "price", "qty", "is_buy")

    def __init__(self, time_ns: np.ndarray, price: np.ndarray, qty: np.ndarray, is_buy: np.ndarray) -> None:
        if not (len(time_ns) == len(price) == len(qty) == len(is_buy)):
            raise ValueError("trade arrays differ in length")
        if len(time_ns) > 1 and not bool(np.all(time_ns[1:] >= time_ns[:-1])):
            order = np.argsort(time_ns, kind="stable")
            time_ns, price, qty, is_buy = time_ns[order], price[order], qty[order], is_buy[order]
        self.time_ns = np.ascontiguousarray(time_ns, dtype=np.int64)
        self.price = np.ascontiguousarray(price, dtype=np.float64)
        self.qty = np.ascontiguousarray(qty, dtype=np.float64)
        self.is_buy = np.ascontiguousarray(is_buy, dtype=bool)

    def __len__(self) -> int:
        return len(self.time_ns)

    @classmethod
    def from_any(cls, trades: Any) -> Trades:
        """Accept a pandas DataFrame, a pyarrow Table, a dict of arrays, or ``Trades``.

        Column conventions: time in ``time``/``timestamp``/``transact_time``/
        ``created_time`` (datetimes, or integer epoch seconds/ms/µs/ns told apart by
        magnitude); ``price``; quantity in base asset as ``quantity``/``qty``/``size``;
        taker side as ``side`` ("buy"/"sell", OKX) or ``is_buyer_maker`` (Binance
        aggTrades: true means the taker sold) or a boolean ``is_buy``.
        """
        if isinstance(trades, Trades):
            return trades
        if isinstance(trades, pa.Table):
            cols = {name: trades.column(name) for name in trades.column_names}
        elif isinstance(trades, pd.DataFrame):
            cols = {str(name): trades[name] for name in trades.columns}
        elif isinstance(trades, dict):
            cols = dict(trades)
        else:
            raise TypeError(f"trades must be a pandas DataFrame, pyarrow Table or dict, not {type(trades).__name__}")
        lower = {name.lower(): name for name in cols}

        def pick(names: tuple[str, ...], what: str) -> Any:
            for n in names:
                if n in lower:
                    return cols[lower[n]]
            raise FormatError(
                f"trades have no {what} column; expected one of {', '.join(names)} (found: {', '.join(cols) or 'none'})"
            )

        time_ns = _to_epoch_ns(pick(_TIME_NAMES, "time"))
        price = _to_numpy(pick(_PRICE_NAMES, "price"), np.float64)
        qty = _to_numpy(pick(_QTY_NAMES, "quantity"), np.float64)
        if "is_buyer_maker" in lower:
            is_buy = ~_to_numpy(cols[lower["is_buyer_maker"]], bool)
        elif "is_buy" in lower:
            is_buy = _to_numpy(cols[lower["is_buy"]], bool)
        elif "side" in lower:
            side = pd.Series(_to_numpy(cols[lower["side"]], object)).astype(str).str.lower()
            bad = ~side.isin(["buy", "sell", "b", "s"])
            if bad.any():
                raise FormatError(f"trade side must be 'buy' or 'sell', found {side[bad].iloc[0]!r}")
            is_buy = side.isin(["buy", "b"]).to_numpy()
        else:
            raise FormatError("trades have no taker side; expected 'side' (buy/sell), 'is_buyer_maker' or 'is_buy'")
        return cls(time_ns, price, qty, is_buy)


def _to_numpy(col: Any, dtype: Any) -> np.ndarray:
    if isinstance(col, (pa.ChunkedArray, pa.Array)):
        col = col.to_numpy(zero_copy_only=False)
    return np.asarray(col).astype(dtype, copy=False)


def _to_epoch_ns(col: Any) -> np.ndarray:
    if isinstance(col, (pa.ChunkedArray, pa.Array)):
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("ns", col.type.tz))
            return col.cast(pa.int64()).to_numpy(zero_copy_only=False)
        col = col.to_numpy(zero_copy_only=False)
    series = pd.Series(col) if not isinstance(col, pd.Series) else col
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series.astype("datetime64[ns]").to_numpy().view(np.int64)
    values = np.asarray(series, dtype=np.int64)
    if len(values) == 0:
        return values
    magnitude = int(np.abs(values).max())
    # Epoch seconds are ~1.7e9 today, ms ~1.7e12, µs ~1.7e15, ns ~1.7e18.
    scale = 10**9 if magnitude < 10**11 else 10**6 if magnitude < 10**14 else 10**3 if magnitude < 10**17 else 1
    return values * scale


def _to_ns(value: date | datetime | str | pd.Timestamp) -> int:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value)


def compute_flow_table(
    trades: Any,
    interval: str,
    *,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    fill_empty: bool = True,
) -> pa.Table:
    """Like :func:`compute_flow`, but return a table shaped like an API file: a naive
    ``time`` column (meaning UTC) and the file schema's dtypes."""
    tape, step, first_bar, n_bars = _window(trades, interval, start, end)
    qty_by, notional_by, count_by, r2_sum = _accumulate(tape, first_bar, step, n_bars)

    vol = qty_by.sum(axis=2)  # (bars, side) base volume
    cnt = count_by.sum(axis=2)
    side_notional = notional_by.sum(axis=2)
    buy_v, sell_v = vol[:, 0], vol[:, 1]
    buy_c, sell_c = cnt[:, 0], cnt[:, 1]
    total_v = buy_v + sell_v
    total_c = buy_c + sell_c

    rv = np.full(n_bars, np.nan)
    rv[total_c > 0] = np.sqrt(r2_sum[total_c > 0])
    delta_notional = side_notional[:, 0] - side_notional[:, 1]
    toxicity = _rolling_z(np.where(total_c > 0, delta_notional, np.nan)) * _rolling_z(rv)

    share = _div(buy_v, total_v)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -(_xlogx(share) + _xlogx(1.0 - share))

    columns: dict[str, Any] = {
        "taker_buy_volume": buy_v,
        "taker_sell_volume": sell_v,
        "taker_buy_count": buy_c,
        "taker_sell_count": sell_c,
        "volume_delta": buy_v - sell_v,
        "volume_delta_notional": delta_notional,
        "flow_entropy": entropy,
        "flow_toxicity_score": toxicity,
        "taker_buy_sell_ratio": _div(buy_v, sell_v),
        "taker_buy_sell_count_ratio": _div(buy_c, sell_c),
        "taker_buy_sell_percentage": share,
        "taker_buy_sell_count_percentage": _div(buy_c, total_c),
    }
    for kind in ("order_volume", "order_count", "order_percentage", "order_count_percentage"):
        for s, side in enumerate(SIDES):
            for b, sz in enumerate(SIZES):
                if kind == "order_volume":
                    value = notional_by[:, s, b]
                elif kind == "order_count":
                    value = count_by[:, s, b]
                elif kind == "order_percentage":
                    value = _div(notional_by[:, s, b], vol[:, s])
                else:
                    value = _div(count_by[:, s, b], cnt[:, s])
                columns[f"taker_{side}_{sz}_{kind}"] = value

    arrays = [_bar_times(first_bar, n_bars, step)]
    for field in list(FLOW_FILE_SCHEMA)[1:]:
        arrays.append(pa.array(np.asarray(columns[field.name]).astype(field.type.to_pandas_dtype(), copy=False)))
    table = pa.Table.from_arrays(arrays, schema=FLOW_FILE_SCHEMA)
    if not fill_empty:
        table = table.filter(pa.array(total_c > 0))
    return table


def _window(
    trades: Any, interval: str, start: date | datetime | str | None, end: date | datetime | str | None
) -> tuple[Trades, int, int, int]:
    """The tape cut to ``[start, end)`` and its bars: ``(tape, step ns, first bar, bar count)``.
    Without ``start``/``end`` the bars span the first to the last trade."""
    if interval not in INTERVALS:
        raise QueryError(f"unknown interval {interval!r}; valid: {', '.join(INTERVALS)}")
    tape = Trades.from_any(trades)
    step = interval_ns(interval)
    t = tape.time_ns
    first_bar = _to_ns(start) // step if start is not None else (int(t[0]) // step if len(t) else 0)
    if end is not None:
        end_bar = -(-_to_ns(end) // step)  # exclusive: bars starting before `end`
    else:
        end_bar = int(t[-1]) // step + 1 if len(t) else first_bar
    if start is not None or end is not None:
        keep = (t >= first_bar * step) & (t < end_bar * step)
        if not bool(keep.all()):
            tape = Trades(t[keep], tape.price[keep], tape.qty[keep], tape.is_buy[keep])
    return tape, step, first_bar, max(end_bar - first_bar, 0)


def _bar_times(first_bar: int, n_bars: int, step: int) -> pa.Array:
    """Bar starts as naive microsecond timestamps (meaning UTC), as API files store them."""
    times = (np.arange(first_bar, first_bar + n_bars, dtype=np.int64) * (step // 1000)).astype("datetime64[us]")
    return pa.array(times, type=pa.timestamp("us"))


def compute_ohlcv_table(
    trades: Any,
    interval: str,
    *,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
) -> pa.Table:
    """Price bars from a tape, shaped like an API ``ohlcv`` file: naive ``time`` (UTC bar
    start), ``open high low close`` (quote per base: the first, highest, lowest and last
    trade price of the bar), ``volume`` (base asset) and ``trades`` (count). Bars with
    no trade are absent, as in the API's files."""
    tape, step, first_bar, n_bars = _window(trades, interval, start, end)
    bar = tape.time_ns // step - first_bar
    starts = np.flatnonzero(np.r_[True, bar[1:] != bar[:-1]]) if len(bar) else np.array([], dtype=np.intp)
    ends = np.r_[starts[1:], len(bar)].astype(np.intp)
    price, qty = tape.price, tape.qty
    columns = {
        TIME: _bar_times(first_bar, n_bars, step).take(pa.array(bar[starts])) if len(starts) else pa.array([], pa.timestamp("us")),
        "open": price[starts],
        "high": np.maximum.reduceat(price, starts) if len(starts) else np.array([]),
        "low": np.minimum.reduceat(price, starts) if len(starts) else np.array([]),
        "close": price[ends - 1] if len(starts) else np.array([]),
        "volume": np.add.reduceat(qty, starts) if len(starts) else np.array([]),
        "trades": (ends - starts).astype(np.int64),
    }
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in OHLCV_FILE_SCHEMA], schema=OHLCV_FILE_SCHEMA)


def compute_flow(
    trades: Any,
    interval: str,
    *,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    fill_empty: bool = True,
) -> pd.DataFrame:
    """Flow metrics per bar from a tape of trades.

    Args:
        trades: pandas DataFrame, pyarrow Table or dict of arrays with time, price,
            quantity (**base asset**) and taker side (see :meth:`Trades.from_any` for
            the accepted column names, including Binance aggTrades and OKX trades).
        interval: bar length, one of ``INTERVALS`` (``15s`` to ``1d``); bars are aligned to
            UTC midnight (4h bars start at 00:00, 04:00, ... UTC).
        start, end: optional span; bars from ``start`` up to (not including) ``end``,
            empty ones included. Trades outside it are ignored.
        fill_empty: keep bars with no trades (zero volumes, NaN ratios).

    Returns:
        A DataFrame with a tz-aware UTC ``time`` column (bar start) and every flow
        column, exactly as :func:`aperiodic_jupyter.get_flow` returns them.
    """
    table = compute_flow_table(trades, interval, start=start, end=end, fill_empty=fill_empty)
    from .frame import table_to_frame

    return table_to_frame(table)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = num.astype(np.float64, copy=False)
    den = den.astype(np.float64, copy=False)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _xlogx(p: np.ndarray) -> np.ndarray:
    out = np.zeros_like(p)
    pos = p > 0
    out[pos] = p[pos] * np.log(p[pos])
    out[np.isnan(p)] = np.nan
    return out


#: Trades per chunk: the temporaries of one chunk stay in cache and memory stays flat.
CHUNK = 1 << 21


def _accumulate(tape: Trades, first_bar: int, step: int, n_bars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (bar, side, size bucket): base quantity, notional and count; per bar: the sum
    of squared log returns between consecutive trades inside it (for realized vol).

    One key per (bar, side, size) makes three bincounts give every additive column at
    once. Trades are sorted, so each chunk touches one contiguous run of bars."""
    qty_by = np.zeros(n_bars * 6)
    notional_by = np.zeros(n_bars * 6)
    count_by = np.zeros(n_bars * 6, dtype=np.int64)
    r2_sum = np.zeros(n_bars)
    n = len(tape)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        # One trade of overlap, so the return into this chunk's first trade is counted.
        start = lo - 1 if lo else lo
        bar = (tape.time_ns[start:hi] // step - first_bar).astype(np.intp)
        logp = np.log(tape.price[start:hi])
        if lo:
            bar_prev, bar = bar, bar[1:]
        else:
            bar_prev = bar
        qty, price, is_buy = tape.qty[lo:hi], tape.price[lo:hi], tape.is_buy[lo:hi]
        notional = price * qty
        key = bar * 6
        key += (notional >= SIZE_EDGES[0]).view(np.int8)
        key += (notional >= SIZE_EDGES[1]).view(np.int8)
        key += np.where(is_buy, 0, 3)
        k0 = int(bar[0]) * 6  # trades are sorted: no key is below the first bar's
        key -= k0
        counts = np.bincount(key)
        span = slice(k0, k0 + len(counts))
        count_by[span] += counts
        qty_by[span] += np.bincount(key, weights=qty, minlength=len(counts))
        notional_by[span] += np.bincount(key, weights=notional, minlength=len(counts))
        r2 = np.diff(logp)
        np.square(r2, out=r2)
        r2 *= bar_prev[1:] == bar_prev[:-1]  # a return across a bar boundary belongs to neither bar
        b0 = int(bar_prev[1]) if len(bar_prev) > 1 else 0
        if len(r2):
            r2_sum[b0 : int(bar_prev[-1]) + 1] += np.bincount(bar_prev[1:] - b0, weights=r2)
    shape = (n_bars, 2, 3)
    return qty_by.reshape(shape), notional_by.reshape(shape), count_by.reshape(shape), r2_sum


def _rolling_z(x: np.ndarray, window: int = TOXICITY_WINDOW) -> np.ndarray:
    """z-score of each value against the trailing window ending at it (ddof=1)."""
    s = pd.Series(x)
    roll = s.rolling(window, min_periods=2)
    mean = roll.mean().to_numpy()
    std = roll.std(ddof=1).to_numpy().copy()
    # Rolling sums leave ~1e-9 relative residue where the true std is 0; treat as 0.
    std[std <= 1e-12 * np.maximum(np.abs(mean), 1.0)] = np.nan
    return (x - mean) / std


def order_size_shares(df: pd.DataFrame) -> pd.DataFrame:
    """The meaningful order-size mix: bucket notional / the side's total notional.

    The API's ``taker_*_order_percentage`` columns divide a quote notional by a base
    volume; this helper divides notional by notional, so for each side the three shares
    sum to 1 (NaN where the side traded nothing). Columns are named
    ``taker_{side}_{size}_notional_share``; ``time`` (and ``symbol``) are kept.
    """
    keep = [c for c in (TIME, "symbol") if c in df.columns]
    out = df[keep].copy()
    for side in SIDES:
        parts = [df[f"taker_{side}_{size}_order_volume"].astype("float64") for size in SIZES]
        total = sum(parts)
        for size, part in zip(SIZES, parts, strict=True):
            out[f"taker_{side}_{size}_notional_share"] = part.where(total != 0) / total.where(total != 0)
    return out
