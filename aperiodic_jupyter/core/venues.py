"""The venue registry: every fact about an exchange, stated once.

Adding an exchange means adding one :class:`Venue` here and its Atlas symbol list as
``data/<name>.json`` (see README "Where things are"). Everything else (validation,
aliases in the magic and its completion, the explorer's dropdown, symbol resolution,
the demo source's activity level) reads this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import QueryError

__all__ = ["Venue", "VENUES", "EXCHANGES", "EXCHANGE_ALIASES", "venue", "resolve_exchange"]


@dataclass(frozen=True)
class Venue:
    """One exchange as the API names it.

    Attributes:
        name: the API's ``exchange`` parameter, e.g. ``binance-futures``.
        aliases: other spellings users type (``binance``, ``okx``...).
        main_quote: the quote of the venue's main linear perpetual; a bare base
            (``BTC``) resolves to the contract with this quote.
        example: an exchange-native symbol shown in error messages.
        demo_activity: the demo source's trade rate relative to Binance (1.0).
    """

    name: str
    aliases: tuple[str, ...]
    main_quote: str
    example: str
    demo_activity: float


VENUES: tuple[Venue, ...] = (
    Venue("binance-futures", ("binance", "binance-perps", "binancefutures"), "USDT", "BTCUSDT", 1.0),
    Venue("okx-perps", ("okx", "okx-futures", "okex"), "USDT", "BTC-USDT-SWAP", 0.6),
    Venue("hyperliquid-perps", ("hyperliquid", "hl"), "USDC", "perpetual-BTC-USDC:USDC", 0.45),
)

#: Canonical exchange names, in the order menus show them.
EXCHANGES: tuple[str, ...] = tuple(v.name for v in VENUES)
#: Alias → canonical name.
EXCHANGE_ALIASES: dict[str, str] = {alias: v.name for v in VENUES for alias in v.aliases}
_BY_NAME = {v.name: v for v in VENUES}


def resolve_exchange(name: str) -> str:
    """Canonical exchange name from a name or alias (``binance`` → ``binance-futures``)."""
    key = str(name).strip().lower()
    if key in _BY_NAME:
        return key
    if key in EXCHANGE_ALIASES:
        return EXCHANGE_ALIASES[key]
    raise QueryError(f"unknown exchange {name!r}; valid: {', '.join(EXCHANGES)} (aliases: {', '.join(sorted(EXCHANGE_ALIASES))})")


def venue(name: str) -> Venue:
    """The :class:`Venue` for a name or alias."""
    return _BY_NAME[resolve_exchange(name)]
