"""Reliability of export: outages, the spool across processes, SIGTERM, full queues,
and many threads and tasks routing to different experiments at once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import threadline
from threadline.entities.trace_location import ExperimentLocation
from threadline.export._destination import StoreDestination
from threadline.store import get_store
from threadline.tracing._runtime import RT, get_pipeline


class FlakyStore(StoreDestination):
    """A real store behind a switch: writes fail while ``down`` is set."""

    def __init__(self, uri):
        super().__init__(uri)
        self.down = True
        self.attempts = 0
        self.spans_written: list[str] = []

    def write(self, traces, spans):
        self.attempts += 1
        if self.down:
            raise ConnectionError("store unreachable")
        super().write(traces, spans)
        self.spans_written.extend(s.span_id for s in spans)


def _count(db, sql):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchone()[0]


def test_outage_then_recovery_every_trace_arrives_exactly_once(tmp_path):
    uri = f"sqlite:///{tmp_path}/flaky.db"
    flaky = FlakyStore(uri)
    get_pipeline().set_destination(flaky)
    threadline.config.enable_async_logging()

    @threadline.trace
    def step(i):
        return i

    @threadline.trace
    def job(i):
        return step(i) + step(i + 1)

    for i in range(100):
        job(i)
    report = threadline.flush_trace_async_logging(timeout=0.5)
    assert report.pending_spans == 300 and report.exported_spans == 0  # waiting, not lost
    flaky.down = False
    report = threadline.flush_trace_async_logging()
    assert report.ok
    assert report.exported_spans == 300 and report.pending_spans == 0 and report.dropped_spans == 0
    assert len(flaky.spans_written) == len(set(flaky.spans_written)) == 300  # exactly once
    assert _count(tmp_path / "flaky.db", "select count(*) from traces where state = 'OK'") == 100
    assert _count(tmp_path / "flaky.db", "select count(*) from spans") == 300


def test_long_outage_spills_to_the_spool_and_replays_when_back(tmp_path, monkeypatch):
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "0.05")
    RT.pipeline = None
    db = tmp_path / "not-yet" / "spooled.db"  # the folder is missing: every write fails
    threadline.set_tracking_uri(f"sqlite:///{db}")

    @threadline.trace
    def job(i):
        return i

    for i in range(20):
        job(i)
    time.sleep(0.1)
    report = threadline.flush_trace_async_logging()
    assert report.spooled_spans == 20 and report.pending_spans == 0
    assert len(get_pipeline().spool.pending()) >= 1
    db.parent.mkdir()  # the destination is back: the spool replays to the recorded target
    report = threadline.flush_trace_async_logging()
    assert report.replayed_spans == 20 and get_pipeline().spool.pending() == []

    assert _count(db, "select count(*) from traces") == 20


def test_a_process_replays_only_batches_for_its_own_destinations(tmp_path):
    other = tmp_path / "missing" / "other.db"
    spool = get_pipeline().spool
    spool.put("store", f"sqlite:///{other}", [], [])
    threadline.set_tracking_uri(f"sqlite:///{tmp_path}/mine.db")
    report = threadline.flush_trace_async_logging()
    assert report.replayed_spans == 0
    assert len(spool.pending()) == 1  # left for the application that writes to other.db


def test_spool_byte_budget_drops_and_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "0.01")
    monkeypatch.setenv("THREADLINE_SPOOL_MAX_BYTES", "5000")  # room for two of the batches
    RT.pipeline = None
    get_pipeline().set_destination(FlakyStore(f"sqlite:///{tmp_path}/never.db"))

    @threadline.trace
    def job(payload):
        return payload

    for _ in range(10):
        job("x" * 500)
    time.sleep(0.05)
    report = threadline.flush_trace_async_logging()
    assert report.dropped_spans > 0 and report.spooled_spans > 0
    assert report.dropped_spans + report.spooled_spans == 10
    assert any("spool full" in reason for reason in report.reasons)
    assert get_pipeline().spool.size_bytes() <= 5000


KILLED = textwrap.dedent(
    """
    import os, sys, time, threadline
    threadline.set_tracking_uri(sys.argv[1])
    threadline.config.enable_async_logging()

    @threadline.trace
    def job(i):
        return i

    for i in range(50):
        job(i)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # failed writes reach the spool after the retry timeout
        report = threadline.flush_trace_async_logging()
        if report.spooled_spans == 50:
            break
        time.sleep(0.1)
    print(report.spooled_spans, flush=True)
    time.sleep(60)  # killed here with SIGKILL: no exit handlers run
    """
)


def test_spool_left_by_a_killed_process_is_replayed_by_the_next(tmp_path):
    target = tmp_path / "later" / "traces.db"  # its folder does not exist yet: writes fail
    env = {
        **os.environ,
        "THREADLINE_SPOOL_DIR": str(tmp_path / "spool"),
        "THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT": "0.05",
    }
    with subprocess.Popen(
        [sys.executable, "-c", KILLED, f"sqlite:///{target}"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as first:
        spooled = first.stdout.readline().strip()
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert spooled == "50"
    target.parent.mkdir()
    replay = (  # the same application starting again, with the same store
        "import sys, threadline; threadline.set_tracking_uri(sys.argv[1]); "
        "print(threadline.flush_trace_async_logging().replayed_spans)"
    )
    second = subprocess.run(
        [sys.executable, "-c", replay, f"sqlite:///{target}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert second.stdout.strip() == "50", second.stderr
    assert _count(target, "select count(*) from traces where state = 'OK'") == 50


SIGTERMED = textwrap.dedent(
    """
    import os, signal, sys, threadline
    threadline.set_tracking_uri(sys.argv[1])
    threadline.config.enable_async_logging()

    @threadline.trace
    def job(i):
        return i

    for i in range(200):
        job(i)
    os.kill(os.getpid(), signal.SIGTERM)
    """
)


def test_sigterm_flushes_pending_traces_then_terminates(tmp_path):
    db = tmp_path / "term.db"
    result = subprocess.run(
        [sys.executable, "-c", SIGTERMED, f"sqlite:///{db}"], timeout=60, capture_output=True
    )
    assert result.returncode == -signal.SIGTERM
    assert _count(db, "select count(*) from traces where state = 'OK'") == 200


class HangingDestination:
    kind = "store"

    def __init__(self, uri):
        self.uri = uri
        self.release = threading.Event()

    def target(self):
        return self.uri

    def write(self, traces, spans):
        self.release.wait(30)
        get_store(self.uri).log_batch(traces, spans)


def test_a_full_queue_never_blocks_the_program_for_long(tmp_path, monkeypatch):
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE", "20")
    RT.pipeline = None
    uri = f"sqlite:///{tmp_path}/hang.db"
    hanging = HangingDestination(uri)
    get_pipeline().set_destination(hanging)
    threadline.config.enable_async_logging()

    @threadline.trace
    def job(i):
        return i

    job(0)
    get_pipeline()._wake.set()  # the worker takes that batch and hangs in the destination
    time.sleep(0.2)
    slowest = 0.0
    for i in range(1, 2000):
        started = time.monotonic()
        job(i)
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 10  # bounded: the caller spooled instead of waiting on the writer
    assert get_pipeline().report().spooled_spans > 0
    hanging.release.set()
    report = threadline.flush_trace_async_logging()
    assert report.dropped_spans == 0
    assert _count(tmp_path / "hang.db", "select count(*) from traces") == 2000


def test_threads_and_tasks_with_context_local_destinations_never_mix(captured):
    errors: list[str] = []

    @threadline.trace
    def leaf(owner):
        return owner

    @threadline.trace
    def handle(owner):
        return [leaf(owner) for _ in range(3)]

    def thread_main(n):
        threadline.tracing.set_destination(ExperimentLocation(f"thread-{n}"), context_local=True)
        for _ in range(5):
            handle(f"thread-{n}")

    async def task_main(n):
        threadline.tracing.set_destination(ExperimentLocation(f"task-{n}"), context_local=True)
        await asyncio.sleep(0)
        with threadline.start_span("task-root") as span:
            span.set_inputs({"owner": f"task-{n}"})
            await asyncio.sleep(0.001 * (n % 5))
            handle(f"task-{n}")

    async def all_tasks():
        await asyncio.gather(*(task_main(n) for n in range(200)))

    threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    asyncio.run(all_tasks())
    for t in threads:
        t.join()
    traces = captured.traces
    assert len(traces) == 16 * 5 + 200
    for trace in traces:
        owner = trace.data.root_span.inputs["owner"]
        if trace.info.experiment_id != owner:
            errors.append(f"{trace.info.trace_id} in {trace.info.experiment_id}, owner {owner}")
        for span in trace.data.spans:
            if span.name == "leaf" and span.outputs != owner:
                errors.append(f"span of {span.outputs} in trace of {owner}")
    assert errors == []


EXITING = textwrap.dedent(
    """
    import os, signal, sys, threading, time, threadline
    threadline.set_tracking_uri(sys.argv[1])

    @threadline.trace
    def job(i):
        return i

    for i in range(30):
        job(i)  # sync mode: every write fails (the folder is missing), the spans wait
    if sys.argv[2] == "back-during-exit":
        def back():  # a daemon thread keeps running while the exit flush retries
            time.sleep(1.0)
            os.mkdir(os.path.dirname(sys.argv[1][len("sqlite:///"):]))
        threading.Thread(target=back, daemon=True).start()
    if sys.argv[2] == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    """
)


def _exit_run(tmp_path, db, how, exit_timeout):
    env = {
        **os.environ,
        "THREADLINE_SPOOL_DIR": str(tmp_path / "spool"),
        "THREADLINE_EXIT_FLUSH_TIMEOUT": exit_timeout,
    }
    return subprocess.run(
        [sys.executable, "-c", EXITING, f"sqlite:///{db}", how],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_exit_keeps_retrying_until_the_destination_answers(tmp_path):
    db = tmp_path / "back" / "traces.db"
    run = _exit_run(tmp_path, db, "back-during-exit", "60")
    assert run.returncode == 0, run.stderr
    assert _count(db, "select count(*) from traces where state = 'OK'") == 30
    assert "threadline spool replay" not in run.stderr  # nothing left for the spool


@pytest.mark.parametrize("how", ["exit", "sigterm"])
def test_past_the_exit_timeout_one_line_says_how_to_replay(tmp_path, how):
    db = tmp_path / "missing" / "traces.db"
    run = _exit_run(tmp_path, db, how, "0.5")
    assert run.returncode == (-signal.SIGTERM if how == "sigterm" else 0), run.stderr
    notices = [line for line in run.stderr.splitlines() if "spool replay" in line]
    spool = tmp_path / "spool"
    command = f"threadline spool replay --tracking-uri sqlite:///{db} --spool-dir {spool}"
    assert notices == [
        f"threadline: 30 spans for sqlite:///{db} were not delivered within "
        f"THREADLINE_EXIT_FLUSH_TIMEOUT=0.5 s and wait in the spool {spool}; "
        f"replay them with: {command}"
    ], run.stderr
    db.parent.mkdir()
    replay = subprocess.run(
        [sys.executable, "-m", "threadline.cli", *command.split()[1:]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert _count(db, "select count(*) from traces where state = 'OK'") == 30
