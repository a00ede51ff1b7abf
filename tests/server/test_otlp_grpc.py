"""OTLP/gRPC ingest on a real ``threadline server`` process (127.0.0.1), sent to by the real
OpenTelemetry gRPC exporter: auth, experiment metadata, the same mapping as OTLP/HTTP,
OK only once committed, and the gRPC status of each refusal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from tests._pg_cluster import ThrowawayCluster, cluster_unavailable
from tests.server.conftest import free_port, otlp_request

WRITE_TOKEN = "grpc-write-token-0123456789"
READ_TOKEN = "grpc-read-token-0123456789ab"
STARTUP_TIMEOUT = 60.0
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class Server:
    """``threadline server`` with OTLP/gRPC on a free port, in its own process group."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.log = tmp_path / "server.log"
        command = [
            sys.executable, "-m", "threadline.cli", "server",
            "--port", str(self.http_port), "--otlp-grpc-port", str(self.grpc_port), *args,
        ]  # fmt: skip
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=log,
                cwd=tmp_path,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "Application startup complete." not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            headers={"Authorization": f"Bearer {WRITE_TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{WRITE_TOKEN} write *\n{READ_TOKEN} read *\n")
    running = Server(tmp_path, "--auth-tokens-file", str(tokens))
    yield running
    running.stop()


