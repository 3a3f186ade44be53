"""How long ``provision --help`` and ``--version`` take as processes (median of five runs)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

__all__ = ["cli_startup"]


def _median_wall(args: list[str], runs: int = 5) -> float:
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "agentic_loadkit.cli", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def cli_startup() -> str:
    """One line: the median wall time of ``--help`` and ``--version`` (goal ≤ 0.25 s)."""
    return (
        f"CLI start-up: provision --help {_median_wall(['--help']):.3f} s, --version "
        f"{_median_wall(['--version']):.3f} s (median of 5; goal <= 0.25 s)"
    )
