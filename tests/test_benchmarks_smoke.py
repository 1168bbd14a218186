"""The benchmark harness runs end to end at tiny sizes, so it cannot rot unnoticed.
(No timing is asserted: speed is reported in benchmarks/RESULTS.md.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_command_runs_and_writes_a_results_table(tmp_path):
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "Reproduce with:" in text and "python benchmarks/run.py --quick" in text
    for title in ("Cold fetch", "Warm fetch", "Assembly", "Flow engine", "Demo source", "Chart", "Memory", "Saved notebooks", "Live flow"):
        assert f"## {title}" in text, title
    assert "M trades/s" in text and "ours / public" in text and "payload kB" in text
    assert "ours / bare" in text and "ours / limit" in text  # the bare-client floor beside the limit
    assert "(peak − before) / frame" in text and "cache keeps MB" in text
    assert "first chart kB" in text and "CPU ms / update" in text  # notebook weight, live updates