def _finished_spans() -> list[Any]:
    """Spans of a real SDK: an agent run with a chat-model call under it."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.app")
    with (
        tracer.start_as_current_span("agent", attributes={"gen_ai.operation.name": "invoke_agent"}),
        tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 5,
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
                ),
            },
        ),
    ):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _exporter(server: Server, gzip: bool = False, **headers: str) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=f"127.0.0.1:{server.grpc_port}",
        insecure=True,
        headers=tuple(headers.items()),
        timeout=30,
        compression=grpc.Compression.Gzip if gzip else None,
    )


def test_the_real_grpc_exporter_stores_spans_committed_on_ok(server: Server) -> None:
    spans = _finished_spans()
    exporter = _exporter(
        server, authorization=f"Bearer {WRITE_TOKEN}", **{"x-threadline-experiment-id": "0"}
    )
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    trace_id = "tr-" + format(spans[0].context.trace_id, "032x")
    trace = server.get(f"/api/v1/traces/{trace_id}")["trace"]  # readable at once: committed
    by_name = {s["name"]: s for s in trace["data"]["spans"]}
    assert by_name["agent"]["span_type"] == "AGENT"
    chat = by_name["chat gpt-4o-mini"]
    assert chat["span_type"] == "CHAT_MODEL"
    assert chat["parent_id"] == by_name["agent"]["span_id"]
    attributes = chat["attributes"]
    assert attributes["threadline.model"] == "gpt-4o-mini"
    assert attributes["threadline.token_usage"]["total_tokens"] == 17
    assert attributes["threadline.chat.messages"] == [{"role": "user", "content": "hi"}]
    assert "total_cost" in attributes["threadline.llm.cost"]
    assert trace["info"]["experiment_id"] == "0"


def _raw_call(server: Server, body: bytes, metadata: tuple[tuple[str, str], ...]) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = channel.unary_unary(EXPORT)
        return call.with_call(body, metadata=metadata, timeout=30)


def _status(server: Server, body: bytes, metadata: tuple[tuple[str, str], ...]) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        _raw_call(server, body, metadata)
    return caught.value


def test_refusals_have_their_grpc_status(server: Server) -> None:
    body = otlp_request([{"trace": 41, "span": 1}]).SerializeToString()
    write = (("authorization", f"Bearer {WRITE_TOKEN}"),)
    assert _status(server, body, ()).code() is grpc.StatusCode.UNAUTHENTICATED
    wrong = (("authorization", "Bearer not-a-known-token-at-all"),)
    assert _status(server, body, wrong).code() is grpc.StatusCode.UNAUTHENTICATED
    read_only = (("authorization", f"Bearer {READ_TOKEN}"),)
    assert _status(server, body, read_only).code() is grpc.StatusCode.PERMISSION_DENIED
    garbage = _status(server, b"\xff\xff\xff not protobuf", write)
    assert garbage.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "protobuf" in garbage.details()
    bad_experiment = (*write, ("x-threadline-experiment-id", "x" * 300))
    assert _status(server, body, bad_experiment).code() is grpc.StatusCode.INVALID_ARGUMENT
    bad_ack = (*write, ("x-threadline-ack", "maybe"))
    assert _status(server, body, bad_ack).code() is grpc.StatusCode.INVALID_ARGUMENT
    zero_ids = otlp_request([{"trace": 42, "span": 1}])
    zero_ids.resource_spans[0].scope_spans[0].spans[0].trace_id = bytes(16)
    rejected = _status(server, zero_ids.SerializeToString(), write)
    assert rejected.code() is grpc.StatusCode.INVALID_ARGUMENT
    # nothing of the refused requests was stored; an accepted one answers OK, committed
    path = "/api/v1/traces/tr-" + format(41, "032x")
    with pytest.raises(urllib.error.HTTPError) as missing:
        server.get(path)
    assert missing.value.code == 404
    missing.value.close()
    answer, call = _raw_call(server, body, (*write, ("x-threadline-experiment-id", "0")))
    assert call.code() is grpc.StatusCode.OK and answer == b""
    stored = server.get(path)["trace"]
    assert [s["name"] for s in stored["data"]["spans"]] == ["span-1"]
    queued = otlp_request([{"trace": 43, "span": 1}]).SerializeToString()
    answer, call = _raw_call(server, queued, (*write, ("x-threadline-ack", "queued")))
    assert call.code() is grpc.StatusCode.OK  # answered once queued (the lossy fast path)


@pytest.fixture
def throwaway_cluster() -> Iterator[ThrowawayCluster]:
    reason = cluster_unavailable()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the store-down gRPC test, but: {reason}")
        pytest.skip(reason)
    cluster = ThrowawayCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.mark.postgres
def test_store_down_is_unavailable_with_retry_info(
    tmp_path: Path, throwaway_cluster: ThrowawayCluster
) -> None:
    """While the database is down the answer is UNAVAILABLE with RetryInfo (the real exporter
    retries it), never OK; once it is back the same export succeeds."""
    from google.rpc.error_details_pb2 import RetryInfo

    running = Server(tmp_path, "--backend-store-uri", throwaway_cluster.uri)
    try:
        body = otlp_request([{"trace": 51, "span": 1}]).SerializeToString()
        _answer, call = _raw_call(running, body, ())
        assert call.code() is grpc.StatusCode.OK
        throwaway_cluster.stop("fast")
        codes = []
        for n in range(6):
            body = otlp_request([{"trace": 60 + n, "span": 1}]).SerializeToString()
            error = _status(running, body, ())
            codes.append(error.code())
            trailing = dict(error.trailing_metadata() or ())
            info = RetryInfo.FromString(trailing["google.rpc.retryinfo-bin"])
            assert info.retry_delay.seconds >= 1
        assert codes == [grpc.StatusCode.UNAVAILABLE] * 6
        throwaway_cluster.start()
        spans = _finished_spans()
        exporter = _exporter(running)
        try:
            deadline = time.monotonic() + 60
            while exporter.export(spans) is not SpanExportResult.SUCCESS:
                assert time.monotonic() < deadline, "no recovery within 60 s"
        finally:
            exporter.shutdown()
        assert running.process.poll() is None
    finally:
        running.stop()


def test_workers_share_the_grpc_port(tmp_path: Path) -> None:
    """With ``--workers 2`` each worker serves the gRPC port (SO_REUSEPORT); every export
    answered OK is stored, whichever worker took it."""
    running = Server(tmp_path, "--workers", "2")
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while running.log.read_text().count("Application startup complete.") < 2:
            assert time.monotonic() < deadline, running.log.read_text()[-4000:]
            time.sleep(0.05)
        assert running.log.read_text().count("OTLP/gRPC on 127.0.0.1:") == 2
        trace_ids = []
        for _ in range(8):
            spans = _finished_spans()
            # a new connection each time (any worker may answer), gzip-compressed
            exporter = _exporter(running, gzip=True)
            try:
                assert exporter.export(spans) is SpanExportResult.SUCCESS
            finally:
                exporter.shutdown()
            trace_ids.append("tr-" + format(spans[0].context.trace_id, "032x"))
        for trace_id in trace_ids:
            stored = running.get(f"/api/v1/traces/{trace_id}")["trace"]
            assert len(stored["data"]["spans"]) == 2
    finally:
        running.stop()


def test_port_zero_needs_one_worker(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "threadline.cli", "server", "--port", "0", "--workers", "2",
         "--otlp-grpc-port", "0"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--otlp-grpc-port 0" in result.stderr and "--workers 1" in result.stderr
