"""The workload and the timing loops, shared by every worker (standard library only).

A worker builds a :class:`Contender` (how to decorate, flush, disable and count for one
tracing library) and hands it to :func:`main`, which runs one phase and prints one JSON
line prefixed with :data:`RESULT_PREFIX` on stdout for the parent to read.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "
CHILDREN = 9
SPANS_PER_TRACE = CHILDREN + 1

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
Root = Callable[[int], dict[str, Any]]


def build_workload(decorate: Decorator) -> Root:
    """One trace: ``root(i)`` calls ``child`` nine times in sequence; all ten are decorated.

    Pass ``lambda f: f`` for the undecorated baseline.
    """

    @decorate
    def child(x: dict[str, Any]) -> dict[str, Any]:
        return {"answer": x["q"], "ok": True}

    @decorate
    def root(i: int) -> dict[str, Any]:
        total = 0
        for k in range(CHILDREN):
            total += child(x={"q": i + k, "tag": "a"})["answer"]
        return {"total": total, "ok": True}

    return root


def undecorated(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The identity decorator of the baseline."""
    return fn


@dataclass
class Contender:
    """What a worker supplies: a traced workload and the library's hooks."""

    traced: Root
    flush: Callable[[], None]
    disable: Callable[[], None]
    count_stored: Callable[[], tuple[int, int]]
    """Traces and spans that reached the store or sink so far (since the worker started)."""
    disabled: Root | None = None
    """The workload to time with tracing off; ``traced`` (after ``disable()``) when None."""
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _loop(root: Root, start: int, n: int) -> tuple[float, float]:
    """Run ``n`` traces; return (wall seconds, process CPU seconds) of the loop alone."""
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(start, start + n):
        root(i)
    return time.perf_counter() - t0, time.process_time() - cpu0


def _per_span_us(seconds: float, traces: int) -> float:
    return seconds * 1e6 / (traces * SPANS_PER_TRACE)


def rss_bytes() -> int:
    """Resident set size of this process, from ``/proc/self/status`` (VmRSS)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def _stored(c: Contender, produced: int) -> dict[str, Any]:
    """Produced and stored counts; a failed count is reported, not raised."""
    counts: dict[str, Any] = {
        "produced_traces": produced,
        "produced_spans": produced * SPANS_PER_TRACE,
        "stored_traces": None,
        "stored_spans": None,
    }
    try:
        counts["stored_traces"], counts["stored_spans"] = c.count_stored()
    except Exception as exc:
        traceback.print_exc()
        counts["count_error"] = f"{type(exc).__name__}: {exc}"
    return counts


def measure_overhead(c: Contender, *, traces: int, reps: int, warmup: int) -> dict[str, Any]:
    """Hot path, end-to-end CPU, disabled cost and a stored/produced count, per span."""
    plain = build_workload(undecorated)
    _loop(plain, 0, warmup)
    _loop(c.traced, 0, warmup)
    c.flush()

    base = [_loop(plain, 0, traces) for _ in range(reps + 2)]
    base_wall = statistics.median(w for w, _ in base)
    base_cpu = statistics.median(cpu for _, cpu in base)

    hot: list[float] = []
    e2e_cpu: list[float] = []
    for rep in range(reps):
        cpu0 = time.process_time()
        wall, _ = _loop(c.traced, warmup + rep * traces, traces)
        c.flush()
        hot.append(wall)
        e2e_cpu.append(time.process_time() - cpu0)

    c.disable()
    off = c.disabled or c.traced
    _loop(off, 0, min(warmup, traces))
    disabled = statistics.median(_loop(off, 0, traces)[0] for _ in range(reps + 2))
    c.flush()

    produced = warmup + reps * traces
    return {
        "traces_per_rep": traces,
        "reps": reps,
        "warmup": warmup,
        "baseline_us": _per_span_us(base_wall, traces),
        "hot_us": _per_span_us(statistics.median(hot) - base_wall, traces),
        "hot_us_reps": [_per_span_us(w - base_wall, traces) for w in hot],
        "cpu_us": _per_span_us(statistics.median(e2e_cpu) - base_cpu, traces),
        "cpu_us_reps": [_per_span_us(cpu - base_cpu, traces) for cpu in e2e_cpu],
        "disabled_us": _per_span_us(disabled - base_wall, traces),
        **_stored(c, produced),
    }


def measure_rss(c: Contender, *, traces: int, warmup: int) -> dict[str, Any]:
    """RSS before and after ``traces`` traces and a flush, after a flushed warm-up."""
    _loop(c.traced, 0, warmup)
    c.flush()
    before = rss_bytes()
    _loop(c.traced, warmup, traces)
    c.flush()
    after = rss_bytes()
    produced = warmup + traces
    return {
        "traces": traces,
        "warmup": warmup,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "rss_growth_mb": (after - before) / 2**20,
        **_stored(c, produced),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line every worker accepts."""
    parser = argparse.ArgumentParser(description="One contender of bench/overhead.py.")
    parser.add_argument("--phase", choices=("overhead", "rss"), default="overhead")
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--workdir", required=True, help="scratch directory for the store")
    parser.add_argument(
        "--mode",
        choices=("sync", "async", "async-processor", "async-destination"),
        default="async",
    )
    parser.add_argument("--endpoint", default="", help="OTLP/HTTP traces URL (OTel worker)")
    return parser.parse_args(argv)


def main(build: Callable[[argparse.Namespace], Contender]) -> None:
    """Parse the command line, build the contender, run one phase, print the JSON line."""
    args = parse_args()
    contender = build(args)
    if args.phase == "overhead":
        result = measure_overhead(contender, traces=args.traces, reps=args.reps, warmup=args.warmup)
    else:
        result = measure_rss(contender, traces=args.traces, warmup=args.warmup)
    result["versions"] = {"python": platform.python_version(), **contender.versions}
    result["notes"] = contender.notes
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
