"""The ``%flow`` line grammar: text → a validated :class:`FlowLine`.

The magic parses here; nothing here needs IPython, so the same grammar can serve any
front end. Every mistake is one :class:`~aperiodic_jupyter.QueryError` line that says
what is valid (and, for a mistyped option, which one was probably meant).

``live`` in place of the range (or ``--live``) follows the market instead of fetching a
range: ``--history`` (bars, or a duration such as ``6h``) and ``--speed`` (the simulated
feed's clock) go with it, and options that only make sense for a range are refused.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import shlex
from dataclasses import dataclass
from datetime import timedelta

from ..core.combine import plan_queries
from ..core.errors import QueryError
from ..core.output import OUTPUTS, check_output
from ..core.query import INTERVALS, METRICS, TIMESTAMPS, Query
from ..core.schema import COLUMN_GROUPS, FLOW_COLUMNS
from ..core.settings import SOURCES
from ..core.venues import EXCHANGE_ALIASES, EXCHANGES
from .namespace import check_variable_name
from .panel_choice import DEFAULT_PANELS, PANELS, parse_panels

__all__ = ["FlowLine", "parse_flow_line", "GRAMMAR", "OPTION_VALUES", "FLAGS"]

USAGE = "%flow EXCHANGE[,EXCHANGE...] SYMBOL[,SYMBOL...] INTERVAL RANGE|live [options]"
EXAMPLE = "%flow binance BTC 1h 2024-01..2024-03"
#: The range word that follows the market instead of fetching a range.
LIVE = "live"
LIVE_EXAMPLE = "%flow binance BTC 1m live"

#: Options whose value comes from a fixed list (for completion and messages).
OPTION_VALUES: dict[str, list[str]] = {
    "--timestamp": list(TIMESTAMPS),
    "--source": list(SOURCES),
    "--columns": list(COLUMN_GROUPS),
    "--metric": list(METRICS),
    "--panels": [*PANELS, "all"],
    "--frame": list(OUTPUTS),
}
#: Options that cannot be combined with ``--widget``, and why, in one line each.
_NOT_WITH_WIDGET = {
    "columns": "-c/--columns (the explorer loads every column; pick them from w.df)",
    "metric": "-m/--metric (the explorer shows the flow metric)",
    "refresh": "--no-cache (the explorer reads the cache; clear it with client.cache.clear())",
    "chart": "--no-chart (the explorer is a chart)",
    "dry_run": "--dry-run (run it without --widget)",
    "output": "-f/--frame (the explorer's w.df is pandas; pl.from_pandas(w.df) converts it)",
}
#: Options that make no sense for a live view, and why, in one line each.
_NOT_LIVE = {
    "columns": "-c/--columns (p.df holds every column; select from it)",
    "metric": "-m/--metric (the live stream carries flow, and price for a price panel)",
    "refresh": "--no-cache (the history comes through the cache; gaps are fetched afresh)",
    "chart": "--no-chart (a live view is a chart; aj.stream_flow(...) gives the bars without one)",
    "dry_run": "--dry-run (a live view has no month list; dry-run a range)",
    "output": "-f/--frame (p.df is pandas; pl.from_pandas(p.df) converts it)",
    "timestamp": "-t true (the stream's bars are exchange-time bars)",
}
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class _Parser(argparse.ArgumentParser):
    """argparse that raises one :class:`QueryError` line instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise QueryError(_explain(self, message))


