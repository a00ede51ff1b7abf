"""``threadline server`` as a real process on 127.0.0.1: startup line, health, a real
OpenTelemetry SDK exporting to it, clean SIGTERM shutdown, and ``--workers 4`` on PostgreSQL."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import otlp_request

STARTUP_TIMEOUT = 30.0
LINE = re.compile(r"threadline server listening on (http://\S+)")


@contextmanager
def running_server(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``threadline server --port 0 ARGS``; yields the process and its URL."""
    stderr = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "threadline.cli", "server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=tmp_path,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True)
    reader.start()
    try:
        url = _startup_url(process, lines, tmp_path)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        reader.join(10)
        stdout.close()
        stderr.close()


def _startup_url(process: subprocess.Popen[str], lines: queue.Queue[str], tmp_path: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        match = LINE.search(line)
        if match:
            return match.group(1)
    log = (tmp_path / "server.log").read_text()
    raise AssertionError(f"no startup line (exit code {process.poll()}); log:\n{log}")


def _call(url: str, method: str = "GET", body: Any = None, headers: dict | None = None) -> Any:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if body is not None and not isinstance(body, bytes):
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            assert _call(f"{url}/health") == {"status": "ok"}
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_for_log(log: Path, line: str, *, count: int) -> None:
    """Until ``line`` appears ``count`` times in ``log`` (every worker has started)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while log.read_text().count(line) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{line!r} not {count} times in the log:\n{log.read_text()}")
        time.sleep(0.1)


def _search(url: str, **body: Any) -> list[dict]:
    return list(_call(f"{url}/api/v1/traces/search", "POST", body)["traces"])


def test_serves_an_opentelemetry_sdk_and_drains_on_sigterm(tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    db = tmp_path / "server.db"
    with running_server(tmp_path, "--backend-store-uri", f"sqlite:///{db}") as (process, url):
        assert url.startswith("http://127.0.0.1:")
        _wait_healthy(url)
        assert _call(f"{url}/ready") == {"status": "ready"}

        exporter = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces",
            compression=Compression.Gzip,
            headers={"x-threadline-experiment-id": "12"},
        )
        provider = TracerProvider(resource=Resource.create({"service.name": "otel-app"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("agent") as root:
            root.set_attribute("openinference.span.kind", "AGENT")
            root.set_attribute("input.value", "What is the weather?")
            with tracer.start_as_current_span("chat gpt-4o") as llm:
                llm.set_attribute("gen_ai.operation.name", "chat")
                llm.set_attribute("gen_ai.request.model", "gpt-4o")
                llm.set_attribute("gen_ai.usage.input_tokens", 11)
                llm.set_attribute("gen_ai.usage.output_tokens", 7)
            root.set_attribute("output.value", "Sunny")
        provider.shutdown()

        (trace,) = _search(url, experiment_ids=["12"])
        info = trace["info"]
        assert (info["name"], info["state"]) == ("agent", "OK")
        assert (info["request_preview"], info["response_preview"]) == (
            "What is the weather?",
            "Sunny",
        )
        assert json.loads(info["trace_metadata"]["token_usage"])["total_tokens"] == 18
        spans = {s["name"]: s for s in trace["data"]["spans"]}
        assert spans["agent"]["span_type"] == "AGENT"
        assert spans["chat gpt-4o"]["span_type"] == "CHAT_MODEL"
        assert spans["chat gpt-4o"]["attributes"]["threadline.model"] == "gpt-4o"

        # Many batches answered once queued (the lossy mode, asked for by name), then
        # SIGTERM at once: the shutdown drains the queue, so all of them are stored.
        for n in range(1, 51):
            body = otlp_request([{"trace": n, "span": 1}, {"trace": n, "span": 2, "parent": 1}])
            _call(
                f"{url}/v1/traces",
                "POST",
                body.SerializeToString(),
                {"Content-Type": "application/x-protobuf", "x-threadline-ack": "queued"},
            )
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0

    from threadline.store.sql import SqlStore

    store = SqlStore(f"sqlite:///{db}")
    try:
        traces, _ = store.search_traces(experiment_ids=["0"], max_results=1000)
        assert len(traces) == 50
        assert all(len(t.data.spans) == 2 for t in traces)
    finally:
        store.close()


def test_threadline_otlp_export_round_trips_through_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's own OTLP exporter → server → REST API gives back the trace the SDK stored
    locally, field for field."""
    import threadline
    from threadline.entities.trace import Trace

    db = f"sqlite:///{tmp_path / 'server.db'}"
    with running_server(tmp_path, "--backend-store-uri", db) as (_process, url):
        _wait_healthy(url)
        monkeypatch.setenv("THREADLINE_TRACKING_URI", f"sqlite:///{tmp_path / 'local.db'}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{url}/v1/traces")
        experiment = threadline.set_experiment("round-trip")

        @threadline.trace(span_type="LLM", attributes={"threadline.model": "gpt-4o"})
        def answer(question: str) -> dict:
            span = threadline.get_current_active_span()
            span.set_attribute("threadline.token_usage", {"input_tokens": 5, "output_tokens": 2})
            return {"text": question.upper()}

        @threadline.trace(name="agent", span_type="AGENT")
        def agent(question: str, retries: int = 1) -> str:
            threadline.update_current_trace(tags={"env": "test"}, metadata={"user": "ann"})
            with threadline.start_span("lookup", span_type="TOOL") as tool:
                tool.set_inputs({"q": question})
                tool.set_outputs(["a", "b"])
            try:
                with threadline.start_span("flaky") as flaky:
                    flaky.set_attribute("attempt", 1)
                    raise ValueError("boom")
            except ValueError:
                pass
            return answer(question)["text"]

        agent("hello")
        trace_id = threadline.get_last_active_trace_id()
        threadline.flush_trace_async_logging()
        local = threadline.get_trace(trace_id)
        remote = Trace.from_dict(_call(f"{url}/api/v1/traces/{trace_id}")["trace"])

    assert local is not None
    assert remote.info.experiment_id == experiment.experiment_id
    assert remote.info.to_dict() == local.info.to_dict()
    assert [s.to_dict() for s in remote.data.spans] == [s.to_dict() for s in local.data.spans]
    assert {s.name for s in remote.data.spans} == {"agent", "lookup", "flaky", "answer"}


def test_auth_tokens_and_bad_options(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'auth.db'}"
    token = "s3cret-0123456789abcdef"
    with running_server(tmp_path, "--backend-store-uri", db, "--auth-token", token) as (
        process,
        url,
    ):
        _wait_healthy(url)
        with pytest.raises(urllib.error.HTTPError) as denied:
            _call(f"{url}/api/v1/experiments")
        assert denied.value.code == 401
        denied.value.close()
        allowed = _call(f"{url}/api/v1/experiments", headers={"Authorization": f"Bearer {token}"})
        assert [e["name"] for e in allowed["experiments"]] == ["Default"]
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    bad = subprocess.run(
        [sys.executable, "-m", "threadline.cli", "server", "--backend-store-uri", "mysql://x/y"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("threadline: error: Unsupported store URI")


@pytest.mark.postgres
def test_four_workers_share_postgres(tmp_path: Path) -> None:
    """``--workers 4`` on PostgreSQL (as the issue deploys it): the schema is migrated once,
    every span is stored once, even when batches are sent again."""
    from tests._pg import create_database, drop_database, pg_available

    reason = pg_available()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    name, uri = create_database()
    try:
        with running_server(tmp_path, "--workers", "4", "--backend-store-uri", uri) as (
            process,
            url,
        ):
            _wait_healthy(url)
            _wait_for_log(tmp_path / "server.log", "Application startup complete.", count=4)

            def send(n: int) -> None:
                body = otlp_request([{"trace": n, "span": 1}, {"trace": n, "span": 2, "parent": 1}])
                headers = {"Content-Type": "application/x-protobuf"}
                _call(f"{url}/v1/traces", "POST", body.SerializeToString(), headers)

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(send, range(1, 101)))
                list(pool.map(send, range(1, 21)))  # sent again: idempotent, no duplicates
            traces = _search(url, max_results=1000)
            assert len(traces) == 100
            assert sorted(len(t["data"]["spans"]) for t in traces) == [2] * 100
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
        log = (tmp_path / "server.log").read_text()
        assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == 4
        import psycopg

        from threadline.store.migrations import VERSION_TABLE

        with psycopg.connect(uri) as conn:  # the workers wrote to PostgreSQL, each span once
            assert conn.execute(f"SELECT count(*) FROM {VERSION_TABLE}").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM spans").fetchone() == (200,)
            assert conn.execute("SELECT count(*) FROM traces").fetchone() == (100,)
        assert not (tmp_path / "threadline.db").exists()
    finally:
        drop_database(name)
