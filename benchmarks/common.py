"""Shared helpers for the benchmarks: quiet TensorFlow, alternating timed runs, medians."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from shakegen.machine import processor_description  # noqa: F401  (re-exported for the benchmarks)
from shakegen.model.backend import import_tensorflow  # noqa: E402

tf = import_tensorflow()


def alternate(runs: dict, rounds: int, pause: float = 0.0) -> dict[str, list[float]]:
    """Call each ``runs[name]()`` (returning a rate) in turn, ``rounds`` times; rates by name.

    Alternating spreads the machine's noise (it is shared and sometimes bimodal) evenly over
    the configurations compared. ``pause`` seconds before each run let the previous run's
    spinning worker threads (OpenMP's, Eigen's) go idle, which matters when two frameworks
    share the process.
    """
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            time.sleep(pause)
            rates[name].append(run())
    return rates


def timed_rate(work, amount: float) -> float:
    """``amount`` per second of one call of ``work``."""
    started = time.perf_counter()
    work()
    return amount / (time.perf_counter() - started)


def report(rates: dict[str, list[float]], reference: str, unit: str) -> None:
    base = statistics.median(rates[reference])
    print(f"{'configuration':<44}{'median ' + unit:>18}{'ratio':>9}   all runs")
    for name, values in rates.items():
        median = statistics.median(values)
        runs = ", ".join(f"{value:,.0f}" for value in values)
        print(f"{name:<44}{median:>18,.0f}{median / base:>8.2f}x   {runs}")
    # Ratios per round too: each round's configurations ran back to back.
    for name, values in rates.items():
        if name != reference:
            per_round = [value / ref for value, ref in zip(values, rates[reference], strict=True)]
            print(
                f"per-round ratio {name} / {reference}: median {statistics.median(per_round):.2f}x "
                f"(min {min(per_round):.2f}, max {max(per_round):.2f})"
            )