def _parser() -> _Parser:
    p = _Parser(prog="%flow", usage=USAGE, add_help=False, allow_abbrev=False)
    p.add_argument("exchange", nargs="?", help="exchange(s) or aliases, comma-separated")
    p.add_argument("symbol", nargs="?", help="symbol(s), comma-separated")
    p.add_argument("interval", nargs="?", help="bar length")
    p.add_argument("range", nargs="?", help="date range, or live")
    p.add_argument("-t", "--timestamp", default="exchange", help="exchange (default) or true (arrival time)")
    p.add_argument("-s", "--source", default="auto", help="auto (default: api when a key is set, else demo), api or demo")
    p.add_argument(
        "-c", "--columns", default=None, help=f"column groups or names for the returned frame: {', '.join(COLUMN_GROUPS)}"
    )
    p.add_argument("-m", "--metric", default="flow", help="another metric on /data/{metric}: " + ", ".join(METRICS[1:]))
    p.add_argument(
        "-p",
        "--panels",
        default=None,
        help=f"chart panels, comma-separated: {', '.join(PANELS)}, or all (default: {','.join(DEFAULT_PANELS)})",
    )
    p.add_argument("-o", "--out", default=None, help="bind the result to this variable and still show it")
    p.add_argument(
        "-f",
        "--frame",
        dest="output",
        default="pandas",
        help=f"the frame bound to a name or returned: {', '.join(OUTPUTS)} (default pandas); the view is drawn either way",
    )
    p.add_argument("--no-cache", dest="refresh", action="store_true", help="fetch again even if cached (the cache is updated)")
    p.add_argument("--no-chart", dest="chart", action="store_false", help="return the frame as a table instead of the view")
    p.add_argument("--widget", action="store_true", help="open the explorer widget prefilled with this query")
    p.add_argument("--dry-run", action="store_true", help="list the month files needed and which are cached; download nothing")
    p.add_argument("--set-key", action="store_true", help="type the API key at a hidden prompt (nothing lands in the notebook)")
    p.add_argument(
        "--live", action="store_true", help="follow the market: recent history, then each bar as it is published (RANGE live)"
    )
    p.add_argument("--history", default=None, help="live: history first, in bars (360) or a duration (6h, 2d); 0 for none")
    p.add_argument("--speed", default=None, help="live: the simulated demo feed's clock rate (600: a 1m bar every 0.1 s)")
    return p


_PARSER = _parser()
#: Every option as typed in full, for completion and suggestions.
FLAGS: list[str] = [s for a in _PARSER._actions for s in a.option_strings if s.startswith("--")]


def _options_summary() -> str:
    return ", ".join("/".join(a.option_strings) for a in _PARSER._actions if a.option_strings)


