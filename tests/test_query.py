"""Queries and symbols: what users type, and the one-line errors for what they mistype."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from aperiodic_jupyter import QueryError, SymbolError, make_query, parse_range, resolve_symbol
from aperiodic_jupyter.core.ranges import Month
from aperiodic_jupyter.core.symbols import base_symbols, instrument
from aperiodic_jupyter.core.venues import resolve_exchange

TODAY = date(2026, 11, 26)


@pytest.mark.parametrize(
    "text, start, end",
    [
        ("2024-01", date(2024, 1, 1), date(2024, 1, 31)),
        ("2024-01..2024-03", date(2024, 1, 1), date(2024, 3, 31)),
        ("2024-02..2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2024-01-15..2024-02-10", date(2024, 1, 15), date(2024, 2, 10)),
        ("2024-01-15..2024-02", date(2024, 1, 15), date(2024, 2, 29)),
        ("2024-01-15", date(2024, 1, 15), date(2024, 1, 15)),
        ("2024-1-5", date(2024, 1, 5), date(2024, 1, 5)),
        ("2023", date(2023, 1, 1), date(2023, 12, 31)),
        ("2023..2024", date(2023, 1, 1), date(2024, 12, 31)),
        ("2024-Q1", date(2024, 1, 1), date(2024, 3, 31)),
        ("2024q4", date(2024, 10, 1), date(2024, 12, 31)),
        ("2024-01-01/2024-01-07", date(2024, 1, 1), date(2024, 1, 7)),
        ("2026-10..", date(2026, 10, 1), TODAY),
        ("2026-11", date(2026, 11, 1), TODAY),  # the future part is cut at today
        ("7d", date(2026, 11, 20), TODAY),
        ("2w", date(2026, 11, 13), TODAY),
        ("today", TODAY, TODAY),
        ("yesterday", date(2026, 11, 25), date(2026, 11, 25)),
        (" 2024-01 .. 2024-02 ", date(2024, 1, 1), date(2024, 2, 29)),
    ],
)
def test_range_grammar(text, start, end):
    assert parse_range(text, today=TODAY) == (start, end)


@pytest.mark.parametrize(
    "text, message",
    [
        ("2024-03..2024-01", "ends (2024-01-31) before it starts (2024-03-01)"),
        ("2024-13", "invalid date '2024-13'"),
        ("2024-02-30", "invalid date '2024-02-30'"),
        ("jan 2024", "malformed date 'jan 2024'"),
        ("2024/01/05", "malformed date"),
        ("2027-01", "starts in the future (2027-01-01)"),
        ("..2024-01", "has no start"),
        ("", "empty date range"),
        ("0d", "at least one day"),
    ],
)
def test_bad_ranges_fail_in_one_line_that_says_what_is_valid(text, message):
    with pytest.raises(QueryError) as err:
        parse_range(text, today=TODAY)
    text_out = str(err.value)
    assert message in text_out
    assert "\n" not in text_out
    if "future" not in message and "before" not in message:
        assert "YYYY-MM" in text_out  # names the valid forms


def test_query_from_separate_dates_and_from_one_range_agree():
    a = make_query("binance-futures", "BTC", "1h", "2024-01-01", "2024-03-31", today=TODAY)
    b = make_query("binance", "btc", "1h", "2024-01..2024-03", today=TODAY)
    c = make_query("binance-futures", "BTCUSDT", "1h", date(2024, 1, 1), datetime(2024, 3, 31, 12, tzinfo=UTC), today=TODAY)
    d = make_query("binance-futures", "perpetual-BTC-USDT:USDT", "1h", "2024-01", "2024-03", today=TODAY)
    assert a == b == c == d
    assert a.months == [Month(2024, 1), Month(2024, 2), Month(2024, 3)]
    assert a.symbol == "perpetual-BTC-USDT:USDT" and a.exchange == "binance-futures"


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (
            ("kraken", "BTC", "1h", "2024-01"),
            {},
            "unknown exchange 'kraken'; valid: binance-futures, okx-perps, hyperliquid-perps",
        ),
        (("binance", "BTC", "2h", "2024-01"), {}, "unknown interval '2h'; valid: 15s, 30s, 1m, 5m, 15m, 30m, 1h, 4h, 1d"),
        (("binance", "BTC", "1h", "2024-01"), {"timestamp": "local"}, "unknown timestamp source 'local'; valid: exchange, true"),
        (("binance", "BTC", "1h", "2024-01"), {"metric": "candles"}, "unknown metric 'candles'; valid: flow"),
        (("binance", "BTC", "1h", "2024-03-01", "2024-01-01"), {}, "before it starts"),
        (("binance", "BTC", "1h", "2030-01-01", "2030-02-01"), {}, "starts in the future"),
        (("binance", "BTC", "1h", date(2024, 1, 1)), {}, "give an end date"),
        (("binance", "BTCC", "1h", "2024-01"), {}, "unknown symbol 'BTCC' on binance-futures; did you mean BTC"),
    ],
)
def test_every_invalid_query_raises_one_typed_error(args, kwargs, message):
    with pytest.raises(QueryError) as err:
        make_query(*args, today=TODAY, **kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "exchange, text, atlas",
    [
        ("binance-futures", "BTC", "perpetual-BTC-USDT:USDT"),
        ("binance-futures", "eth", "perpetual-ETH-USDT:USDT"),
        ("binance-futures", "BTCUSDT", "perpetual-BTC-USDT:USDT"),
        ("binance-futures", "btcusdc", "perpetual-BTC-USDC:USDC"),
        ("binance-futures", "BTC/USDC:USDC", "perpetual-BTC-USDC:USDC"),
        ("binance-futures", "perpetual-btc-usdt:usdt", "perpetual-BTC-USDT:USDT"),
        ("okx-perps", "BTC", "perpetual-BTC-USDT:USDT"),
        ("okx-perps", "BTC-USDT-SWAP", "perpetual-BTC-USDT:USDT"),
        ("okx-perps", "BTC-USD-SWAP", "perpetual-BTC-USD:BTC"),
        ("okx-perps", "ETH/USD:ETH", "perpetual-ETH-USD:ETH"),
        ("hyperliquid-perps", "BTC", "perpetual-BTC-USDC:USDC"),
        ("hyperliquid-perps", "xyz:TSLA", "perpetual-XYZ:TSLA-USDC:USDC"),
        ("okx", "sol", "perpetual-SOL-USDT:USDT"),
    ],
)
def test_symbols_resolve_to_atlas(exchange, text, atlas):
    assert resolve_symbol(exchange, text) == atlas


def test_unknown_symbols_suggest_close_matches():
    with pytest.raises(SymbolError) as err:
        resolve_symbol("okx-perps", "ETHH")
    assert "ETH" in err.value.suggestions
    assert "did you mean" in str(err.value)
    with pytest.raises(SymbolError) as err:
        resolve_symbol("binance-futures", "NOTACOIN")
    assert "accepted: a base like BTC, BTCUSDT, or an Atlas symbol" in str(err.value)


def test_bases_for_completion_are_the_listed_perpetuals():
    bases = base_symbols("binance-futures")
    assert {"BTC", "ETH", "SOL"} <= set(bases)
    assert bases == sorted(bases)
    assert instrument("okx-perps", "BTC-USDT-SWAP").contract_size == 0.01


def test_exchange_aliases():
    assert resolve_exchange("Binance") == "binance-futures"
    assert resolve_exchange("okx") == "okx-perps"
    assert resolve_exchange("hl") == "hyperliquid-perps"


def test_shipped_venue_lists_are_the_recorded_atlas_snapshots():
    import hashlib
    from importlib import resources

    source = resources.files("aperiodic_jupyter.core").joinpath("data", "SOURCE.md").read_text()
    for venue in ("binance-futures", "okx-perps", "hyperliquid-perps"):
        raw = resources.files("aperiodic_jupyter.core").joinpath("data", f"{venue}.json").read_bytes()
        assert hashlib.sha256(raw).hexdigest() in source, venue
