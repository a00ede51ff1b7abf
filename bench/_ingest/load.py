"""One load run: N client processes against a server, then count what became queryable."""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _ingest.servers import Server

BENCH_DIR = Path(__file__).resolve().parent.parent
DRAIN_TIMEOUT_S = 120.0
STALL_S = 30.0  # the store is taken as final when its count has not moved for this long
CLIENT_GRACE_S = 240.0


@dataclass
class LoadResult:
    """What one contender's load run measured; ``problems`` says what is missing and why."""

    label: str
    backend: str = "SQLite"  # the targets are stated for SQLite; other stores are a reference
    #: For the ack comparison: "committed" (the default) or "queued" (x-threadline-ack:
    #: queued, lossy), and the server configuration rows are paired by.
    ack: str | None = None
    config: str = ""
    clients: int = 0
    seconds: float = 0.0
    spans_sent: int = 0
    spans_accepted: int | None = None
    accepted_per_s: float | None = None
    stored_spans: int | None = None
    queryable_per_s: float | None = None
    drain_s: float | None = None
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_peak_mb: float | None = None
    rss_end_mb: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) by the nearest-rank method, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return ordered[index]


def count_rows(db: Path, table: str) -> int | None:
    """``SELECT count(*)`` from ``table`` of a SQLite file (read-only), or None."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def _sampler(server: Server, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.wait(0.5):
            server.sample_rss()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def run_load(
    label: str,
    server: Server,
    commands: Sequence[list[str]],
    seconds: float,
    counter: Callable[[], int | None],
    env: dict[str, str] | None = None,
) -> LoadResult:
    """Run the client ``commands`` at once, merge their JSON lines, then wait for the store.

    The store is counted (``counter``) until it holds every accepted span, stops growing
    for ``STALL_S``, or ``DRAIN_TIMEOUT_S`` passes.
    """
    result = LoadResult(label=label, clients=len(commands))
    stop = threading.Event()
    sampler = _sampler(server, stop)
    child_env = {**os.environ, "PYTHONPATH": str(BENCH_DIR), **(env or {})}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            cmd, cwd=BENCH_DIR, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for cmd in commands
    ]
    outputs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=seconds + CLIENT_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            result.problems.append("a client did not finish in time and was killed")
        lines = out.decode(errors="replace").strip().splitlines()
        try:
            outputs.append(json.loads(lines[-1]))
        except (IndexError, json.JSONDecodeError):
            tail = " | ".join(err.decode(errors="replace").strip().splitlines()[-3:])
            result.problems.append(f"client failed (exit {proc.returncode}): {tail}")
    load_end = time.perf_counter()
    server.sample_rss()
    if not outputs:
        stop.set()
        sampler.join()
        return result
    result.seconds = max(o["elapsed_s"] for o in outputs)
    result.spans_sent = sum(o["spans_sent"] for o in outputs)
    accepted = [o["spans_accepted"] for o in outputs]
    if all(a is not None for a in accepted):
        result.spans_accepted = sum(accepted)
        result.accepted_per_s = result.spans_accepted / result.seconds
    result.requests = sum(o["requests"] for o in outputs)
    result.errors = sum(o["errors"] for o in outputs)
    for o in outputs:
        for status, n in o.get("statuses", {}).items():
            result.statuses[status] = result.statuses.get(status, 0) + n
    latencies = [x for o in outputs for x in o["latencies_ms"]]
    result.p50_ms, result.p99_ms = percentile(latencies, 0.5), percentile(latencies, 0.99)

    expected = result.spans_accepted if result.spans_accepted is not None else result.spans_sent
    last, last_change = counter(), time.perf_counter()
    while time.perf_counter() - load_end < DRAIN_TIMEOUT_S:
        if last is not None and last >= expected:
            break
        if time.perf_counter() - last_change > STALL_S:
            break
        time.sleep(0.5)
        now = counter()
        if now != last:
            last, last_change = now, time.perf_counter()
    drained = time.perf_counter()
    stop.set()
    sampler.join()
    server.sample_rss()
    result.stored_spans = last
    if last is not None:
        result.drain_s = max(0.0, (last_change if last < expected else drained) - load_end)
        result.queryable_per_s = last / (load_end - start + result.drain_s)
    if server.rss_samples:
        result.rss_peak_mb = max(server.rss_samples)
        result.rss_end_mb = server.rss_samples[-1]
    return result


def median_ms(fn: Callable[[], Any], reps: int = 5) -> float:
    """Median wall time in ms of ``reps`` calls of ``fn``, after one untimed call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)
