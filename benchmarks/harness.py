"""Shared pieces of the benchmarks: a results section, a median timer, and the
machine's load while a section ran."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Section:
    title: str
    rows: list[list[str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Load:
    """The machine's 1-minute load average over a section (the benchmarks share the
    machine with whatever else runs; timings are only comparable at a low load)."""

    def __init__(self) -> None:
        self.seen = [os.getloadavg()[0]]

    def sample(self) -> None:
        self.seen.append(os.getloadavg()[0])

    def note(self) -> str:
        self.sample()
        cores = os.cpu_count() or 1
        return (
            f"Load average (1 min) while this section ran: {min(self.seen):.1f} to {max(self.seen):.1f} on {cores} cores "
            "(other jobs shared the machine; compare the ratios within a row, measured interleaved)."
        )
