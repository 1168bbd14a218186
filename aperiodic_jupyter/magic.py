"""The ``%flow`` line magic and the ``Aperiodic`` configurable behind ``%config``.

    %load_ext aperiodic_jupyter
    %flow binance-futures BTC 1h 2024-01..2024-03          # shows the flow panel
    df = %flow binance BTC 1h 2024-01..2024-03             # binds a plain DataFrame
    %flow okx BTC,ETH 15m 7d -o flows                      # binds and shows
    %config Aperiodic.api_key = os.environ["MY_KEY"]       # or: %flow --set-key

The magic parses and validates through the core (:mod:`aperiodic_jupyter.query`) and
fetches through :class:`~aperiodic_jupyter.Client`; it never fetches on its own. Every
error ends in one line (an IPython ``UsageError``), never a traceback wall.
"""

from __future__ import annotations

import dis
import getpass
import re
import sys
from typing import Any

import pandas as pd
from IPython.core.completer import CompletionContext, SimpleCompletion, SimpleMatcherResult, context_matcher
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import CaselessStrEnum, Integer, TraitType, Unicode, observe

from . import config
from .client import Client
from .config import Secret
from .errors import AperiodicError
from .query import EXCHANGE_ALIASES, EXCHANGES, INTERVALS, METRICS, TIMESTAMPS, make_query, resolve_exchange
from .schema import COLUMN_GROUPS, FLOW_COLUMNS

__all__ = ["Aperiodic", "load_ipython_extension", "unload_ipython_extension"]


class SecretTrait(TraitType[Secret | None, Any]):
    """An API key: accepts text, stores a :class:`Secret` whose repr is ``***``, so
    ``%config Aperiodic`` never echoes it."""

    default_value = None
    info_text = "an API key (never shown)"

    def validate(self, obj: Any, value: Any) -> Secret | None:
        if value is None or value == "":
            return None
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return Secret(value.strip())
        self.error(obj, value)
        return None


def _options_help() -> str:
    return (
        "Grammar: %flow EXCHANGE SYMBOL[,SYMBOL...] INTERVAL RANGE [options]\n\n"
        f"  EXCHANGE  {', '.join(EXCHANGES)} (aliases: {', '.join(sorted(EXCHANGE_ALIASES))})\n"
        "  SYMBOL    BTC, eth, BTCUSDT, BTC-USDT-SWAP, BTC/USDT:USDT or perpetual-BTC-USDT:USDT\n"
        f"  INTERVAL  {' '.join(INTERVALS)}\n"
        "  RANGE     2024-01 | 2024-01..2024-03 | 2024-01-15..2024-02-10 | 2024 | 2024-Q1 | 7d | today\n\n"
        "Examples:\n"
        "  %flow binance-futures BTC 1h 2024-01..2024-03\n"
        "  df = %flow binance BTC 1h 2024-01             # a plain DataFrame, no view\n"
        "  %flow okx BTC,ETH 15m 7d -o flows             # bind `flows` and show the view\n"
        "  %flow binance BTC 1m 2024-01-15 -c volumes,toxicity --no-chart\n"
        "  %flow binance BTC 1h 2024 --dry-run           # months needed, and which are cached\n"
        "  %flow --set-key                               # type the API key at a hidden prompt\n"
    )