def _explain(parser: argparse.ArgumentParser, message: str) -> str:
    """argparse's complaint as one line that says what is valid."""
    if message.startswith("unrecognized arguments:"):
        words = message.split(":", 1)[1].split()
        options = [w for w in words if w.startswith("-")]
        if options:
            bad = options[0].split("=")[0]
            close = difflib.get_close_matches(bad, FLAGS + ["-t", "-s", "-c", "-m", "-p", "-o", "-f"], n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"unknown option {bad!r}{hint}; valid options: {_options_summary()}"
        return f"unexpected {' '.join(words)!r} after the range; {USAGE}, e.g. {EXAMPLE}"
    if "expected one argument" in message:
        option = message.split(":")[0].replace("argument ", "").strip()
        return f"{option} needs a value; {USAGE}"
    return f"{message}; {USAGE}"


GRAMMAR = (
    f"Grammar: {USAGE}\n\n"
    f"  EXCHANGE  {', '.join(EXCHANGES)} (aliases: {', '.join(sorted(EXCHANGE_ALIASES))}); several: binance,okx\n"
    "  SYMBOL    BTC, eth, BTCUSDT, BTC-USDT-SWAP, BTC/USDT:USDT or perpetual-BTC-USDT:USDT\n"
    f"  INTERVAL  {' '.join(INTERVALS)}\n"
    "  RANGE     2024-01 | 2024-01..2024-03 | 2024-01-15..2024-02-10 | 2024 | 2024-Q1 | 7d | today | live\n\n"
    "Options:\n" + "\n".join(f"  {'/'.join(a.option_strings):<18}{a.help}" for a in _PARSER._actions if a.option_strings) + "\n\n"
    "Examples:\n"
    f"  {EXAMPLE}\n"
    "  df = %flow binance BTC 1h 2024-01             # a plain DataFrame, no view\n"
    "  %flow okx BTC,ETH 15m 7d -o flows             # bind `flows` and show the view\n"
    "  %flow binance,okx,hyperliquid BTC 1h 2024-11  # venues side by side\n"
    "  %flow binance BTC 1m 2024-01-15 -c volumes,toxicity --no-chart\n"
    "  df = %flow binance BTC 1m 2024-01 -f polars      # a Polars DataFrame (or -f arrow: a pyarrow.Table)\n"
    "  %flow binance BTC 15m 2024-03 -p price,cvd,divergence   # choose the chart's panels\n"
    "  %flow binance BTC 1h 2024 --dry-run           # months needed, and which are cached\n"
    f"  {LIVE_EXAMPLE}                     # live: history, then each new bar; Stop button\n"
    "  p = %flow binance,okx BTC 1m live --history 6h   # one connection; p.df grows (bounded)\n"
    "  %flow binance BTC 1m live -s demo --speed 600   # the simulated feed, a bar every 0.1 s\n"
    "  %flow binance BTC 1m live --widget            # the explorer with Live ticked\n"
    "  %flow --set-key                               # type the API key at a hidden prompt\n"
)


@dataclass(frozen=True)
class FlowLine:
    """A parsed, validated ``%flow`` line.

    Attributes:
        queries: one :class:`~aperiodic_jupyter.Query` per venue and symbol.
        skipped: one line per venue that does not list a symbol (the rest still load).
        source: ``auto``, ``api`` or ``demo``.
        columns: columns to keep in the returned frame, or ``None`` for all.
        panels: the chart panels to draw.
        out: variable to bind the result to, or ``None``.
        output: the frame bound or returned: ``pandas``, ``polars`` or ``arrow``.
        refresh: fetch again even if cached.
        chart: show the view (``False``: return the table).
        widget: open the explorer instead of fetching.
        dry_run: list the months needed instead of fetching.
        set_key: prompt for the API key (nothing else is read).
        live: follow the market (``queries`` name the series; their range is today).
        history: live: the history first, in bars or as a duration; ``None``: the
            default (``settings.live_history``).
        speed: live: the simulated feed's clock rate (1: real time).
    """

    queries: tuple[Query, ...] = ()
    skipped: tuple[str, ...] = ()
    source: str = "auto"
    columns: tuple[str, ...] | None = None
    panels: tuple[str, ...] = DEFAULT_PANELS
    out: str | None = None
    output: str = "pandas"
    refresh: bool = False
    chart: bool = True
    widget: bool = False
    dry_run: bool = False
    set_key: bool = False
    live: bool = False
    history: int | timedelta | None = None
    speed: float = 1.0

    @property
    def metric(self) -> str:
        return self.queries[0].metric if self.queries else "flow"


def parse_flow_line(line: str) -> FlowLine:
    """Parse and validate a ``%flow`` line (everything after ``%flow``)."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise QueryError(f"cannot read the line ({exc}); {USAGE}") from None
    args = _PARSER.parse_args(words)
    if args.set_key:
        return FlowLine(set_key=True)
    live = _is_live(args)
    if live and args.range is None:
        args.range = LIVE
    missing = [n for n in ("exchange", "symbol", "interval", "range") if getattr(args, n) is None]
    if missing:
        raise QueryError(f"missing {', '.join(missing).upper()}: {USAGE}, e.g. {EXAMPLE}")
    if not live and (args.history is not None or args.speed is not None):
        given = "--history" if args.history is not None else "--speed"
        raise QueryError(f"{given} goes with live, e.g. {LIVE_EXAMPLE} {given} {'6h' if given == '--history' else '600'}")
    source = args.source.strip().lower()
    if source not in SOURCES:
        raise QueryError(f"unknown source {args.source!r}; valid: {', '.join(SOURCES)}")
    if args.out is not None:
        check_variable_name(args.out)
    try:
        output = check_output(args.output)  # a typo, or Polars not installed, before any download
    except QueryError as exc:
        raise QueryError(f"-f/--frame: {exc}") from None
    exchanges = [e.strip() for e in args.exchange.split(",") if e.strip()]
    if not exchanges:
        raise QueryError(f"no exchange in {args.exchange!r}; give one or more, comma-separated, e.g. binance or binance,okx")
    symbols = [s.strip() for s in args.symbol.split(",") if s.strip()]
    if not symbols:
        raise QueryError(f"no symbol in {args.symbol!r}; give one or more, comma-separated, e.g. BTC or BTC,ETH")
    # A live view's range is now: the series are checked with today's.
    span = "today" if live else args.range
    queries, skipped = plan_queries(exchanges, symbols, args.interval, span, timestamp=args.timestamp, metric=args.metric)
    parsed = FlowLine(
        queries=tuple(queries),
        skipped=tuple(skipped),
        source=source,
        columns=_columns(args.columns),
        panels=parse_panels(args.panels),
        out=args.out,
        output=output,
        refresh=args.refresh,
        chart=args.chart,
        widget=args.widget,
        dry_run=args.dry_run,
        live=live,
        history=_history(args.history) if live else None,
        speed=_speed(args.speed) if live else 1.0,
    )
    if parsed.live:
        _check_live(parsed)
    if parsed.widget:  # with live: the explorer with its Live toggle ticked
        _check_widget(parsed, exchanges, symbols)
    return parsed


def _is_live(args: argparse.Namespace) -> bool:
    """``live`` as the range, or ``--live`` (with no other range)."""
    word = args.range is not None and args.range.strip().lower() == LIVE
    if args.live and args.range is not None and not word:
        raise QueryError(f"--live follows the market from now: drop the range {args.range!r}, or write live in its place")
    return word or args.live


def _history(text: str | None) -> int | timedelta | None:
    """``--history``: a number of bars, or a duration (``90m``, ``6h``, ``2d``, ``1w``)."""
    if text is None:
        return None
    t = text.strip().lower()
    if t.isdigit():
        return int(t)
    match = _DURATION.match(t)
    if not match:
        raise QueryError(f"--history takes a number of bars (360) or a duration (90m, 6h, 2d, 1w), got {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _speed(text: str | None) -> float:
    if text is None:
        return 1.0
    try:
        speed = float(text)
    except ValueError:
        speed = math.nan
    if not math.isfinite(speed) or speed <= 0:
        raise QueryError(f"--speed takes a positive factor for the simulated feed (600: a 1m bar every 0.1 s), got {text!r}")
    return speed


def _options_given(parsed: FlowLine) -> dict[str, bool]:
    """Which options the line set away from a plain chart's (the ones live and --widget
    refuse, each keyed as in :data:`_NOT_LIVE` and :data:`_NOT_WITH_WIDGET`)."""
    return {
        "columns": parsed.columns is not None,
        "metric": parsed.metric != "flow",
        "refresh": parsed.refresh,
        "chart": not parsed.chart,
        "dry_run": parsed.dry_run,
        "output": parsed.output != "pandas",
    }


def _check_live(parsed: FlowLine) -> None:
    given = _options_given(parsed)
    given["timestamp"] = bool(parsed.queries) and parsed.queries[0].timestamp != "exchange"
    bad = [_NOT_LIVE[k] for k, v in given.items() if v]
    if bad:
        raise QueryError(f"live does not take {'; '.join(bad)}")


def _check_widget(parsed: FlowLine, exchanges: list[str], symbols: list[str]) -> None:
    if len(exchanges) > 1:
        raise QueryError(f"--widget opens one venue at a time, got {','.join(exchanges)}; open one explorer per venue")
    if len(symbols) > 1:
        raise QueryError(f"--widget opens one symbol at a time, got {','.join(symbols)}; open one explorer per symbol")
    given = _options_given(parsed)
    bad = [_NOT_WITH_WIDGET[k] for k, v in given.items() if v]
    if bad:
        raise QueryError(f"--widget does not take {'; '.join(bad)}")


def _columns(spec: str | None) -> tuple[str, ...] | None:
    if not spec:
        return None
    out: list[str] = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if item in COLUMN_GROUPS:
            out += [c for c in COLUMN_GROUPS[item] if c not in out]
        elif item in FLOW_COLUMNS:
            out.append(item)
        else:
            raise QueryError(f"unknown column or group {item!r}; groups: {', '.join(COLUMN_GROUPS)}, or any flow column name")
    return tuple(out)
