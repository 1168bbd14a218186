"""Symbol resolution to Atlas symbology.

The venue lists in ``data/*.json`` are the Atlas security master's snapshots
(github.com/aperiodic-io/atlas, MIT), copied unchanged; see README "Symbols" for where
they came from and how to refresh them.

Accepted spellings, tried in this order:

1. an Atlas symbol, any case: ``perpetual-BTC-USDT:USDT``
2. the exchange-native id: ``BTCUSDT`` (binance-futures), ``BTC-USDT-SWAP`` (okx-perps),
   ``BTC`` / ``xyz:TSLA`` (hyperliquid-perps)
3. ``BASE/QUOTE`` or ccxt's ``BASE/QUOTE:SETTLE``: ``BTC/USDT:USDT``, ``ETH/USD:ETH``
4. a bare base: ``BTC``, ``eth`` → the venue's main linear perpetual (USDT-margined on
   Binance and OKX, USDC on Hyperliquid), preferring listed over delisted ones.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .errors import SymbolError
from .symbol_lists import fresh_symbols, refresh_symbols
from .venues import resolve_exchange, venue

__all__ = ["Instrument", "instruments", "resolve_symbol", "base_symbols", "instrument"]

@dataclass(frozen=True)
class Instrument:
    """One listed instrument of a venue."""

    atlas: str
    native: str
    type: str
    base: str
    quote: str
    margin: str
    first_capture: str | None
    end_date: str | None
    contract_size: float | None

    @property
    def listed(self) -> bool:
        return self.end_date is None


def instruments(exchange: str) -> tuple[Instrument, ...]:
    """Every instrument of a venue: the shipped Atlas snapshot, plus the symbols a
    refreshed list from the API added (see :mod:`.symbol_lists`)."""
    exchange = resolve_exchange(exchange)
    return _with_extras(exchange, fresh_symbols(exchange))


@cache
def _with_extras(exchange: str, listed: tuple[str, ...]) -> tuple[Instrument, ...]:
    known = _snapshot(exchange)
    atlas = {i.atlas for i in known}
    extra = [inst for s in listed if s not in atlas and (inst := _from_atlas(s)) is not None]
    return known + tuple(extra)


_ATLAS = re.compile(r"^(?P<type>[a-z]+)-(?P<base>.+)-(?P<quote>[^-:]+):(?P<margin>[^-:]+)$")


def _from_atlas(symbol: str) -> Instrument | None:
    """An instrument known only by its Atlas symbol (a listing newer than the snapshot):
    no native id or capture dates, so it is addressed by its Atlas symbol or its base."""
    m = _ATLAS.match(symbol)
    if m is None:
        return None
    return Instrument(symbol, symbol, m["type"], m["base"], m["quote"], m["margin"], None, None, None)


@cache
def _snapshot(exchange: str) -> tuple[Instrument, ...]:
    """The shipped Atlas snapshot of a venue."""
    raw = resources.files(__package__).joinpath("data", f"{exchange}.json").read_text("utf-8")
    return tuple(
        Instrument(
            atlas=e["internal_id"],
            native=e["id"],
            type=e["type"],
            base=e["symbol"],
            quote=e["denominator"],
            margin=e["margin"],
            first_capture=e.get("first_capture"),
            end_date=e.get("end_date"),
            contract_size=e.get("contract_size"),
        )
        for e in json.loads(raw)
    )


#: Each venue's last index, with the instruments it was made from: hashing a tuple of
#: hundreds of instruments (a cache keyed by it) cost about a millisecond per lookup,
#: three lookups per fetch; the same tuple object means the same index.
_indexes: dict[str, tuple[tuple[Instrument, ...], dict[str, Instrument]]] = {}


def _index(exchange: str) -> dict[str, Instrument]:
    known = instruments(exchange)
    held = _indexes.get(exchange)
    if held is None or held[0] is not known:
        held = _indexes[exchange] = (known, _index_of(exchange, known))
    return held[1]


def _index_of(exchange: str, known: tuple[Instrument, ...]) -> dict[str, Instrument]:
    """Native ids and Atlas symbols, then each base (``BTC``) for its best perpetual
    where no id or symbol reads the same (ids and symbols win)."""
    idx: dict[str, Instrument] = {}
    for inst in known:
        idx.setdefault(inst.native.upper(), inst)
    for inst in known:
        idx[inst.atlas.upper()] = inst
    by_base: dict[str, list[Instrument]] = {}
    for inst in known:
        if inst.type == "perpetual":
            by_base.setdefault(inst.base.upper(), []).append(inst)
    for base, found in by_base.items():
        idx.setdefault(base, min(found, key=lambda i: _rank(i, exchange)))
    return idx


def base_symbols(exchange: str, *, listed_only: bool = True) -> list[str]:
    """Bases with a perpetual on the venue, sorted (``BTC``, ``ETH``, ...): for completion
    and suggestions."""
    return sorted({i.base for i in instruments(exchange) if i.type == "perpetual" and (i.listed or not listed_only)})


def _rank(inst: Instrument, exchange: str) -> tuple[int, int, int]:
    # Lower sorts first: the main quote, then still listed, then linear (margin = quote).
    return (inst.quote != venue(exchange).main_quote, not inst.listed, inst.margin != inst.quote)


def instrument(exchange: str, symbol: str) -> Instrument:
    """The :class:`Instrument` a user's spelling of a symbol means on a venue. A symbol
    the snapshot does not know is looked up again after refreshing the venue's list
    from the API, when a key is set (at most once a day per venue)."""
    exchange = resolve_exchange(exchange)
    text = str(symbol).strip()
    if not text:
        raise SymbolError(f"empty symbol; try BTC or {venue(exchange).example}")
    try:
        return _lookup(exchange, text)
    except SymbolError:
        if not refresh_symbols(exchange):
            raise
    return _lookup(exchange, text)


def _lookup(exchange: str, text: str) -> Instrument:
    key = text.upper()
    idx = _index(exchange)
    if key in idx:
        return idx[key]
    perps = [i for i in instruments(exchange) if i.type == "perpetual"]
    if "/" in key:
        pair, _, settle = key.partition(":")
        base, _, quote = pair.partition("/")
        found = [i for i in perps if i.base == base and i.quote == quote and (not settle or i.margin == settle)]
        if found:
            return min(found, key=lambda i: _rank(i, exchange))
    raise SymbolError(_unknown_message(exchange, text), _suggest(exchange, key))


def resolve_symbol(exchange: str, symbol: str) -> str:
    """The Atlas symbol for any accepted spelling (see module docstring).

    Raises:
        SymbolError: the symbol is not listed; the message names close matches.
    """
    return instrument(exchange, symbol).atlas


def _suggest(exchange: str, key: str) -> list[str]:
    bases = base_symbols(exchange, listed_only=False)
    natives = [i.native.upper() for i in instruments(exchange)]
    out = difflib.get_close_matches(key, bases, n=3, cutoff=0.6)
    out += [n for n in difflib.get_close_matches(key, natives, n=3, cutoff=0.75) if n not in out]
    # "BTCUSD" on Binance is close to both BTCUSDT and the base BTC; prefix hits help too.
    out += [b for b in bases if len(key) >= 3 and b.startswith(key) and b not in out][:2]
    return out[:5]


def _unknown_message(exchange: str, text: str) -> str:
    hints = _suggest(exchange, text.upper())
    mean = f"; did you mean {', '.join(hints)}?" if hints else ""
    return f"unknown symbol {text!r} on {exchange}{mean} (accepted: a base like BTC, {venue(exchange).example}, or an Atlas symbol)"

