"""Benchmarks: one command runs them all and writes benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run.py            # full sizes (a few minutes)
    .venv/bin/python benchmarks/run.py --quick    # tiny sizes: the harness smoke test

Rules: a warm-up, then the median of several runs; ratios are computed pair by pair
within one run, never against numbers from another run. Nothing here asserts on time:
targets are reported as met or missed in RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from harness import Section, median_time  # noqa: E402

from aperiodic_jupyter import Client, __version__, make_query  # noqa: E402
from aperiodic_jupyter.core.cache import MemoryCache  # noqa: E402
from aperiodic_jupyter.core.compute import Trades, compute_flow_table  # noqa: E402
from aperiodic_jupyter.core.ranges import Month  # noqa: E402
from aperiodic_jupyter.core.sources.demo import DemoSource  # noqa: E402


def synthetic_trades(n: int, seed: int = 0) -> Trades:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 30 * 86_400 * 10**9, n)) + 1_704_067_200 * 10**9
    price = 42_000 * np.exp(np.cumsum(rng.normal(0, 1e-5, n)))
    return Trades(t, price, rng.lognormal(-5, 2, n), rng.random(n) < 0.5)


def bench_engine(quick: bool) -> Section:
    sec = Section("Flow engine: compute_flow on synthetic trades (one core)")
    sec.header = ["trades", "interval", "median s", "M trades/s", "peak traced MB", "target ≥ 10 M/s"]
    sizes = [200_000] if quick else [10_000_000, 100_000_000]
    for n in sizes:
        trades = synthetic_trades(n)
        for interval in ("1m", "1h"):
            repeat = 1 if n >= 50_000_000 else 3
            secs = median_time(
                lambda trades=trades, interval=interval: compute_flow_table(trades, interval),
                repeat,
                warmup=0 if n >= 50_000_000 else 1,
            )
            tracemalloc.start()
            compute_flow_table(trades, interval)
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            rate = n / secs / 1e6
            sec.rows.append([f"{n:,}", interval, f"{secs:.3f}", f"{rate:.1f}", f"{peak:,.0f}", "met" if rate >= 10 else "MISSED"])
        input_mb = n * 25 / 1e6
        sec.notes.append(f"{n:,} trades hold {input_mb:,.0f} MB of input (int64 time, float64 price and quantity, bool side).")
        del trades
        gc.collect()
    return sec


def bench_demo(quick: bool) -> Section:
    sec = Section("Demo source: one simulated month, cold (tape simulation + flow engine)")
    sec.header = ["symbol", "interval", "trades in tape", "median s", "target"]
    source = DemoSource()
    cases = [("BTC", "1m"), ("BTC", "1h"), ("ARB", "1m")] if not quick else [("ARB", "1h")]
    for symbol, interval in cases:
        q = make_query("binance-futures", symbol, interval, "2024-01")
        from aperiodic_jupyter.core.sources.demo import simulate_month

        n = len(simulate_month("binance-futures", q.symbol, Month(2024, 1)))
        secs = median_time(lambda q=q: source.month_table(q, Month(2024, 1)), 1 if quick else 5)
        sec.rows.append([symbol, interval, f"{n:,}", f"{secs:.3f}", "met (< 1 s)" if secs < 1 else "MISSED (< 1 s)"])
    return sec


def bench_output_price(quick: bool) -> Section:
    """``with_price=True`` in each output: the price join is one Arrow join for all three."""
    sec = Section(
        "Output with price: a warm fetch of demo flow with open/high/low/close joined (with_price=True), side by side in one run"
    )
    sec.header = ["interval", "months", "rows", "pandas ms", "polars ms", "arrow ms", "polars / pandas", "target polars ≤ pandas"]
    interval, months = ("1h", 1) if quick else ("1m", 12)
    rounds = 3 if quick else 15
    outputs = ("pandas", "polars", "arrow")
    with Client("demo", cache_dir=False, memory_cache=MemoryCache(2 << 30)) as client:

        def fetch(output: str) -> object:
            end = Month(2024, months).last_day
            return client.get_flow(
                "binance-futures", "BTC", interval, date(2024, 1, 1), end, progress=False, with_price=True, output=output
            )

        frame = fetch("pandas")  # cold: simulate flow and price once; every timed call is warm
        times: dict[str, list[float]] = {o: [] for o in outputs}
        for o in outputs:
            fetch(o)  # warm-up of each path
        for i in range(rounds):  # interleaved rounds, rotated, so drift hits all three alike
            for o in outputs[i % 3 :] + outputs[: i % 3]:
                gc.collect()
                t0 = time.perf_counter()
                fetch(o)
                times[o].append(time.perf_counter() - t0)
    med = {o: statistics.median(t) for o, t in times.items()}
    ratio = med["polars"] / med["pandas"]
    sec.rows.append(
        [
            interval,
            str(months),
            f"{len(frame):,}",
            *(f"{med[o] * 1000:.1f}" for o in outputs),
            f"{ratio:.2f}",
            "met" if ratio <= 1 else "MISSED",
        ]
    )
    sec.notes.append(
        f"Median of {rounds} interleaved rounds after one warm-up each; flow and price months come from the kernel's memory cache. "
        "Flow and price bars share their bar starts here, so the join appends the four price columns to the flow table without "
        "copying either (a side that misses bars is gathered onto the union of bar starts, with nulls); pandas then copies "
        "once (`to_pandas`), Polars and Arrow do not."
    )
    return sec


import notebook_weight  # noqa: E402
from fetch_bench import bench_assembly, bench_chart, bench_cold, bench_memory, bench_output, bench_warm  # noqa: E402
from live_bench import bench_live  # noqa: E402

SECTIONS: dict[str, Callable[[bool], Section]] = {
    "cold": bench_cold,
    "warm": bench_warm,
    "output": bench_output,
    "output_price": bench_output_price,
    "assembly": bench_assembly,
    "engine": bench_engine,
    "demo": bench_demo,
    "chart": bench_chart,
    "memory": bench_memory,
    "notebook": notebook_weight.section,
    "live": bench_live,
}

#: Results of benchmarks with their own command (the browser's needs JupyterLab and
#: Chromium, and a quiet machine), included in a full run's RESULTS.md as they are,
#: each saying how it was made; then the analyses of missed targets.
INCLUDED = ["browser_results.md"]
ANALYSES = ["analysis.md", "browser_analysis.md"]


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import pandas
    import pyarrow

    return [
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {cpu}",
        f"- python {platform.python_version()}, numpy {np.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}, aperiodic-jupyter {__version__}",
    ]


def render(sections: list[Section], command: str) -> str:
    link = f"BENCH_LATENCY={os.environ.get('BENCH_LATENCY', '0.2')} BENCH_BANDWIDTH={os.environ.get('BENCH_BANDWIDTH', '100e6')}"
    out = ["# Benchmark results", "", "Reproduce with:", "", f"    {command}   # loopback link: {link}", "", *machine(), ""]
    for sec in sections:
        out += [f"## {sec.title}", "", "| " + " | ".join(sec.header) + " |", "|" + "---|" * len(sec.header)]
        out += ["| " + " | ".join(row) + " |" for row in sec.rows]
        out += [""] + [f"- {n}" for n in sec.notes] + ([""] if sec.notes else [])
    return "\n".join(out) + "\n"


def _demoted(markdown: str) -> str:
    """A results file's headings one level down, to sit under RESULTS.md's title."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines()) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: check the harness, not the speed")
    p.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    p.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(names) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    sections = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        sections.append(SECTIONS[name](args.quick))
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    text = render(sections, command)
    if not args.quick and not args.only:
        for name in INCLUDED:
            text += "\n" + _demoted((HERE / name).read_text())
        for name in ANALYSES:
            if (HERE / name).exists():
                text += "\n" + (HERE / name).read_text()
    Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
