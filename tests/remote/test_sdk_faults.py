"""The SDK against a tracking server that fails: down for a few seconds, hanging, answering
500, closing connections, answering as something else, refusing the token, and an SDK
process killed with a non-empty spool. In each case the traced program never raises,
never waits longer than the documented bound per traced call, and nothing buffered is
lost: everything arrives once a healthy server is there (counted in the server's store).

A ``FaultProxy`` sits between the SDK and a real ``threadline server`` on SQLite and
decides how each connection is treated; outages stop and restart a real server on the
same port and store.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import threadline
from tests.remote._fault_proxy import FaultProxy
from tests.remote.conftest import TOKEN, ServerProcess, server_on_sqlite

BOUND_S = 1.0  # THREADLINE_SYNC_EXPORT_TIMEOUT_SECONDS in these tests
SLACK_S = 5.0  # a behavioural bound on a loaded machine, not a performance threshold
TRACES = 8
SPANS_PER_TRACE = 3
CLI = [sys.executable, "-m", "threadline.cli"]


@threadline.trace
def step(i: int, j: int) -> int:
    return i * 10 + j


@threadline.trace
def job(i: int) -> list[int]:
    return [step(i, j) for j in range(SPANS_PER_TRACE - 1)]


def _run_jobs(first: int, count: int) -> list[float]:
    """Run traced jobs; each must return its value. The time each call took."""
    waits = []
    for i in range(first, first + count):
        started = time.monotonic()
        assert job(i) == [i * 10 + j for j in range(SPANS_PER_TRACE - 1)]
        waits.append(time.monotonic() - started)
    return waits


def _assert_bounded(waits: list[float]) -> None:
    slowest = max(waits)
    assert slowest <= BOUND_S + SLACK_S, (
        f"a traced call waited {slowest:.1f} s for tracing (bound {BOUND_S} s + {SLACK_S} s "
        f"slack); all waits: {[round(w, 2) for w in waits]}"
    )


def _stored(folder: Path, experiment_id: str) -> tuple[int, int]:
    """(traces, spans) of an experiment in the server's SQLite store."""
    with sqlite3.connect(folder / "server.db") as conn:
        traces = conn.execute(
            "select count(*) from traces where experiment_id = ? and state = 'OK'",
            (experiment_id,),
        ).fetchone()[0]
        spans = conn.execute(
            "select count(*) from spans join traces using (trace_id) where experiment_id = ?",
            (experiment_id,),
        ).fetchone()[0]
    return int(traces), int(spans)


def _assert_all_arrived(folder: Path, experiment_id: str, traces: int, report: Any) -> None:
    found = _stored(folder, experiment_id)
    expected = (traces, traces * SPANS_PER_TRACE)
    assert found == expected, (
        f"buffered {expected[0]} traces / {expected[1]} spans, the server has {found[0]} / "
        f"{found[1]}; report: {report}"
    )
    assert report.ok, report


