"""Fault tests of the server's promise that a 2xx means committed: ``threadline server``
SIGKILLed mid-stream (SQLite with 1 and 2 workers, PostgreSQL with 2), PostgreSQL
restarted under a running server, and read-your-acknowledged-writes on every worker.

Each test is bounded in time and in requests, and counts what was acknowledged against
what is found."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests._pg import create_database, drop_database, pg_available
from tests._pg_cluster import ThrowawayCluster, cluster_unavailable
from tests.server.conftest import otlp_request

STARTUP_TIMEOUT = 60.0
CLIENTS = 3
TRACES_PER_REQUEST = 20
SPANS_PER_TRACE = 3
LOAD_SECONDS = 2.5  # each round: clients send for about this long before the kill
MAX_REQUESTS_PER_CLIENT = 400
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


class ServerProcess:
    """``threadline server`` on a fixed port, in its own process group so that SIGKILL
    takes the supervisor and every worker down at once, as a crash of the host would."""

    def __init__(self, tmp_path: Path, store_uri: str, workers: int) -> None:
        self.port = _free_port()
        self.store_uri = store_uri
        self.workers = workers
        self.log = tmp_path / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._cwd = tmp_path

    def start(self) -> None:
        command = [sys.executable, "-m", "threadline.cli", "server", "--port", str(self.port)]
        command += ["--backend-store-uri", self.store_uri]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        started = (
            self.log.read_text().count("Application startup complete.")
            if (self.log.exists())
            else 0
        )
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, cwd=self._cwd, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while self.log.read_text().count("Application startup complete.") < started + self.workers:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        deadline = time.monotonic() + 30
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Load:
    """Clients posting OTLP batches as fast as the server answers; every trace of a request
    answered 200 is recorded as acknowledged."""

    def __init__(self, port: int, first_trace: int) -> None:
        self.port = port
        self.acknowledged: set[int] = set()
        self.refused = 0
        self._next = first_trace
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(90)

    def _take(self) -> list[int]:
        with self._lock:
            first, self._next = self._next, self._next + TRACES_PER_REQUEST
        return list(range(first, first + TRACES_PER_REQUEST))

    def _client(self) -> None:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if self._stop.is_set():
                return
            traces = self._take()
            body = _otlp_body(traces)
            try:
                status, _, _ = _request(self.port, "POST", "/v1/traces", body, PROTOBUF)
            except OSError:  # killed or restarting: nothing of this request was acknowledged
                with self._lock:
                    self.refused += 1
                time.sleep(0.02)
                continue
            with self._lock:
                if status == 200:
                    self.acknowledged.update(traces)
                else:
                    self.refused += 1

    def wait_for_acknowledged(self, count: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.02)


def _otlp_body(traces: list[int]) -> bytes:
    spans = []
    for n in traces:
        spans.append({"trace": n, "span": 1, "name": "agent"})
        spans += [{"trace": n, "span": s, "parent": 1} for s in range(2, SPANS_PER_TRACE + 1)]
    return otlp_request(spans).SerializeToString()


def _stored_span_counts(store_uri: str) -> dict[int, int]:
    """Spans per trace (by the OTLP trace number) in the store, read directly."""
    url = store_uri.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT trace_id, count(*) FROM spans GROUP BY trace_id"))
            return {int(trace_id[3:], 16): count for trace_id, count in rows}
    finally:
        engine.dispose()


def _assert_all_stored(acknowledged: set[int], stored: dict[int, int], what: str) -> None:
    missing = sorted(n for n in acknowledged if stored.get(n, 0) < SPANS_PER_TRACE)
    assert acknowledged, f"{what}: no request was acknowledged before the fault"
    assert not missing, (
        f"{what}: {len(missing)} of {len(acknowledged)} acknowledged traces are missing or "
        f"incomplete after the restart (found {len(acknowledged) - len(missing)}); first: "
        f"{missing[:10]}"
    )


def _kill_rounds(server: ServerProcess, rounds: int, what: str) -> str:
    """``rounds`` times: load, SIGKILL mid-stream, restart; then every acknowledged trace
    must be stored whole. Returns the counts, for the failure message of callers."""
    acknowledged: set[int] = set()
    refused = 0
    server.start()
    try:
        for round_number in range(rounds):
            load = Load(server.port, first_trace=1 + round_number * 1_000_000)
            with load:
                load.wait_for_acknowledged(10 * TRACES_PER_REQUEST, 60)
                time.sleep(LOAD_SECONDS)
                server.kill()  # the clients' requests in flight now fail or were answered
            acknowledged |= load.acknowledged
            refused += load.refused
            server.start()  # on the same store: it must open cleanly
            stored = _stored_span_counts(server.store_uri)
            _assert_all_stored(acknowledged, stored, f"{what}, round {round_number + 1}")
        # And the restarted server serves them over the API.
        some = min(acknowledged)
        status, _, _ = _request(server.port, "GET", f"/api/v1/traces/tr-{some:032x}")
        assert status == 200
    finally:
        server.stop()
    return f"{len(acknowledged)} acknowledged, all found; {refused} requests not acknowledged"


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_of_a_sqlite_server_loses_nothing_acknowledged(
    tmp_path: Path, workers: int
) -> None:
    db = tmp_path / "faults.db"
    server = ServerProcess(tmp_path, f"sqlite:///{db}", workers)
    _kill_rounds(server, rounds=2, what=f"SQLite, {workers} worker(s)")
    with sqlite3.connect(db) as conn:  # what was written is intact
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.fixture
def pg_database() -> Iterator[str]:
    reason = pg_available()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the PostgreSQL tests, but: {reason}")
        pytest.skip(reason)
    name, uri = create_database()
    try:
        yield uri
    finally:
        drop_database(name)


@pytest.mark.postgres
def test_sigkill_of_a_postgres_server_with_two_workers_loses_nothing_acknowledged(
    tmp_path: Path, pg_database: str
) -> None:
    server = ServerProcess(tmp_path, pg_database, workers=2)
    _kill_rounds(server, rounds=2, what="PostgreSQL, 2 workers")


def _read_your_acknowledged_writes(server: ServerProcess, requests: int) -> None:
    for n in range(1, requests + 1):
        traces = [n * 100 + i for i in range(3)]
        status, text, _ = _request(server.port, "POST", "/v1/traces", _otlp_body(traces), PROTOBUF)
        assert status == 200, text
        for trace in traces:  # a new connection each time: any worker may answer
            status, text, _ = _request(server.port, "GET", f"/api/v1/traces/tr-{trace:032x}")
            assert status == 200, f"request {n}: trace {trace} acknowledged but not found: {text!r}"
        search = b'{"filter_string": "trace.name = \'agent\'", "max_results": 1000}'
        status, text, _ = _request(
            server.port,
            "POST",
            "/api/v1/traces/search",
            search,
            {"Content-Type": "application/json"},
        )
        assert status == 200 and text.count(b'"trace_id"') >= 3 * n, (
            f"request {n}: search found {text.count(b'trace_id')} of {3 * n} acknowledged"
        )


def test_acknowledged_traces_are_readable_at_once_on_every_sqlite_worker(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'ryw.db'}", workers=2)
    server.start()
    try:
        _read_your_acknowledged_writes(server, requests=30)
    finally:
        server.stop()


@pytest.mark.postgres
def test_acknowledged_traces_are_readable_at_once_on_every_postgres_worker(
    tmp_path: Path, pg_database: str
) -> None:
    server = ServerProcess(tmp_path, pg_database, workers=2)
    server.start()
    try:
        _read_your_acknowledged_writes(server, requests=30)
    finally:
        server.stop()


@pytest.fixture
def throwaway_cluster() -> Iterator[ThrowawayCluster]:
    reason = cluster_unavailable()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the PostgreSQL restart test, but: {reason}")
        pytest.skip(reason)
    cluster = ThrowawayCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.mark.postgres
def test_postgres_restarted_under_a_running_server(
    tmp_path: Path, throwaway_cluster: ThrowawayCluster
) -> None:
    """While PostgreSQL is down the server answers 503 with Retry-After (never 200, never
    500); once it is back the same server process writes again, and every trace it
    acknowledged is stored."""
    server = ServerProcess(tmp_path, throwaway_cluster.uri, workers=1)
    server.start()
    acknowledged: set[int] = set()
    next_trace = 1

    def send() -> tuple[int, dict[str, str]]:
        nonlocal next_trace
        traces = list(range(next_trace, next_trace + 5))
        next_trace += 5
        status, _, headers = _request(
            server.port, "POST", "/v1/traces", _otlp_body(traces), PROTOBUF
        )
        if status == 200:
            acknowledged.update(traces)
        return status, headers

    try:
        assert [send()[0] for _ in range(5)] == [200] * 5
        throwaway_cluster.stop("fast")
        down: list[int] = []
        for _ in range(10):
            status, headers = send()
            down.append(status)
            if status == 503:
                assert float(headers.get("retry-after", "0")) > 0
        assert down == [503] * 10, f"statuses while PostgreSQL was down: {down}"
        status, _, _ = _request(server.port, "GET", "/api/v1/traces?max_results=5")
        assert status == 503, f"a read while PostgreSQL was down answered {status}"

        throwaway_cluster.start()
        deadline = time.monotonic() + 60
        while send()[0] != 200:
            assert time.monotonic() < deadline, "the server did not recover within 60 s"
            time.sleep(0.2)
        assert [send()[0] for _ in range(5)] == [200] * 5
        assert server.process is not None and server.process.poll() is None  # never restarted
        stored = _stored_span_counts(throwaway_cluster.uri)
        _assert_all_stored(acknowledged, stored, "PostgreSQL restarted")
    finally:
        server.stop()