@magics_class
class Aperiodic(Magics):
    """Settings for ``%flow`` (``%config Aperiodic.<name> = value``) and the magic itself.

    The API key set here is never echoed: ``%config Aperiodic`` shows ``Secret('***')``.
    """

    api_key = SecretTrait(allow_none=True, help="Aperiodic API key (else APERIODIC_API_KEY)").tag(config=True)
    base_url = Unicode(None, allow_none=True, help="API root (else APERIODIC_API_URL, else https://aperiodic.io/api/v1)").tag(
        config=True
    )
    cache_dir = Unicode(None, allow_none=True, help="disk cache root ('' turns it off; else APERIODIC_CACHE_DIR)").tag(
        config=True
    )
    memory_cache_bytes = Integer(1 << 30, help="byte budget of the kernel's memory cache").tag(config=True)
    max_concurrency = Integer(16, help="downloads in flight at once").tag(config=True)
    source = CaselessStrEnum(
        ["auto", "api", "demo"], default_value="auto", help="auto: the API when a key is set, else the demo"
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._push_settings()

    @observe("api_key", "base_url", "cache_dir", "memory_cache_bytes", "max_concurrency", "source")
    def _on_setting(self, change: dict[str, Any]) -> None:
        self._push_settings()

    def _push_settings(self) -> None:
        config.settings.api_key = self.api_key
        config.settings.base_url = self.base_url
        config.settings.cache_dir = self.cache_dir
        config.settings.memory_cache_bytes = self.memory_cache_bytes
        config.settings.max_concurrency = self.max_concurrency
        config.settings.source = self.source

    @magic_arguments()
    @argument("exchange", nargs="?", help="exchange or alias")
    @argument("symbol", nargs="?", help="symbol(s), comma-separated")
    @argument("interval", nargs="?", help="bar length")
    @argument("range", nargs="?", help="date range")
    @argument("-t", "--timestamp", default="exchange", help="exchange (default) or true (arrival time)")
    @argument("-s", "--source", default=None, help="demo or api (default: api when a key is set)")
    @argument("-c", "--columns", default=None, help=f"column groups or names for the returned frame: {', '.join(COLUMN_GROUPS)}")
    @argument("-m", "--metric", default="flow", help="another metric on /data/{metric}: " + ", ".join(METRICS[1:]))
    @argument("-o", "--out", default=None, help="bind the frame to this variable and still show the view")
    @argument("--no-cache", action="store_true", help="fetch again even if cached (the cache is updated)")
    @argument("--no-chart", action="store_true", help="return the frame as a table instead of the view")
    @argument("--widget", action="store_true", help="open the explorer widget prefilled with this query")
    @argument("--dry-run", action="store_true", help="list the month files needed and which are cached; download nothing")
    @argument("--set-key", action="store_true", help="type the API key at a hidden prompt (nothing lands in the notebook)")
    @line_magic
    def flow(self, line: str) -> Any:
        try:
            return self._flow(line, assigned=_result_is_assigned())
        except AperiodicError as exc:
            raise UsageError(str(exc)) from None

    flow.__doc__ = (flow.__doc__ or "") + "\n" + _options_help()

    def _flow(self, line: str, *, assigned: bool) -> Any:
        args = parse_argstring(self.flow, line)
        if args.set_key:
            self.api_key = getpass.getpass("Aperiodic API key (hidden): ")
            print("API key set for this kernel." if self.api_key else "API key cleared.")
            return None
        missing = [n for n in ("exchange", "symbol", "interval", "range") if getattr(args, n) is None]
        if missing:
            raise UsageError(
                f"missing {', '.join(missing).upper()}: %flow EXCHANGE SYMBOL INTERVAL RANGE, e.g. %flow binance BTC 1h 2024-01..2024-03"
            )
        exchange = resolve_exchange(args.exchange)
        symbols = [s for s in args.symbol.split(",") if s.strip()]
        queries = [
            make_query(exchange, s, args.interval, args.range, timestamp=args.timestamp, metric=args.metric) for s in symbols
        ]
        columns = _columns(args.columns)
        source = args.source or "auto"
        if source not in ("auto", "api", "demo"):
            raise UsageError(f"unknown source {source!r}; valid: demo, api")
        if args.out is not None and (not args.out.isidentifier()):
            raise UsageError(f"-o needs a variable name, got {args.out!r}")

        with Client(source) as client:  # type: ignore[arg-type]
            if args.dry_run:
                plans = []
                for q in queries:
                    plan = client.plan(q)
                    plan.insert(0, "symbol", q.symbol)
                    plans.append(plan)
                return pd.concat(plans, ignore_index=True)
            if args.widget:
                from .widget import FlowExplorer

                explorer = FlowExplorer.from_query(queries[0], source=source)
                if assigned:
                    return explorer
                display(explorer)
                return None
            frames = [client.fetch(q, refresh=args.no_cache, progress=True) for q in queries]

        full = _combine(frames) if len(frames) > 1 else frames[0]
        result = _select(full, columns)
        user_ns: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        if args.out:
            user_ns[args.out] = result
        if assigned and not args.out:
            return result
        if args.no_chart or args.metric != "flow":
            if args.metric != "flow" and not args.no_chart:
                from .panel import summary_line

                print(summary_line(full) + " (charts are drawn for the flow metric only)")
            return None if args.out else result
        display(_panels(frames, user_ns))
        return None


def _columns(spec: str | None) -> list[str] | None:
    if not spec:
        return None
    out: list[str] = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if item in COLUMN_GROUPS:
            out += [c for c in COLUMN_GROUPS[item] if c not in out]
        elif item in FLOW_COLUMNS:
            out.append(item)
        else:
            raise UsageError(f"unknown column or group {item!r}; groups: {', '.join(COLUMN_GROUPS)}, or any flow column name")
    return out


def _select(df: pd.DataFrame, columns: list[str] | None) -> pd.DataFrame:
    if columns is None:
        return df
    keep = [c for c in ("time", "symbol") if c in df.columns] + [c for c in columns if c in df.columns]
    out = df[keep]
    out.attrs = dict(df.attrs)
    return out


def _combine(frames: list[pd.DataFrame]) -> pd.DataFrame:
    parts = []
    for f in frames:
        part = f.copy()
        part.insert(1, "symbol", f.attrs["query"]["symbol"])
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    first = frames[0].attrs
    out.attrs = {
        "queries": [f.attrs["query"] for f in frames],
        "source": first.get("source"),
        "simulated": first.get("simulated"),
        "label": first.get("label"),
        "months": {f.attrs["query"]["symbol"]: f.attrs.get("months", {}) for f in frames},
    }
    return out


def _panels(frames: list[pd.DataFrame], namespace: dict[str, Any]) -> Any:
    from .panel import FlowPanel

    panels = [FlowPanel(f, namespace=namespace) for f in frames]
    if len(panels) == 1:
        return panels[0]
    import ipywidgets as widgets

    tabs = widgets.Tab(children=panels)
    for i, f in enumerate(frames):
        tabs.set_title(i, f.attrs["query"]["symbol"].split("-")[1])
    return tabs


def _result_is_assigned() -> bool:
    """True when the magic runs as ``df = %flow ...``.

    IPython turns that line into ``df = get_ipython().run_line_magic(...)``; the cell's
    next instruction after the call is then a store. A bare ``%flow`` (shown as the
    cell's result or not) is followed by a print or a pop instead."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != "run_line_magic":
        frame = frame.f_back  # type: ignore[assignment]
    cell = frame.f_back if frame is not None else None
    if cell is None:
        return False
    for ins in dis.get_instructions(cell.f_code):
        if ins.offset > cell.f_lasti:
            return ins.opname.startswith("STORE_")
    return False


# -- completion --------------------------------------------------------------------------

_OPTION_VALUES = {
    "-t": list(TIMESTAMPS),
    "--timestamp": list(TIMESTAMPS),
    "-s": ["demo", "api"],
    "--source": ["demo", "api"],
    "-c": list(COLUMN_GROUPS),
    "--columns": list(COLUMN_GROUPS),
    "-m": list(METRICS),
    "--metric": list(METRICS),
}
_FLAGS = [
    "--timestamp",
    "--source",
    "--columns",
    "--metric",
    "--out",
    "--no-cache",
    "--no-chart",
    "--widget",
    "--dry-run",
    "--set-key",
]
_MAGIC_LINE = re.compile(r"^\s*(?:[\w, ]+=\s*)?%flow\s(.*)$")


def _range_examples() -> list[str]:
    today = pd.Timestamp.now(tz="UTC").tz_localize(None)
    this = today.strftime("%Y-%m")
    three_back = (today.to_period("M") - 2).strftime("%Y-%m")
    return [this, f"{three_back}..{this}", "7d", "30d", today.strftime("%Y"), "today"]


@context_matcher()
def flow_matcher(context: CompletionContext) -> SimpleMatcherResult:
    """Completes exchanges, symbols, intervals, ranges and options after ``%flow``."""
    match = _MAGIC_LINE.match(context.text_until_cursor)
    if not match:
        return {"completions": [], "suppress": False}
    before = match.group(1)
    words = before.split()
    current = "" if before.endswith((" ", "\t")) or not words else words.pop()
    candidates: list[str]
    if words and words[-1] in _OPTION_VALUES:
        candidates = _OPTION_VALUES[words[-1]]
    elif current.startswith("-"):
        candidates = _FLAGS
    else:
        positional = [w for i, w in enumerate(words) if not w.startswith("-") and not (i and words[i - 1] in _OPTION_VALUES)]
        candidates = _positional_candidates(positional, current)
    if "," in current and len(words) == 1:  # completing the second of BTC,ET
        head, _, tail = current.rpartition(",")
        matches = [f"{head},{c}" for c in candidates if c.lower().startswith(tail.lower())]
    else:
        matches = [c for c in candidates if c.lower().startswith(current.lower())]
    # Replace the whole current word, whatever IPython's own token splitting said.
    offset = len(current) - len(context.token)
    completions = [SimpleCompletion(text=m[offset:] if offset > 0 else m, type="flow") for m in matches[:200]]
    return {"completions": completions, "suppress": bool(completions)}


def _positional_candidates(positional: list[str], current: str) -> list[str]:
    n = len(positional)
    if n == 0:
        return list(EXCHANGES) + sorted(EXCHANGE_ALIASES)
    if n == 1:
        from .symbols import base_symbols

        try:
            return base_symbols(resolve_exchange(positional[0]))
        except AperiodicError:
            return []
    if n == 2:
        return list(INTERVALS)
    if n == 3:
        return _range_examples()
    return _FLAGS


# -- extension hooks ---------------------------------------------------------------------


def load_ipython_extension(ipython: Any) -> None:
    magics = Aperiodic(shell=ipython)
    ipython.register_magics(magics)
    ipython.configurables.append(magics)
    if flow_matcher not in ipython.Completer.custom_matchers:
        ipython.Completer.custom_matchers.append(flow_matcher)


def unload_ipython_extension(ipython: Any) -> None:
    if flow_matcher in ipython.Completer.custom_matchers:
        ipython.Completer.custom_matchers.remove(flow_matcher)
