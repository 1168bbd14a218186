"""Command line: ``python -m aperiodic_jupyter binance BTC 1h 2024-01..2024-03``.

Fetches through the same core as the notebook front ends, prints a summary, and
optionally writes the frame to ``--output`` (``.parquet`` or ``.csv``).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from .core.client import default_client
from .core.errors import AperiodicError
from .core.query import INTERVALS, make_query
from .core.settings import SOURCES
from .core.venues import EXCHANGE_ALIASES, EXCHANGES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aperiodic_jupyter",
        description="Fetch taker-flow metrics (demo source when no API key is set).",
        epilog="example: python -m aperiodic_jupyter binance BTC 1h 2024-01..2024-03",
    )
    p.add_argument("exchange", help=f"one of {', '.join(EXCHANGES)} (or {', '.join(sorted(EXCHANGE_ALIASES))})")
    p.add_argument("symbol", help="BTC, BTCUSDT, BTC-USDT-SWAP or perpetual-BTC-USDT:USDT")
    p.add_argument("interval", help=" ".join(INTERVALS))
    p.add_argument("range", help="2024-01, 2024-01..2024-03, 2024-01-15..2024-02-10, 7d, ...")
    p.add_argument("--timestamp", default="exchange", choices=["exchange", "true"])
    p.add_argument("--source", default="auto", choices=list(SOURCES))
    p.add_argument("--refresh", action="store_true", help="ignore the cache")
    p.add_argument("--output", "-o", help="write the frame to FILE.parquet or FILE.csv")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        query = make_query(args.exchange, args.symbol, args.interval, args.range, timestamp=args.timestamp)
        df = default_client(args.source).fetch(query, refresh=args.refresh, progress=sys.stderr.isatty())
    except AperiodicError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(df))
    if args.output:
        if args.output.endswith(".csv"):
            df.to_csv(args.output, index=False)
        else:
            df.to_parquet(args.output, index=False)
        print(f"wrote {len(df)} rows to {args.output}")
    return 0


def summary(df: pd.DataFrame) -> str:
    """A few lines a person can read: what, where from, and the flow at a glance."""
    a = df.attrs
    q = a["query"]
    lines = [
        f"{q['exchange']} {q['symbol']} {q['interval']} {q['start']}..{q['end']} (timestamp={q['timestamp']})",
        f"{len(df):,} bars from {a['label']}; months cached: {len(a['from_cache'])}, downloaded: {len(a['downloaded'])}",
    ]
    if a.get("coverage", {}).get("note"):
        lines.append(a["coverage"]["note"])
    if len(df):
        daily = (
            df.set_index("time")
            .resample("1D")
            .agg(
                {
                    "taker_buy_volume": "sum",
                    "taker_sell_volume": "sum",
                    "volume_delta_notional": "sum",
                    "flow_toxicity_score": "max",
                }
            )
        )
        daily["buy %"] = 100 * daily["taker_buy_volume"] / (daily["taker_buy_volume"] + daily["taker_sell_volume"])
        daily.index = daily.index.date
        daily.columns = ["buy vol (base)", "sell vol (base)", "delta (quote)", "max toxicity", "buy %"]
        with pd.option_context("display.width", 120, "display.max_rows", 12, "display.float_format", "{:,.2f}".format):
            lines += ["", "daily totals:", str(daily)]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