@pytest.fixture(autouse=True)
def _bounded_export(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADLINE_SYNC_EXPORT_TIMEOUT_SECONDS", str(BOUND_S))


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(server.port)
    try:
        yield fault_proxy
    finally:
        fault_proxy.stop()


def _new_experiment(url: str) -> str:
    threadline.set_tracking_uri(url)
    return threadline.set_experiment(f"fault-{uuid.uuid4().hex[:10]}").experiment_id


# --- a server that hangs, answers 500, closes connections ---------------------------------
@pytest.mark.parametrize("async_logging", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("fault", ["hang", "500", "close"])
def test_a_failing_server_never_blocks_the_program_and_loses_nothing(
    server: ServerProcess, proxy: FaultProxy, fault: str, async_logging: bool
) -> None:
    experiment_id = _new_experiment(proxy.url)
    if async_logging:
        threadline.config.enable_async_logging()
    proxy.set_mode(fault)
    _assert_bounded(_run_jobs(0, TRACES))
    report = threadline.flush_trace_async_logging(timeout=0.5)  # still failing
    assert report.dropped_spans == 0 and report.exported_spans == 0, report
    assert proxy.requests > 0  # the fault was met

    proxy.set_mode("forward")
    report = threadline.flush_trace_async_logging(timeout=60)
    _assert_all_arrived(server.folder, experiment_id, TRACES, report)


# --- answers that are not a threadline server's -------------------------------------------
@pytest.mark.parametrize(
    ("answer", "cause"),
    [("html", "not JSON"), ("404", "answered 404"), ("redirect", "redirects")],
)
def test_answers_from_something_else_keep_the_spans_and_say_why_once(
    server: ServerProcess,
    proxy: FaultProxy,
    answer: str,
    cause: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    experiment_id = _new_experiment(proxy.url)
    proxy.set_mode(answer)
    with caplog.at_level(logging.WARNING, logger="threadline"):
        _assert_bounded(_run_jobs(0, TRACES))
        report = threadline.flush_trace_async_logging(timeout=0.5)
    assert report.dropped_spans == 0 and report.exported_spans == 0, report
    lines = [r.getMessage() for r in caplog.records if "could not write traces" in r.getMessage()]
    assert len(lines) == 1 and cause in lines[0] and proxy.url in lines[0], lines

    proxy.set_mode("forward")
    report = threadline.flush_trace_async_logging(timeout=60)
    _assert_all_arrived(server.folder, experiment_id, TRACES, report)


# --- a server down for a few seconds, then back on the same port and store ----------------
@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = server_on_sqlite(tmp_path_factory.mktemp("restartable"))
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize("async_logging", [False, True], ids=["sync", "async"])
def test_a_server_down_for_a_few_seconds_gets_everything_once_back(
    restartable: ServerProcess, async_logging: bool
) -> None:
    if not restartable.running:
        restartable.start()
    experiment_id = _new_experiment(restartable.url)
    if async_logging:
        threadline.config.enable_async_logging()
    waits = _run_jobs(0, 4)

    def outage() -> None:
        restartable.stop()
        time.sleep(2.0)
        restartable.start()

    restarter = threading.Thread(target=outage)
    restarter.start()
    made = 4
    while restarter.is_alive() and made < 400:  # trace all through the outage
        waits += _run_jobs(made, 1)
        made += 1
        time.sleep(0.02)
    restarter.join(60)
    assert restartable.running
    _assert_bounded(waits)
    report = threadline.flush_trace_async_logging(timeout=60)
    _assert_all_arrived(restartable.folder, experiment_id, made, report)
    assert report.destinations["store"].retried > 0, report  # the outage was met


# --- a wrong token ---------------------------------------------------------------------------
def test_a_wrong_token_keeps_the_spans_says_so_once_and_the_right_one_delivers(
    auth_server: ServerProcess, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("THREADLINE_TRACKING_TOKEN", TOKEN)
    experiment_id = _new_experiment(auth_server.url)
    monkeypatch.setenv("THREADLINE_TRACKING_TOKEN", "wrong")
    with caplog.at_level(logging.WARNING, logger="threadline"):
        _assert_bounded(_run_jobs(0, TRACES))
        report = threadline.flush_trace_async_logging(timeout=0.5)
    assert report.dropped_spans == 0 and report.exported_spans == 0, report
    lines = [
        r.getMessage() for r in caplog.records if "THREADLINE_TRACKING_TOKEN" in r.getMessage()
    ]
    assert len(lines) == 1 and "(401)" in lines[0] and "rejected the token" in lines[0], lines

    monkeypatch.setenv("THREADLINE_TRACKING_TOKEN", TOKEN)
    report = threadline.flush_trace_async_logging(timeout=60)
    _assert_all_arrived(auth_server.folder, experiment_id, TRACES, report)


_EXITING = textwrap.dedent(
    """
    import threadline

    @threadline.trace
    def step(i, j):
        return i * 10 + j

    @threadline.trace
    def job(i):
        return [step(i, j) for j in range(2)]

    for i in range(int(__import__("sys").argv[1])):
        job(i)
    """
)


def _sdk_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THREADLINE_", "OTEL_"))}
    return {**env, "THREADLINE_SPOOL_DIR": str(tmp_path / "spool"), **extra}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def _status(env: dict[str, str]) -> list[dict[str, Any]]:
    status = _cli("spool", "status", "--output", "json", env=env)
    assert status.returncode == 0, status.stderr
    return list(json.loads(status.stdout)["destinations"])


def test_a_wrong_token_at_exit_spools_and_the_printed_command_replays(
    auth_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THREADLINE_TRACKING_TOKEN", TOKEN)
    experiment_id = _new_experiment(auth_server.url)
    env = _sdk_env(
        tmp_path,
        THREADLINE_TRACKING_URI=auth_server.url,
        THREADLINE_EXPERIMENT_ID=experiment_id,
        THREADLINE_TRACKING_TOKEN="wrong",
        THREADLINE_EXIT_FLUSH_TIMEOUT="1",
    )
    run = subprocess.run(
        [sys.executable, "-c", _EXITING, str(TRACES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    notices = [line for line in run.stderr.splitlines() if "threadline spool replay" in line]
    spans = TRACES * SPANS_PER_TRACE
    assert len(notices) == 1 and notices[0].startswith(f"threadline: {spans} spans"), run.stderr
    assert str(tmp_path / "spool") in notices[0]
    command = shlex.split(notices[0].split("replay them with: ", 1)[1])
    assert command[:3] == ["threadline", "spool", "replay"]
    assert "--tracking-uri" in command and auth_server.url in command
    causes = [line for line in run.stderr.splitlines() if "THREADLINE_TRACKING_TOKEN" in line]
    assert len(causes) == 1 and "rejected the token" in causes[0], run.stderr
    assert [(d["target"], d["spans"]) for d in _status(env)] == [(auth_server.url, spans)]
    assert _stored(auth_server.folder, experiment_id) == (0, 0)

    env["THREADLINE_TRACKING_TOKEN"] = TOKEN  # fixed: the printed command delivers
    replay = _cli(*command[1:], env=env)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert f"({spans} spans)" in replay.stdout
    assert _stored(auth_server.folder, experiment_id) == (TRACES, spans)
    assert _status(env) == []


# --- an SDK process killed with a non-empty spool ------------------------------------------
_KILLED = textwrap.dedent(
    """
    import sys, time, threadline
    threadline.config.enable_async_logging()

    @threadline.trace
    def step(i, j):
        return i * 10 + j

    @threadline.trace
    def job(i):
        return [step(i, j) for j in range(2)]

    count = int(sys.argv[1])
    for i in range(count):
        job(i)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the retry timeout passes: batches go to the spool
        report = threadline.flush_trace_async_logging(timeout=0.2)
        if report.spooled_spans == count * 3:
            break
    print(report.spooled_spans, flush=True)
    time.sleep(120)  # killed here with SIGKILL: no exit handler runs
    """
)


def test_an_sdk_killed_with_a_non_empty_spool_is_replayed_by_the_cli(tmp_path: Path) -> None:
    server = server_on_sqlite(tmp_path).start()
    try:
        experiment_id = _new_experiment(server.url)
        server.stop()  # down while the SDK traces
        env = _sdk_env(
            tmp_path,
            THREADLINE_TRACKING_URI=server.url,
            THREADLINE_EXPERIMENT_ID=experiment_id,
            THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT="0.05",
        )
        traces = 20
        with subprocess.Popen(
            [sys.executable, "-c", _KILLED, str(traces)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        ) as sdk:
            assert sdk.stdout is not None
            spooled = sdk.stdout.readline().strip()
            sdk.send_signal(signal.SIGKILL)
            sdk.wait(30)
        spans = traces * SPANS_PER_TRACE
        assert spooled == str(spans)
        assert [(d["target"], d["spans"]) for d in _status(env)] == [(server.url, spans)]

        down = _cli("spool", "replay", "--tracking-uri", server.url, env=env)
        assert down.returncode == 1 and "stay in the spool" in down.stdout, down.stdout
        assert [d["spans"] for d in _status(env)] == [spans]  # nothing lost by a failed replay

        server.start()
        replay = _cli("spool", "replay", "--tracking-uri", server.url, env=env)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert _stored(server.folder, experiment_id) == (traces, spans)
        assert _status(env) == []
    finally:
        server.stop()
