"""Sampling, the stuck-trace watchdog and W3C trace-context propagation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

import threadline
from threadline.errors import InvalidArgumentError
from threadline.tracing import _timeout
from threadline.tracing._propagation import parse_traceparent


def test_sampling_ratio_zero_records_nothing_and_children_follow_root(monkeypatch, captured):
    monkeypatch.setenv("THREADLINE_TRACE_SAMPLING_RATIO", "0")

    @threadline.trace
    def child():
        threadline.update_current_trace(tags={"x": "y"})  # inside an unsampled trace: no-op
        return threadline.get_current_active_span()

    @threadline.trace
    def root():
        return child()

    assert root() is None
    with threadline.start_span("manual") as span:
        span.set_outputs(1)
    assert captured.traces == []


def test_sampling_ratio_is_applied_per_root(monkeypatch, captured):
    monkeypatch.setenv("THREADLINE_TRACE_SAMPLING_RATIO", "0.3")

    @threadline.trace
    def leaf():
        return 1

    @threadline.trace
    def root():
        return leaf() + leaf()

    for _ in range(1000):
        root()
    traces = captured.traces
    assert 200 < len(traces) < 400
    assert all(len(t.data.spans) == 3 for t in traces)  # never a partial trace


def test_sampling_ratio_override_on_decorator(monkeypatch, captured):
    monkeypatch.setenv("THREADLINE_TRACE_SAMPLING_RATIO", "0")

    @threadline.trace(sampling_ratio_override=1.0)
    def always():
        return 1

    always()
    assert len(captured.traces) == 1
    with pytest.raises(InvalidArgumentError, match="sampling_ratio_override"):
        threadline.trace(sampling_ratio_override=2)


def test_bad_sampling_ratio_names_the_variable(monkeypatch):
    monkeypatch.setenv("THREADLINE_TRACE_SAMPLING_RATIO", "1.5")
    with pytest.raises(InvalidArgumentError, match="THREADLINE_TRACE_SAMPLING_RATIO"):
        threadline.tracing.enable()


def test_stuck_trace_is_aborted_and_later_spans_do_not_change_it(monkeypatch, captured):
    monkeypatch.setenv("THREADLINE_TRACE_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("THREADLINE_TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS", "0.05")

    @threadline.trace
    def child(i):
        time.sleep(0.2)
        return i

    @threadline.trace
    def long_running():
        for i in range(4):
            child(i)
        return "finished anyway"

    assert long_running() == "finished anyway"  # the program keeps running
    (trace,) = captured.traces
    assert trace.info.state == "ERROR"
    root = trace.data.root_span
    assert root.status.status_code == "ERROR" and "aborted" in root.status.description
    assert root.attributes["threadline.aborted"] is True
    aborted = [s for s in trace.data.spans if s.attributes.get("threadline.aborted")]
    assert len(aborted) == 2  # the root and the child that was running at the deadline
    children = [s for s in trace.data.spans if s is not root]
    assert [c.inputs["i"] for c in children] == [0, 1]  # spans after the abort not recorded
    assert children[0].status.status_code == "OK"


def test_watchdog_thread_starts_only_when_a_timeout_is_set(captured):
    with threadline.start_span("quick"):
        pass
    assert _timeout._thread is None


SERVER = textwrap.dedent(
    """
    import http.server, sys, threadline
    threadline.set_tracking_uri(sys.argv[1])

    @threadline.trace(span_type="TOOL")
    def lookup(q):
        return q.upper()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with threadline.tracing.set_tracing_context_from_http_request_headers(self.headers):
                with threadline.start_span("handle-request") as span:
                    body = lookup(self.path.strip("/")).encode()
                    span.set_outputs(body.decode())
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.handle_request()
    """
)

CLIENT = textwrap.dedent(
    """
    import sys, urllib.request, threadline
    threadline.set_tracking_uri(sys.argv[1])

    @threadline.trace(span_type="AGENT")
    def agent():
        headers = threadline.tracing.get_tracing_context_headers_for_http_request()
        request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}/hello", headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()

    print(agent())
    print(threadline.get_last_active_trace_id())
    """
)


def test_client_and_server_processes_produce_one_trace(tmp_path):
    uri = f"sqlite:///{tmp_path}/distributed.db"
    with subprocess.Popen(
        [sys.executable, "-c", SERVER, uri], stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            port = server.stdout.readline().strip()
            client = subprocess.run(
                [sys.executable, "-c", CLIENT, uri, port],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            server.wait(timeout=30)
        finally:
            server.kill()
    answer, trace_id = client.stdout.split()
    assert answer == "HELLO"
    threadline.set_tracking_uri(uri)
    trace = threadline.get_trace(trace_id)
    names = {s.name: s for s in trace.data.spans}
    assert set(names) == {"agent", "handle-request", "lookup"}
    assert names["handle-request"].parent_id == names["agent"].span_id
    assert names["lookup"].parent_id == names["handle-request"].span_id
    assert trace.info.state == "OK" and trace.info.name == "agent"
    assert len(threadline.search_traces(experiment_ids=["0"], return_type="list")) == 1


def test_traceparent_parsing():
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert parse_traceparent(good) == (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        True,
    )
    for bad in (
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ):
        assert parse_traceparent(bad) is None, bad


def test_headers_outside_a_trace_are_empty_and_bad_headers_are_ignored(captured):
    assert threadline.tracing.get_tracing_context_headers_for_http_request() == {}
    junk = {"traceparent": "junk"}
    with (
        threadline.tracing.set_tracing_context_from_http_request_headers(junk),
        threadline.start_span("fresh") as span,
    ):
        pass
    assert span.parent_id is None
    with threadline.start_span("outer") as outer:
        headers = threadline.tracing.get_tracing_context_headers_for_http_request()
    assert headers["traceparent"] == f"00-{outer.trace_id[3:]}-{outer.span_id}-01"
