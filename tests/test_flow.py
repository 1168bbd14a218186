"""The flow engine against hand-computed bars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from aperiodic_jupyter import FormatError, compute_flow, order_size_shares
from aperiodic_jupyter.core.compute import TOXICITY_WINDOW, compute_flow_table
from aperiodic_jupyter.core.errors import QueryError
from aperiodic_jupyter.core.schema import FLOW_COLUMNS, FLOW_FILE_SCHEMA
from aperiodic_jupyter.core.trades import read_binance_aggtrades, read_okx_trades

T0 = pd.Timestamp("2024-01-01 00:00", tz="UTC")


def tape(rows):
    """rows: (seconds after T0, side, price, quantity)"""
    return pd.DataFrame(
        {
            "time": [T0 + pd.Timedelta(seconds=s) for s, *_ in rows],
            "side": [side for _, side, _, _ in rows],
            "price": [p for *_, p, _ in rows],
            "quantity": [q for *_, q in rows],
        }
    )


HAND = tape(
    [
        # bar 0: bucket edges on both sides
        (1, "buy", 100.0, 0.9999),  # $99.99  small
        (10, "buy", 100.0, 1.0),  # $100    medium
        (20, "sell", 99.999, 10.0),  # $999.99 medium
        (30, "sell", 100.0, 10.0),  # $1,000  large
        # bar 1: only buys
        (61, "buy", 200.0, 5.0),  # $1,000 large
        (70, "buy", 50.0, 1.0),  # $50 small
        # bar 2: empty
        # bar 3: balanced
        (185, "buy", 100.0, 2.0),
        (190, "sell", 100.0, 2.0),
    ]
)


@pytest.fixture(scope="module")
def bars():
    return compute_flow(HAND, "1m")


def test_one_row_per_bar_with_every_api_column(bars):
    assert list(bars["time"]) == [T0 + pd.Timedelta(minutes=i) for i in range(4)]
    assert list(bars.columns) == ["time", *FLOW_COLUMNS]
    assert str(bars["time"].dt.tz) == "UTC"


def test_bar_with_both_sides_and_every_bucket_edge(bars):
    b = bars.iloc[0]
    assert b.taker_buy_volume == pytest.approx(1.9999)
    assert b.taker_sell_volume == pytest.approx(20.0)
    assert (b.taker_buy_count, b.taker_sell_count) == (2, 2)
    assert b.volume_delta == pytest.approx(-18.0001)
    assert b.volume_delta_notional == pytest.approx(199.99 - 1999.99)
    p = 1.9999 / 21.9999
    assert b.flow_entropy == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)))
    assert b.taker_buy_sell_ratio == pytest.approx(1.9999 / 20)
    assert b.taker_buy_sell_count_ratio == 1.0
    assert b.taker_buy_sell_percentage == pytest.approx(p)
    assert b.taker_buy_sell_count_percentage == 0.5
    # $99.99 is small, $100 medium, $999.99 medium, $1,000 large
    assert (b.taker_buy_small_order_count, b.taker_buy_medium_order_count, b.taker_buy_large_order_count) == (1, 1, 0)
    assert (b.taker_sell_small_order_count, b.taker_sell_medium_order_count, b.taker_sell_large_order_count) == (0, 1, 1)
    assert b.taker_buy_small_order_volume == pytest.approx(99.99)
    assert b.taker_sell_medium_order_volume == pytest.approx(999.99)
    assert b.taker_sell_large_order_volume == pytest.approx(1000.0)
    # The API's literal percentages: quote notional over base volume.
    assert b.taker_buy_small_order_percentage == pytest.approx(99.99 / 1.9999)
    assert b.taker_sell_large_order_percentage == pytest.approx(1000.0 / 20.0)
    assert b.taker_sell_small_order_percentage == 0.0
    assert b.taker_buy_medium_order_count_percentage == 0.5
    assert b.taker_sell_small_order_count_percentage == 0.0


def test_bar_with_only_buys(bars):
    b = bars.iloc[1]
    assert (b.taker_buy_volume, b.taker_sell_volume) == (6.0, 0.0)
    assert math.isnan(b.taker_buy_sell_ratio) and math.isnan(b.taker_buy_sell_count_ratio)  # NaN, not inf
    assert b.taker_buy_sell_percentage == 1.0
    assert b.flow_entropy == 0.0
    assert math.isnan(b.taker_sell_small_order_percentage)
    assert b.taker_buy_large_order_volume == pytest.approx(1000.0)
    assert b.taker_buy_small_order_volume == pytest.approx(50.0)


def test_empty_bar_has_zeros_and_nans(bars):
    b = bars.iloc[2]
    assert b.taker_buy_volume == 0 and b.taker_sell_count == 0 and b.volume_delta_notional == 0
    for col in ("flow_entropy", "flow_toxicity_score", "taker_buy_sell_ratio", "taker_buy_sell_percentage"):
        assert math.isnan(b[col]), col
    assert not np.isinf(bars.select_dtypes("number").to_numpy()).any()
    assert len(compute_flow(HAND, "1m", fill_empty=False)) == 3


def test_balanced_bar_has_maximal_entropy(bars):
    assert bars.iloc[3].flow_entropy == pytest.approx(math.log(2))
    assert bars.iloc[3].taker_buy_sell_ratio == 1.0


def test_dtypes_match_the_api_file_schema():
    table = compute_flow_table(HAND, "1m")
    assert table.schema == FLOW_FILE_SCHEMA


def test_coarser_bars_are_sums_of_finer_ones():
    rng = np.random.default_rng(7)
    n = 50_000
    trades = {
        "time": np.sort(rng.integers(0, 86_400_000, n)) + 1_704_067_200_000,  # epoch ms on 2024-01-01
        "price": 100 + rng.normal(0, 1, n).cumsum() * 0.01,
        "qty": rng.lognormal(0, 2, n),
        "is_buyer_maker": rng.random(n) < 0.5,
    }
    fine = compute_flow(trades, "1m")
    coarse = compute_flow(trades, "1h")
    hourly = fine.set_index("time")[["taker_buy_volume", "taker_sell_count", "taker_buy_large_order_count"]].resample("1h").sum()
    np.testing.assert_allclose(hourly["taker_buy_volume"], coarse["taker_buy_volume"], rtol=1e-5)
    np.testing.assert_array_equal(hourly["taker_sell_count"], coarse["taker_sell_count"])
    np.testing.assert_array_equal(hourly["taker_buy_large_order_count"], coarse["taker_buy_large_order_count"])


def _straightforward_toxicity(trades: pd.DataFrame, minutes: int) -> list[float]:
    """Loop-and-list version of the documented definition, written independently."""
    buckets: list[list[tuple[float, float, bool]]] = [[] for _ in range(minutes)]
    for t, side, price, qty in zip(trades["time"], trades["side"], trades["price"], trades["quantity"], strict=True):
        buckets[int((t - T0).total_seconds() // 60)].append((price, qty, side == "buy"))
    delta, rv = [], []
    for trades_in_bar in buckets:
        if not trades_in_bar:
            delta.append(None)
            rv.append(None)
            continue
        delta.append(sum(p * q * (1 if buy else -1) for p, q, buy in trades_in_bar))
        prices = [p for p, _, _ in trades_in_bar]
        rv.append(math.sqrt(sum(math.log(b / a) ** 2 for a, b in zip(prices, prices[1:], strict=False))))

    def z(series, i):
        window = [v for v in series[max(0, i - TOXICITY_WINDOW + 1) : i + 1] if v is not None]
        if series[i] is None or len(window) < 2:
            return math.nan
        mean = sum(window) / len(window)
        std = math.sqrt(sum((v - mean) ** 2 for v in window) / (len(window) - 1))
        return (series[i] - mean) / std if std > 0 else math.nan

    return [z(delta, i) * z(rv, i) for i in range(minutes)]


def test_toxicity_matches_a_straightforward_computation():
    rng = np.random.default_rng(3)
    rows = []
    for minute in range(90):
        if minute in (17, 18):
            continue  # empty bars inside the window
        for _ in range(rng.integers(1, 12)):
            rows.append(
                (
                    minute * 60 + rng.uniform(0, 59.9),
                    "buy" if rng.random() < 0.5 else "sell",
                    100 * math.exp(rng.normal(0, 0.002)),
                    rng.lognormal(0, 1),
                )
            )
    rows.sort()
    trades = tape(rows)
    ours = compute_flow(trades, "1m")["flow_toxicity_score"].to_numpy()
    expected = np.array(_straightforward_toxicity(trades, 90))
    assert math.isnan(ours[0])  # warm-up, as in the real data
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.isfinite(ours[1:17]).all()


def test_toxicity_uses_no_future_bars():
    rows = [(m * 60 + s, "buy" if s % 2 else "sell", 100.0 + m + s / 100, 1.0 + (m % 5)) for m in range(40) for s in range(1, 6)]
    full = compute_flow(tape(rows), "1m")["flow_toxicity_score"]
    cut = compute_flow(tape([r for r in rows if r[0] < 25 * 60]), "1m")["flow_toxicity_score"]
    np.testing.assert_allclose(full[:25], cut, equal_nan=True)


def test_order_size_shares_sum_to_one_per_side(bars):
    shares = order_size_shares(bars)
    buy = shares[[f"taker_buy_{s}_notional_share" for s in ("small", "medium", "large")]].sum(axis=1)
    assert buy.iloc[0] == pytest.approx(1.0) and buy.iloc[1] == pytest.approx(1.0)
    assert shares["taker_sell_small_notional_share"].isna().iloc[1]  # no sells in bar 1
    assert shares["taker_buy_small_notional_share"].iloc[0] == pytest.approx(99.99 / 199.99)


def test_accepts_arrow_tables_and_unsorted_input():
    shuffled = HAND.sample(frac=1.0, random_state=1)
    a = compute_flow(pa.Table.from_pandas(shuffled, preserve_index=False), "1m")
    pd.testing.assert_frame_equal(a, compute_flow(HAND, "1m"))


def test_malformed_trades_are_a_format_error_and_a_bad_interval_a_query_error():
    with pytest.raises(FormatError, match="no price column"):
        compute_flow(pd.DataFrame({"time": [1], "qty": [1.0], "side": ["buy"]}), "1m")
    with pytest.raises(FormatError, match="trade side must be 'buy' or 'sell'"):
        compute_flow(pd.DataFrame({"time": [1], "price": [1.0], "qty": [1.0], "side": ["up"]}), "1m")
    with pytest.raises(FormatError, match="no taker side"):
        compute_flow(pd.DataFrame({"time": [1], "price": [1.0], "qty": [1.0]}), "1m")
    with pytest.raises(QueryError, match="unknown interval"):
        compute_flow(HAND, "2m")


def test_binance_aggtrades_with_and_without_header(tmp_path):
    rows = [
        "1,42000.5,0.002,10,10,1704067200123,true",
        "2,42001.0,0.5,11,12,1704067201000,false",
        "3,42002.0,0.03,13,13,1704067260000,false",
    ]
    with_header = tmp_path / "with.csv"
    with_header.write_text(
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n" + "\n".join(rows) + "\n"
    )
    without = tmp_path / "without.csv"
    without.write_text("\n".join(rows) + "\n")
    a, b = read_binance_aggtrades(with_header), read_binance_aggtrades(without)
    assert a.equals(b)
    assert a["is_buy"].to_pylist() == [False, True, True]
    bars = compute_flow(a, "1m")
    assert bars["taker_sell_volume"].iloc[0] == pytest.approx(0.002)
    assert bars["taker_buy_volume"].iloc[0] == pytest.approx(0.5)
    assert bars["time"].iloc[1] == T0 + pd.Timedelta(minutes=1)


def test_okx_swap_sizes_become_base_units(tmp_path):
    path = tmp_path / "okx.csv"
    path.write_text(
        "instrument_name,trade_id,side,price,size,created_time\n"
        "BTC-USDT-SWAP,1,buy,42000,3,1704067200000\n"
        "BTC-USDT-SWAP,2,sell,42000,10,1704067200500\n"
    )
    table = read_okx_trades(path)
    assert table["quantity"].to_pylist() == pytest.approx([0.03, 0.1])  # contract size 0.01 BTC
    bars = compute_flow(table, "1m")
    assert bars["taker_buy_large_order_volume"].iloc[0] == pytest.approx(1260.0)


@pytest.mark.parametrize(
    "reader, content, message",
    [
        (read_binance_aggtrades, "time,open,high,low,close\n1,2,3,4,5\n", "is not a Binance aggTrades CSV"),
        (read_okx_trades, "agg_trade_id,price,quantity\n1,2,3\n", "is not an OKX trades CSV"),
        (read_okx_trades, "trade_id,side,price,size,created_time\n1,up,1,1,1704067200000\n", "side must be buy or sell"),
    ],
)
def test_readers_reject_files_of_another_shape(tmp_path, reader, content, message):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(FormatError, match=message):
        reader(path)


def test_chunked_accumulation_equals_one_pass(monkeypatch):
    import aperiodic_jupyter.core.compute as flow

    rng = np.random.default_rng(11)
    n = 5_000
    trades = {
        "time": np.sort(rng.integers(0, 3 * 3_600_000, n)) + 1_704_067_200_000,
        "price": 100 * np.exp(rng.normal(0, 0.001, n).cumsum()),
        "qty": rng.lognormal(0, 2, n),
        "side": np.where(rng.random(n) < 0.5, "buy", "sell"),
    }
    one_pass = compute_flow(trades, "1m")
    monkeypatch.setattr(flow, "CHUNK", 7)  # boundaries inside bars, between sides and buckets
    pd.testing.assert_frame_equal(compute_flow(trades, "1m"), one_pass, rtol=1e-9)
