"""Lint and types are part of the suite, so a broken signature fails here, not in a user's notebook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    proc = run("ruff", "check", "aperiodic_jupyter", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_package_type_checks():
    proc = run("mypy", "aperiodic_jupyter", "--ignore-missing-imports", "--no-error-summary")
    assert proc.returncode == 0, proc.stdout + proc.stderr
