"""Timing calls with autolog off and on in alternating blocks, and reading the samples.

Every call is timed on its own on three clocks: CPU time of the calling thread (what the
traced program pays on its own thread), wall time, and CPU time of the whole process
(also the export thread's work). Blocks alternate between autolog off and on, after a
warm-up, so both modes see the same machine; figures compare quantiles of the two
samples, which stay usable on a shared machine where other work adds milliseconds to
random calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

CLOCKS = ("thread", "wall", "process")
BLOCK = 10  # calls per block; blocks alternate between autolog off and on

Sample = tuple[float, float, float]


def timed(call: Callable[[], Any]) -> Sample:
    """One call's (thread CPU, wall, process CPU) time."""
    t, w, p = time.thread_time(), time.perf_counter(), time.process_time()
    call()
    return time.thread_time() - t, time.perf_counter() - w, time.process_time() - p


def alternate(
    call: Callable[[], Any],
    enable: Callable[[], Any],
    disable: Callable[[], Any],
    calls: int,
) -> tuple[dict[str, list[Sample]], int]:
    """``calls`` timed calls per mode in alternating blocks after a warm-up of a fifth as
    many; returns the samples by mode (``"off"``, ``"on"``) and the number of traced calls."""
    block = max(2, min(BLOCK, calls // 10))
    samples: dict[str, list[Sample]] = {"off": [], "on": []}
    traced = 0
    for warm_up in (True, False):
        rounds = max(1, calls // block // (5 if warm_up else 1))
        for r in range(rounds):
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                (enable if mode == "on" else disable)()
                times = [timed(call) for _ in range(block)]
                traced += block if mode == "on" else 0
                if not warm_up:
                    samples[mode] += times
        disable()
    return samples, traced


def by_clock(samples: dict[str, list[Sample]]) -> dict[str, dict[str, list[float]]]:
    """The samples as ``{clock: {mode: [seconds, …]}}`` (JSON for the driver)."""
    return {
        clock: {mode: [s[i] for s in samples[mode]] for mode in samples}
        for i, clock in enumerate(CLOCKS)
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"
