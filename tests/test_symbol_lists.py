"""Symbol lists that stay current: a contract listed after the shipped snapshot resolves,
completes and appears in the explorer once the API lists it; a failed refresh changes
nothing."""

from __future__ import annotations

import pytest

import aperiodic_jupyter as aj
from aperiodic_jupyter.core import symbol_lists
from aperiodic_jupyter.core.symbols import base_symbols

from .server import API_KEY, NEW_LISTING


@pytest.fixture(autouse=True)
def fresh_lists():
    symbol_lists.forget()
    yield
    symbol_lists.forget()


def test_without_a_key_the_snapshot_answers_and_nothing_is_asked(api, monkeypatch):
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    with pytest.raises(aj.SymbolError, match="unknown symbol 'NEWCOIN'"):
        aj.resolve_symbol("binance", "NEWCOIN")
    assert api.counts["symbols"] == 0


def test_a_new_listing_resolves_after_one_refresh_and_is_remembered_on_disk(api, monkeypatch):
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    aj.settings.api_key = API_KEY
    assert "NEWCOIN" not in base_symbols("binance-futures")
    assert aj.resolve_symbol("binance", "NEWCOIN") == NEW_LISTING
    assert aj.resolve_symbol("binance", "BTC") == "perpetual-BTC-USDT:USDT"  # the snapshot still answers
    assert api.counts["symbols"] == 1
    assert "NEWCOIN" in base_symbols("binance-futures")  # completion and the explorer's list
    symbol_lists.forget()  # a new process: the list comes from disk, no request
    assert aj.resolve_symbol("binance", NEW_LISTING) == NEW_LISTING and api.counts["symbols"] == 1
    with pytest.raises(aj.SymbolError):
        aj.resolve_symbol("binance", "NOTLISTED")  # the list is fresh: no second request
    assert api.counts["symbols"] == 1


def test_a_failed_refresh_never_breaks_a_query_the_snapshot_answers(api, monkeypatch):
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    aj.settings.api_key = API_KEY
    api.inject("symbols", status=500, times=10)
    with pytest.raises(aj.SymbolError, match="unknown symbol 'NEWCOIN'"):
        aj.resolve_symbol("binance", "NEWCOIN")
    assert aj.make_query("binance", "ETH", "1h", "2024-01").symbol == "perpetual-ETH-USDT:USDT"
    attempts = api.counts["symbols"]
    with pytest.raises(aj.SymbolError):
        aj.resolve_symbol("binance", "NEWCOIN")  # no retry storm: one attempt a day
    assert api.counts["symbols"] == attempts
