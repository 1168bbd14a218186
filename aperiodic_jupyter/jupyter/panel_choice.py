"""Which chart panels to draw: the names users type (``%flow … -p price,cvd``, the
explorer's checkboxes) and the default set. Light on purpose: the magic's grammar
reads it without importing Altair."""

from __future__ import annotations

from ..core.errors import QueryError

__all__ = ["PANELS", "DEFAULT_PANELS", "PRICE_PANELS", "parse_panels"]

#: Every panel a user can choose (``%flow … -p price,cvd,delta``), in drawing order, with
#: what it shows. ``price`` and ``divergence`` need price columns (``with_price``).
PANELS: dict[str, str] = {
    "price": "candles, or the close when bars are aggregated",
    "cvd": "cumulative volume delta in base and notional, from the first bar in view",
    "delta": "volume delta per bar",
    "volumes": "taker buy vs sell volume",
    "buy_share": "taker buy percentage with its 50 % line",
    "sizes": "buyers' and sellers' order-size mix",
    "toxicity": "flow toxicity score",
    "entropy": "flow entropy",
    "divergence": "price change vs volume delta per bar, with a fit line and the correlation",
}
DEFAULT_PANELS: tuple[str, ...] = ("price", "cvd", "delta", "buy_share", "sizes", "toxicity")
PRICE_PANELS = frozenset({"price", "divergence"})


def parse_panels(spec: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Panel names from ``"price,cvd,delta"``, a list, ``"all"`` or ``None`` (the
    default set); one :class:`~aperiodic_jupyter.QueryError` line for an unknown name."""
    if spec is None:
        return DEFAULT_PANELS
    names = [n.strip().lower() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    if names == ["all"]:
        return tuple(PANELS)
    bad = [n for n in names if n not in PANELS]
    if bad or not names:
        raise QueryError(f"unknown panel {bad[0] if bad else spec!r}; valid: {', '.join(PANELS)} (or all)")
    return tuple(n for n in PANELS if n in names)
