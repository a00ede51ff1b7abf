"""The export pipeline against the real embedded store: durability, streaming, async mode,
read-your-writes, exit flush, fork, and failures that never reach the traced program."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import threadline
from threadline.tracing._runtime import RT, get_pipeline


def _rows(db, sql):
    """Read the SQLite file directly, bypassing threadline (so nothing gets flushed)."""
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "traces.db"
    threadline.set_tracking_uri(f"sqlite:///{path}")
    return path


def test_default_store_is_threadline_db_in_the_current_directory(tmp_path):
    @threadline.trace
    def f():
        return 1

    f()
    assert threadline.get_tracking_uri() == "sqlite:///threadline.db"
    assert _rows(tmp_path / "threadline.db", "select count(*) from traces") == [(1,)]
    assert _rows(tmp_path / "threadline.db", "pragma journal_mode") == [("wal",)]


def test_sync_mode_trace_is_durable_when_root_returns(db):
    @threadline.trace
    def child(i):
        return i

    @threadline.trace
    def root():
        return [child(i) for i in range(3)]

    root()
    assert _rows(db, "select state from traces") == [("OK",)]
    assert _rows(db, "select count(*) from spans") == [(4,)]


def _try_rows(db, sql):
    try:
        return _rows(db, sql)
    except sqlite3.OperationalError:  # the schema is still being created
        return []


def test_spans_stream_while_the_root_is_open(db):
    seen = {}

    @threadline.trace
    def step():
        return "done"

    @threadline.trace
    def long_agent():
        step()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = _try_rows(db, "select state from traces")
            spans = _try_rows(db, "select name from spans") if rows else []
            if rows and spans:
                seen["trace"], seen["spans"] = rows, spans
                break
            time.sleep(0.05)
        return "end"

    long_agent()
    assert seen["trace"] == [("IN_PROGRESS",)]
    assert seen["spans"] == [("step",)]
    assert _rows(db, "select state from traces") == [("OK",)]


def test_async_mode_flush_and_read_your_writes(db):
    threadline.config.enable_async_logging()

    @threadline.trace
    def work(i):
        with threadline.start_span("inner") as span:
            span.set_outputs(i)
        return i

    for i in range(300):
        work(i)
    # reads in the same process see everything this process finished
    assert len(threadline.search_traces(return_type="list")) == 300
    for i in range(50):
        work(i)
    report = threadline.flush_trace_async_logging()
    assert _rows(db, "select count(*) from traces where state = 'OK'") == [(350,)]
    assert _rows(db, "select count(*) from spans") == [(700,)]
    assert (report.exported_spans, report.exported_traces) == (700, 350)
    assert report.ok and report.dropped_spans == report.spooled_spans == 0


def test_a_full_queue_makes_the_caller_write_instead_of_dropping(db, monkeypatch):
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE", "40")
    RT.pipeline = None  # the pipeline reads its settings when created
    threadline.config.enable_async_logging()
    pipeline = get_pipeline()
    assert pipeline._max_items == 40 * 16

    @threadline.trace
    def burst(i):
        return i

    for i in range(5000):
        burst(i)
        assert pipeline.pending() <= 40 * 16 + 1
    threadline.flush_trace_async_logging()
    assert _rows(db, "select count(*) from traces") == [(5000,)]


def test_pending_traces_are_flushed_at_interpreter_exit(tmp_path):
    db = tmp_path / "exit.db"
    script = textwrap.dedent(
        f"""
        import threadline
        threadline.set_tracking_uri("sqlite:///{db}")
        threadline.config.enable_async_logging()

        @threadline.trace
        def f(i):
            return i

        for i in range(200):
            f(i)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert _rows(db, "select count(*) from traces where state = 'OK'") == [(200,)]


