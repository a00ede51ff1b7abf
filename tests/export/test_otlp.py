"""OTLP/HTTP export against a real local receiver: rows made by the SDK's pipeline are sent
by ``OtlpDestination`` and the receiver decodes what arrived (protobuf after gunzip, JSON)."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import threadline
from threadline.entities.span import SpanEvent, SpanType
from threadline.entities.trace_location import ExperimentLocation
from threadline.errors import InvalidArgumentError
from threadline.export._otlp import (
    OtlpDestination,
    OtlpExportError,
    encode_json,
    encode_protobuf,
    otlp_destination_for_target,
    otlp_destination_from_settings,
    resource_groups,
)
from threadline.store.base import SpanRow, TraceRow
from threadline.tracing._runtime import get_pipeline

OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
)


@pytest.fixture(autouse=True)
def _clean_otel_env(monkeypatch):
    """No OTEL_* settings leak in from the machine; local requests never use a proxy."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


# --- a local OTLP receiver ---------------------------------------------------------------


@dataclass
class Received:
    """One request as the receiver saw it (header names lower-cased)."""

    path: str
    headers: dict[str, str]
    body: bytes

    def proto(self) -> ExportTraceServiceRequest:
        body = self.body
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        return request

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers as told."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            receiver.requests.append(Received(self.path, headers, body))
            self.send_response(receiver.status)
            for key, value in receiver.response_headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(receiver.response_body)))
            self.end_headers()
            self.wfile.write(receiver.response_body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- rows made by the real pipeline ------------------------------------------------------


class Recorder:
    """A Destination that keeps what the pipeline writes."""

    kind = "recorder"

    def target(self) -> str:
        return "memory"

    def __init__(self) -> None:
        self.traces: list[TraceRow] = []
        self.spans: list[SpanRow] = []

    def write(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        self.traces.extend(traces)
        self.spans.extend(spans)


@dataclass
class AgentRows:
    traces: list[TraceRow]
    spans: list[SpanRow]

    def span(self, name: str) -> SpanRow:
        return next(s for s in self.spans if s.name == name)

    @property
    def trace(self) -> TraceRow:
        (finished,) = [t for t in self.traces if t.state != "IN_PROGRESS"]
        return finished


def _run_agent(experiment_id: str = "1234") -> None:
    @threadline.trace(span_type=SpanType.TOOL)
    def lookup_weather(city: str) -> str:
        raise LookupError(f"no weather for {city}")

    @threadline.trace(span_type=SpanType.CHAT_MODEL, attributes={"threadline.model": "gpt-test"})
    def chat(messages: list[dict[str, str]]) -> dict[str, str]:
        span = threadline.get_current_active_span()
        assert span is not None
        span.set_attribute(
            "threadline.token_usage", {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}
        )
        span.add_event(SpanEvent("first_token", attributes={"index": 0, "ms": 41.5}))
        return {"role": "assistant", "content": "It is sunny."}

    @threadline.trace(
        span_type=SpanType.AGENT,
        attributes={
            "retries": 2,
            "temperature": 0.5,
            "debug": True,
            "stop": ["\n", "END"],
            "config": {"k": 1},
            "huge": 2**70,
        },
        trace_destination=ExperimentLocation(experiment_id),
    )
    def weather_agent(question: str) -> dict[str, str]:
        threadline.update_current_trace(
            tags={"team": "search"}, metadata={"session_id": "s-1", "user": "u-7"}
        )
        try:
            lookup_weather("Atlantis")
        except LookupError:
            pass
        return chat([{"role": "user", "content": question}])

    weather_agent("Weather in Atlantis?")


def _record(run: Any = _run_agent) -> AgentRows:
    recorder = Recorder()
    get_pipeline().set_destination(recorder)
    run()
    get_pipeline().flush()
    return AgentRows(recorder.traces, recorder.spans)


@pytest.fixture
def rows() -> AgentRows:
    return _record()


def _send(rows: AgentRows) -> OtlpDestination:
    destination = otlp_destination_from_settings()
    assert destination is not None
    destination.write(rows.traces, rows.spans)
    return destination


@pytest.fixture
def exported(rows, receiver, monkeypatch) -> Received:
    """The agent's rows sent as protobuf to the receiver through the settings."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.url}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20x,x-tenant=t1")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "weather-service")
    _send(rows)
    (request,) = receiver.requests
    return request


def _spans(request: ExportTraceServiceRequest) -> dict[str, Any]:
    return {
        span.name: span
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }


def _attrs(key_values: Any) -> dict[str, Any]:
    """Protobuf KeyValues as Python values (arrays as lists)."""
    return {kv.key: _any(kv.value) for kv in key_values}


def _any(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any(v) for v in value.array_value.values]
    return getattr(value, kind)


# --- protobuf, end to end ----------------------------------------------------------------


def test_request_is_gzipped_protobuf_posted_to_the_traces_endpoint(exported):
    assert exported.path == "/v1/traces"
    assert exported.headers["content-type"] == "application/x-protobuf"
    assert exported.headers["content-encoding"] == "gzip"
    assert exported.body[:2] == b"\x1f\x8b"
    assert len(_spans(exported.proto())) == 3


def test_headers_setting_is_sent(exported):
    assert exported.headers["authorization"] == "Bearer x"
    assert exported.headers["x-tenant"] == "t1"
    assert exported.headers["user-agent"] == f"threadline/{threadline.__version__}"


def test_ids_parent_links_names_and_times(exported, rows):
    spans = _spans(exported.proto())
    assert set(spans) == {"weather_agent", "lookup_weather", "chat"}
    for name, span in spans.items():
        row = rows.span(name)
        assert span.trace_id == bytes.fromhex(row.trace_id.removeprefix("tr-"))
        assert len(span.trace_id) == 16
        assert span.span_id == bytes.fromhex(row.span_id)
        assert len(span.span_id) == 8
        assert span.start_time_unix_nano == row.start_time_ns
        assert span.end_time_unix_nano == row.end_time_ns
        assert span.start_time_unix_nano <= span.end_time_unix_nano
        assert span.kind == 1  # SPAN_KIND_INTERNAL
    root = spans["weather_agent"]
    assert root.parent_span_id == b""
    assert spans["lookup_weather"].parent_span_id == root.span_id
    assert spans["chat"].parent_span_id == root.span_id


def test_status_and_events(exported):
    spans = _spans(exported.proto())
    tool = spans["lookup_weather"]
    assert tool.status.code == 2  # STATUS_CODE_ERROR
    assert "no weather for Atlantis" in tool.status.message
    (exception,) = tool.events
    assert exception.name == "exception"
    # The SDK stamps the exception event just after the span's end time (end_span reads
    # the clock before record_exception), so only closeness is asserted here.
    assert tool.start_time_unix_nano <= exception.time_unix_nano
    assert exception.time_unix_nano - tool.end_time_unix_nano < 1_000_000_000
    details = _attrs(exception.attributes)
    assert details["exception.type"] == "LookupError"
    assert details["exception.message"] == "no weather for Atlantis"
    assert "Traceback" in details["exception.stacktrace"]
    assert spans["chat"].status.code == 1  # STATUS_CODE_OK
    (first_token,) = spans["chat"].events
    assert first_token.name == "first_token"
    assert _attrs(first_token.attributes) == {"index": 0, "ms": 41.5}


def test_span_type_openinference_and_genai_attributes(exported, rows):
    spans = _spans(exported.proto())
    chat = _attrs(spans["chat"].attributes)
    assert chat["threadline.span_type"] == "CHAT_MODEL"
    assert chat["openinference.span.kind"] == "LLM"
    assert chat["gen_ai.operation.name"] == "chat"
    assert chat["gen_ai.request.model"] == "gpt-test"
    assert chat["gen_ai.usage.input_tokens"] == 12
    assert chat["gen_ai.usage.output_tokens"] == 5
    assert chat["llm.token_count.total"] == 17
    assert chat["threadline.inputs"] == rows.span("chat").inputs_json
    assert json.loads(chat["input.value"]) == {
        "messages": [{"role": "user", "content": "Weather in Atlantis?"}]
    }
    assert json.loads(chat["output.value"]) == {"role": "assistant", "content": "It is sunny."}
    assert chat["input.mime_type"] == chat["output.mime_type"] == "application/json"
    assert json.loads(chat["threadline.token_usage"])["total_tokens"] == 17

    tool = _attrs(spans["lookup_weather"].attributes)
    assert tool["openinference.span.kind"] == "TOOL"
    assert tool["threadline.outputs"] == "null"
    assert "output.value" not in tool
    assert "gen_ai.operation.name" not in tool
    assert _attrs(spans["weather_agent"].attributes)["openinference.span.kind"] == "AGENT"


def test_own_attributes_keep_their_types(exported):
    root = _attrs(_spans(exported.proto())["weather_agent"].attributes)
    assert root["retries"] == 2
    assert root["temperature"] == 0.5
    assert root["debug"] is True
    assert root["stop"] == ["\n", "END"]
    assert root["config"] == '{"k":1}'  # not a scalar or list of scalars: JSON text
    assert root["huge"] == str(2**70)  # does not fit OTLP's int64


def test_root_span_carries_trace_data(exported, rows):
    spans = _spans(exported.proto())
    root = _attrs(spans["weather_agent"].attributes)
    assert json.loads(root["threadline.trace.tags"]) == rows.trace.tags
    assert json.loads(root["threadline.trace.tags"])["team"] == "search"
    assert json.loads(root["threadline.trace.metadata"])["session_id"] == "s-1"
    assert root["threadline.experiment_id"] == "1234"
    assert root["session.id"] == "s-1"
    assert root["user.id"] == "u-7"
    assert "threadline.trace.tags" not in _attrs(spans["chat"].attributes)


def test_resource_and_scope(exported):
    (resource_spans,) = exported.proto().resource_spans
    assert _attrs(resource_spans.resource.attributes) == {
        "service.name": "weather-service",
        "telemetry.sdk.name": "threadline",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": threadline.__version__,
        "threadline.experiment_id": "1234",
    }
    (scope_spans,) = resource_spans.scope_spans
    assert scope_spans.scope.name == "threadline"
    assert scope_spans.scope.version == threadline.__version__


def test_service_name_defaults_to_threadline(rows, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.url}/v1/traces")
    _send(rows)
    attributes = _attrs(receiver.requests[0].proto().resource_spans[0].resource.attributes)
    assert attributes["service.name"] == "threadline"


def test_spool_replay_rebuilds_from_the_target_with_current_settings(rows, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20x")
    original = otlp_destination_from_settings()
    assert original is not None
    assert original.kind == "otlp"
    assert original.target() == f"{receiver.url}/v1/traces"
    replay = otlp_destination_for_target(original.target())
    replay.write(rows.traces, rows.spans)
    (request,) = receiver.requests
    assert request.path == "/v1/traces"
    assert request.headers["authorization"] == "Bearer x"
    assert len(_spans(request.proto())) == 3


# --- endpoints, headers, protocols -------------------------------------------------------


def test_no_endpoint_means_no_destination():
    assert otlp_destination_from_settings() is None


@pytest.mark.parametrize("suffix", ["", "/"])
def test_base_endpoint_gets_v1_traces(rows, receiver, monkeypatch, suffix):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url + "/otel" + suffix)
    _send(rows)
    assert [r.path for r in receiver.requests] == ["/otel/v1/traces"]


def test_traces_endpoint_is_used_as_is_and_wins(rows, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url + "/custom/path")
    _send(rows)
    assert [r.path for r in receiver.requests] == ["/custom/path"]


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
)
@pytest.mark.parametrize("value", ["collector:4318", "grpc://collector:4317", "http://"])
def test_bad_endpoint_names_the_setting(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidArgumentError, match=variable):
        otlp_destination_from_settings()


def test_trace_specific_headers_win(rows, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=general,x-a=1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization=traces,x-b=2")
    _send(rows)
    headers = receiver.requests[0].headers
    assert (headers["authorization"], headers["x-a"], headers["x-b"]) == ("traces", "1", "2")


def test_headers_cannot_replace_the_content_type(rows, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "content-type=text/plain")
    _send(rows)
    assert receiver.requests[0].headers["content-type"] == "application/x-protobuf"


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_json_protocol(rows, receiver, monkeypatch, variable):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv(variable, "http/json")
    _send(rows)
    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/json"
    assert "content-encoding" not in request.headers
    (resource_spans,) = request.json()["resourceSpans"]
    assert {"key": "service.name", "value": {"stringValue": "threadline"}} in (
        resource_spans["resource"]["attributes"]
    )
    (scope_spans,) = resource_spans["scopeSpans"]
    assert scope_spans["scope"]["name"] == "threadline"
    spans = {s["name"]: s for s in scope_spans["spans"]}
    root, chat = spans["weather_agent"], spans["chat"]
    chat_row = rows.span("chat")
    assert chat["traceId"] == chat_row.trace_id.removeprefix("tr-")  # hex, not base64
    assert chat["spanId"] == chat_row.span_id
    assert chat["parentSpanId"] == root["spanId"] == rows.span("weather_agent").span_id
    assert "parentSpanId" not in root
    assert chat["kind"] == 1
    assert chat["startTimeUnixNano"] == str(chat_row.start_time_ns)
    assert chat["endTimeUnixNano"] == str(chat_row.end_time_ns)
    assert chat["status"] == {"code": 1}
    assert spans["lookup_weather"]["status"]["code"] == 2
    attributes = {a["key"]: a["value"] for a in chat["attributes"]}
    assert attributes["gen_ai.usage.input_tokens"] == {"intValue": "12"}
    assert attributes["gen_ai.request.model"] == {"stringValue": "gpt-test"}
    root_attributes = {a["key"]: a["value"] for a in root["attributes"]}
    assert root_attributes["temperature"] == {"doubleValue": 0.5}
    assert root_attributes["debug"] == {"boolValue": True}
    assert root_attributes["stop"] == {
        "arrayValue": {"values": [{"stringValue": "\n"}, {"stringValue": "END"}]}
    }
    (event,) = chat["events"]
    assert event["name"] == "first_token"
    assert event["timeUnixNano"].isdigit()


def test_json_and_protobuf_encodings_agree(rows):
    """The hand-written OTLP/JSON parses (with ids in protobuf's base64) to the same message."""
    groups = resource_groups(rows.traces, rows.spans)
    document = json.loads(encode_json(groups))
    for resource_spans in document["resourceSpans"]:
        for span in resource_spans["scopeSpans"][0]["spans"]:
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in span:
                    span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    from_json = json_format.ParseDict(document, ExportTraceServiceRequest())
    from_protobuf = ExportTraceServiceRequest.FromString(encode_protobuf(groups))
    assert from_json == from_protobuf


# --- grouping and edge cases -------------------------------------------------------------


def test_one_resource_per_experiment_remembered_across_batches(receiver):
    first = _record(lambda: _run_agent("exp-a"))
    second = _record(lambda: _run_agent("exp-b"))
    destination = OtlpDestination(f"{receiver.url}/v1/traces", protocol="http/json")
    destination.write(first.traces + second.traces, first.spans + second.spans)
    late = _record(lambda: _run_agent("exp-c"))
    child = late.span("chat")
    destination.write([], [first.span("chat"), child])  # no trace rows in this batch

    def experiments(request: Received) -> list[str | None]:
        found = []
        for resource_spans in request.json()["resourceSpans"]:
            attributes = {a["key"]: a["value"] for a in resource_spans["resource"]["attributes"]}
            found.append(attributes.get("threadline.experiment_id", {}).get("stringValue"))
        return found

    both, later = receiver.requests
    assert experiments(both) == ["exp-a", "exp-b"]
    assert experiments(later) == ["exp-a", None]  # exp-c's trace row was never seen


def test_open_span_and_foreign_ids():
    row = SpanRow(
        trace_id="not-a-hex-id",
        span_id="xyz",
        parent_id=None,
        name="open",
        span_type="CUSTOM",
        start_time_ns=1_000,
        end_time_ns=None,
        status_code="UNSET",
        status_message="",
        inputs_json="null",
        outputs_json="null",
        attributes_json='{"nothing":null}',
        events_json='{"threadline.truncated":true}',
    )
    (group,) = resource_groups([], [row])
    (span,) = group.spans
    assert span.end_ns == span.start_ns == 1_000
    assert len(span.trace_id) == 16 and len(span.span_id) == 8
    assert span.trace_id == resource_groups([], [row])[0].spans[0].trace_id  # stable
    assert span.status_code == 0
    assert span.attributes["openinference.span.kind"] == "UNKNOWN"
    assert "nothing" not in span.attributes
    assert span.events == []
    assert span.attributes["threadline.events"] == '{"threadline.truncated":true}'
    assert "threadline.experiment_id" not in group.attributes


def test_batch_without_spans_sends_nothing(rows, receiver):
    destination = OtlpDestination(receiver.url, protocol="http/json")
    destination.write(rows.traces, [])
    assert receiver.requests == []


# --- failures ----------------------------------------------------------------------------


def test_error_status_raises_with_status_and_body(rows, receiver):
    receiver.status = 400
    receiver.response_body = b"bad span: trace id is empty" + b"x" * 5000
    destination = OtlpDestination(f"{receiver.url}/v1/traces", protocol="http/json")
    with pytest.raises(OtlpExportError) as info:
        destination.write(rows.traces, rows.spans)
    error = info.value
    assert error.status == 400
    assert not error.retryable
    assert error.retry_after is None
    assert "HTTP 400" in str(error)
    assert "bad span: trace id is empty" in str(error)
    assert len(str(error)) < 1000


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(503, "7", 7.0), (429, "0", 0.0), (503, None, None)],
)
def test_throttling_raises_with_retry_after(rows, receiver, status, retry_after, expected):
    receiver.status = status
    if retry_after is not None:
        receiver.response_headers["Retry-After"] = retry_after
    destination = OtlpDestination(f"{receiver.url}/v1/traces")
    with pytest.raises(OtlpExportError) as info:
        destination.write(rows.traces, rows.spans)
    assert info.value.status == status
    assert info.value.retry_after == expected
    assert info.value.retryable


def test_retry_after_as_http_date(rows, receiver):
    from email.utils import formatdate

    receiver.status = 429
    receiver.response_headers["Retry-After"] = formatdate(time.time() + 120, usegmt=True)
    destination = OtlpDestination(f"{receiver.url}/v1/traces")
    with pytest.raises(OtlpExportError) as info:
        destination.write(rows.traces, rows.spans)
    assert info.value.retry_after is not None
    assert 100 < info.value.retry_after <= 120


def test_redirect_is_an_error_not_a_silent_get(rows, receiver):
    receiver.status = 307
    receiver.response_headers["Location"] = f"{receiver.url}/elsewhere"
    destination = OtlpDestination(f"{receiver.url}/v1/traces")
    with pytest.raises(OtlpExportError, match="HTTP 307") as info:
        destination.write(rows.traces, rows.spans)
    assert info.value.status == 307
    assert [r.path for r in receiver.requests] == ["/v1/traces"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_collector_raises_quickly(rows, monkeypatch):
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        f"http://user:secret@127.0.0.1:{_closed_port()}/v1/traces",
    )
    destination = otlp_destination_from_settings()
    assert destination is not None
    started = time.monotonic()
    with pytest.raises(OtlpExportError, match="could not be reached") as info:
        destination.write(rows.traces, rows.spans)
    assert time.monotonic() - started < 5
    assert info.value.status is None
    assert info.value.retryable
    assert "secret" not in str(info.value)


# --- the optional package ----------------------------------------------------------------


def test_missing_protobuf_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(
        sys.modules, "opentelemetry.proto.collector.trace.v1.trace_service_pb2", None
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    with pytest.raises(InvalidArgumentError, match=r"pip install 'threadline\[otel\]'"):
        otlp_destination_from_settings()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    assert otlp_destination_from_settings() is not None  # JSON needs no protobuf


def test_importing_the_exporter_imports_no_protobuf():
    code = (
        "import sys, threadline, threadline.export._otlp\n"
        "print([m for m in sys.modules if m.startswith(('google.protobuf', 'opentelemetry'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- wired into the SDK's pipeline ---------------------------------------------------------


def _traced_job() -> None:
    @threadline.trace(span_type="AGENT")
    def job(x: int) -> int:
        return x

    job(1)


def test_sdk_exports_to_the_store_and_the_collector(receiver, monkeypatch, tmp_path):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    threadline.set_tracking_uri(f"sqlite:///{tmp_path}/both.db")
    _traced_job()
    report = threadline.flush_trace_async_logging()
    assert set(report.destinations) == {"store", "otlp"}
    assert report.destinations["otlp"].exported == 1
    (request,) = receiver.requests
    (span,) = _spans(request.proto()).values()
    assert span.name == "job"
    assert len(threadline.search_traces(return_type="list")) == 1


def test_otlp_only_leaves_the_store_alone(receiver, monkeypatch, tmp_path):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url + "/v1/traces")
    monkeypatch.setenv("THREADLINE_OTLP_EXPORT_ONLY", "true")
    threadline.set_tracking_uri(f"sqlite:///{tmp_path}/unused.db")
    _traced_job()
    report = threadline.flush_trace_async_logging()
    assert set(report.destinations) == {"otlp"} and report.exported_spans == 1
    assert len(receiver.requests) == 1
    assert not (tmp_path / "unused.db").exists()


def test_collector_rejecting_a_batch_drops_it_with_a_reason(receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("THREADLINE_OTLP_EXPORT_ONLY", "true")
    receiver.status = 400
    receiver.response_body = b"bad request"
    _traced_job()
    report = threadline.flush_trace_async_logging()
    assert report.dropped_spans == 1 and report.pending_spans == 0
    assert any("rejected" in reason for reason in report.reasons)


def test_collector_refusing_the_token_keeps_the_spans_until_it_accepts(receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("THREADLINE_OTLP_EXPORT_ONLY", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    receiver.status = 401
    receiver.response_body = b"bad token"
    _traced_job()
    report = threadline.flush_trace_async_logging(timeout=0.3)
    assert report.dropped_spans == 0 and report.pending_spans == 1
    receiver.status = 200
    receiver.response_body = b"{}"
    report = threadline.flush_trace_async_logging(timeout=30)
    assert report.ok and report.destinations["otlp"].exported == 1