def test_tracing_survives_fork(tmp_path):
    db = tmp_path / "fork.db"
    script = textwrap.dedent(
        f"""
        import os, threadline
        threadline.set_tracking_uri("sqlite:///{db}")

        @threadline.trace
        def f(who):
            return who

        f("parent-before")
        pid = os.fork()
        if pid == 0:
            f("child")
            os._exit(0)
        os.waitpid(pid, 0)
        f("parent-after")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    outputs = sorted(r[0] for r in _rows(db, "select outputs from spans"))
    assert outputs == ['"child"', '"parent-after"', '"parent-before"']


class _BrokenDestination:
    kind = "broken"

    def __init__(self):
        self.calls = 0

    def target(self):
        return ""  # nowhere to replay to: its batches cannot be spooled

    def write(self, traces, spans):
        self.calls += 1
        raise ConnectionError("store is down")


def test_store_failures_are_logged_once_retried_and_never_raised(caplog, monkeypatch):
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "0.01")
    RT.pipeline = None
    broken = _BrokenDestination()
    get_pipeline().set_destination(broken)

    @threadline.trace
    def f(i):
        return i * 2

    with caplog.at_level(logging.WARNING, logger="threadline"):
        results = [f(i) for i in range(20)]
        time.sleep(0.05)
        report = threadline.flush_trace_async_logging()
    assert results == [i * 2 for i in range(20)]
    assert broken.calls >= 2  # the first write, then retries of the backlog
    assert caplog.text.count("could not write traces") == 1
    assert report.dropped_spans == 20 and report.exported_spans == 0
    assert report.reasons["broken: dropped: retry timeout, no spool"] == 20


def test_unreachable_postgres_never_breaks_the_program(caplog, monkeypatch):
    monkeypatch.setenv("THREADLINE_EXIT_FLUSH_TIMEOUT", "0")  # the teardown spools at once
    threadline.set_tracking_uri("postgresql://nobody@127.0.0.1:1/none")

    @threadline.trace
    def f():
        return "still works"

    with caplog.at_level(logging.WARNING, logger="threadline"):
        assert f() == "still works"
    assert "could not write traces" in caplog.text
    report = threadline.flush_trace_async_logging(timeout=0.5)
    assert report.pending_spans == 1 and report.dropped_spans == 0  # waiting for a retry


def test_postgres_end_to_end(postgres_uri):
    threadline.set_tracking_uri(postgres_uri)
    threadline.set_experiment("pg-experiment")

    @threadline.trace(span_type="TOOL")
    def tool(x):
        if x == 2:
            raise ValueError("bad tool input")
        return x

    @threadline.trace(span_type="AGENT")
    def agent():
        out = []
        for i in range(3):
            try:
                out.append(tool(i))
            except ValueError:
                out.append(None)
        return out

    agent()
    (trace,) = threadline.search_traces(return_type="list")
    assert trace.info.state == "OK"
    assert len(trace.data.spans) == 4
    failed = threadline.search_traces(filter_string="span.status = 'ERROR'", return_type="list")
    assert [t.info.trace_id for t in failed] == [trace.info.trace_id]


def test_a_span_ended_while_this_thread_is_writing_does_not_deadlock(db):
    """A garbage-collection finalizer can end a span in the middle of a write (sync mode)."""
    pipeline = get_pipeline()
    ended_inside = []

    class Reentrant:
        kind = "store"

        def target(self):
            return f"sqlite:///{db}"

        def write(self, traces, spans):
            if not ended_inside:
                ended_inside.append(True)
                with threadline.start_span("ended-during-a-write"):
                    pass  # its root end flushes: re-entry on the writing thread
            StoreDestination(self.target()).write(traces, spans)

    from threadline.export._destination import StoreDestination

    pipeline.set_destination(Reentrant())
    with threadline.start_span("outer"):
        pass
    report = threadline.flush_trace_async_logging()
    assert ended_inside and report.exported_traces == 2
    assert _rows(db, "select count(*) from traces where state = 'OK'") == [(2,)]


def test_a_hanging_collector_never_blocks_traced_calls_or_reads(db, monkeypatch):
    from tests.remote._fault_proxy import FaultProxy

    hanging = FaultProxy(upstream_port=1)  # accepts, reads, never answers
    hanging.set_mode("hang")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{hanging.url}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("THREADLINE_SYNC_EXPORT_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("THREADLINE_EXIT_FLUSH_TIMEOUT", "0")
    RT.pipeline = None

    @threadline.trace
    def f(i):
        return i

    try:
        waits = []
        for i in range(5):
            started = time.monotonic()
            assert f(i) == i
            waits.append(time.monotonic() - started)
        started = time.monotonic()
        found = threadline.search_traces(return_type="list")  # flushes first, within the bound
        waits.append(time.monotonic() - started)
        assert len(found) == 5
        assert max(waits) < 1 + 5, f"waited {[round(w, 2) for w in waits]} s (bound 1 s)"
        report = get_pipeline().report()
        assert report.destinations["store"].exported == 5
        assert report.destinations["otlp"].exported == report.dropped_spans == 0
    finally:
        hanging.stop()


def test_flush_timeout_must_be_seconds():
    with pytest.raises(threadline.errors.InvalidArgumentError, match="terminate=True"):
        threadline.flush_trace_async_logging(True)
    with pytest.raises(threadline.errors.InvalidArgumentError, match="0 or more"):
        threadline.flush_trace_async_logging(timeout=-1)
    assert threadline.flush_trace_async_logging(timeout=0).ok


def test_a_read_writes_a_long_healthy_queue_whole(db, monkeypatch):
    """The read's bound is for a destination that fails or hangs, not for a long queue."""
    monkeypatch.setenv("THREADLINE_SYNC_EXPORT_TIMEOUT_SECONDS", "0.001")
    RT.pipeline = None
    threadline.config.enable_async_logging()
    pipeline = get_pipeline()
    idle = threading.Thread(target=lambda: None)  # stands in for a worker busy elsewhere
    idle.start()
    idle.join()
    pipeline._worker = idle

    @threadline.trace
    def f(i):
        return i

    for i in range(3000):
        f(i)
    assert pipeline.pending() == 6000  # trace starts and ends: three batches to write
    assert len(threadline.search_traces(max_results=5000, return_type="list")) == 3000
