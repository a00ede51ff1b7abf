"""The whole SDK with an ``http://`` tracking URI, against a real ``threadline server``:
tracing (sync and async export), reads, experiments, runs, deletion, tags, the low-level
client, the CLI, tokens, an outage, error mapping, and PostgreSQL with two workers."""

from __future__ import annotations

import asyncio
import http.server
import json
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
from tests.remote.conftest import TOKEN, ServerProcess, server_on_sqlite
from threadline._query import SEARCH_COLUMNS
from threadline.cli import main as cli_main
from threadline.client import ThreadlineClient
from threadline.entities.span import SpanType
from threadline.errors import (
    FilterSyntaxError,
    InvalidArgumentError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    StoreError,
)
from threadline.export._channel import Channel
from threadline.export._destination import StoreDestination
from threadline.store import Store, get_store
from threadline.store._rest_http import RemoteStoreError
from threadline.store.rest import BatchRefused, RestStore
from threadline.testing import capture_traces


@threadline.trace(span_type=SpanType.TOOL)
def search_tool(query: str) -> list[str]:
    return [f"doc about {query}"]


@threadline.trace(span_type=SpanType.AGENT)
def agent(question: str, user: str = "alice") -> str:
    threadline.update_current_trace(tags={"user": user})
    docs = search_tool(question)
    if question == "fail":
        raise ValueError("the agent failed")
    return f"answer to {question} from {len(docs)} docs"


@threadline.trace(span_type=SpanType.AGENT)
async def async_agent(question: str) -> str:
    await asyncio.sleep(0)
    return f"async answer to {question}"


def _traces(experiment_id: str, **kwargs: Any) -> list[Any]:
    found = threadline.search_traces(experiment_ids=[experiment_id], return_type="list", **kwargs)
    assert isinstance(found, list)
    return found


def _tick() -> None:
    """Let the millisecond clock move, so traces made in a row have distinct timestamps."""
    time.sleep(0.003)


# --- tracing and reading -----------------------------------------------------------------
def test_store_for_a_server_uri_is_a_rest_store(server: ServerProcess) -> None:
    store = get_store(server.url + "/")
    assert isinstance(store, RestStore) and isinstance(store, Store)
    assert store.url == server.url
    assert get_store(server.url) is store


@pytest.mark.parametrize("async_logging", [False, True], ids=["sync", "async"])
def test_a_traced_agent_is_readable_right_after_it_ends(remote: str, async_logging: bool) -> None:
    if async_logging:
        threadline.config.enable_async_logging()
    agent("weather")
    trace = threadline.get_trace(threadline.get_last_active_trace_id())
    assert trace is not None
    assert trace.info.experiment_id == remote and trace.info.state.value == "OK"
    assert trace.info.tags["user"] == "alice"
    root, child = trace.data.spans
    assert (root.name, root.span_type, root.inputs) == ("agent", "AGENT", {"question": "weather"})
    assert root.outputs == "answer to weather from 1 docs"
    assert (child.name, child.parent_id, child.outputs) == (
        "search_tool",
        root.span_id,
        ["doc about weather"],
    )
    assert trace.info.request_preview and "weather" in trace.info.request_preview


def test_async_logging_with_threads_and_tasks(remote: str) -> None:
    threadline.config.enable_async_logging()
    workers = [threading.Thread(target=lambda i=i: agent(f"q{i}")) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    async def many() -> list[str]:
        return await asyncio.gather(*(async_agent(f"a{i}") for i in range(20)))

    assert len(asyncio.run(many())) == 20
    traces = _traces(remote)
    assert len(traces) == 28
    assert sum(len(t.data.spans) for t in traces) == 8 * 2 + 20
    report = threadline.flush_trace_async_logging()
    assert report.ok and report.exported_spans == 36


def test_search_traces_filters_order_and_dataframe(remote: str) -> None:
    agent("one", user="bob")
    _tick()
    with pytest.raises(ValueError):
        agent("fail")
    _tick()
    agent("three")
    errors = _traces(remote, filter_string="trace.status = 'ERROR'")
    assert [t.info.state.value for t in errors] == ["ERROR"]
    assert errors[0].data.spans[0].events[0].name == "exception"
    bob = _traces(remote, filter_string="tags.user = 'bob' AND span.name = 'search_tool'")
    assert [t.data.spans[0].inputs for t in bob] == [{"question": "one", "user": "bob"}]
    oldest = _traces(remote, order_by=["timestamp_ms ASC"], max_results=2)
    assert [t.data.spans[0].inputs["question"] for t in oldest] == ["one", "fail"]

    frame = threadline.search_traces(filter_string="trace.name = 'agent'")
    assert list(frame.columns) == list(SEARCH_COLUMNS)
    assert len(frame) == 3
    newest = frame.iloc[0]
    assert newest["request"] == {"question": "three"}
    assert newest["response"] == "answer to three from 1 docs"
    assert newest["state"] == "OK" and newest["experiment_id"] == remote
    assert newest["tags"]["user"] == "alice" and len(newest["spans"]) == 2


def test_a_bad_filter_is_a_filter_syntax_error_naming_the_token(remote: str) -> None:
    with pytest.raises(FilterSyntaxError, match=r"bogus\.x") as caught:
        threadline.search_traces(filter_string="trace.status = 'OK' AND bogus.x = 1")
    assert caught.value.position == 24
    with pytest.raises(FilterSyntaxError, match="sideways"):
        threadline.search_traces(order_by=["timestamp_ms sideways"])
    with pytest.raises(InvalidArgumentError) as invalid:
        ThreadlineClient().search_traces(max_results=0)
    assert not isinstance(invalid.value, FilterSyntaxError)


# --- experiments, runs, deletion, tags ---------------------------------------------------
def test_experiments(remote: str) -> None:
    name = f"created-{uuid.uuid4().hex[:8]}"
    created = threadline.set_experiment(name)
    assert threadline.set_experiment(name).experiment_id == created.experiment_id
    assert threadline.set_experiment(experiment_id=remote).name.startswith("exp-")
    client = ThreadlineClient()
    assert client.get_experiment_by_name(name) == created
    assert client.get_experiment_by_name("no such experiment") is None
    with pytest.raises(ResourceAlreadyExistsError, match=name):
        client.create_experiment(name)
    with pytest.raises(ResourceNotFoundError):
        client.get_experiment("987654")
    client.set_experiment_tag(created.experiment_id, "team", "search")
    client.rename_experiment(created.experiment_id, name + "-renamed")
    assert client.get_experiment(created.experiment_id).tags == {"team": "search"}
    assert [e.name for e in client.search_experiments(name_like=name + "%")] == [name + "-renamed"]
    client.delete_experiment(created.experiment_id)
    with pytest.raises(InvalidArgumentError, match="deleted"):
        threadline.set_experiment(experiment_id=created.experiment_id)
    client.restore_experiment(created.experiment_id)
    assert threadline.set_experiment(name + "-renamed").experiment_id == created.experiment_id
    with pytest.raises(InvalidArgumentError, match="assigns experiment ids"):
        client.store.create_experiment("x", experiment_id="77")


def test_runs_and_their_traces(remote: str) -> None:
    with threadline.start_run(run_name="eval") as run:
        threadline.log_param("model", "small")
        threadline.log_params({"temperature": 0.2})
        threadline.log_metric("accuracy", 0.5, step=1)
        threadline.log_metrics({"accuracy": 0.75, "loss": float("nan")}, step=2)
        threadline.set_tag("team", "search")
        threadline.set_tags({"stage": "dev"})
        agent("in a run")
        with pytest.raises(InvalidArgumentError):
            threadline.log_param("model", "large")  # params are immutable
    run_id = run.info.run_id
    client = ThreadlineClient()
    stored = client.get_run(run_id)
    assert (stored.info.status, stored.info.run_name, stored.info.experiment_id) == (
        "FINISHED",
        "eval",
        remote,
    )
    assert stored.data.params == {"model": "small", "temperature": "0.2"}
    assert stored.data.metrics["accuracy"] == 0.75 and stored.data.metrics["loss"] != 0
    assert stored.data.tags == {"team": "search", "stage": "dev"}
    assert [m.value for m in client.get_metric_history(run_id, "accuracy")] == [0.5, 0.75]
    linked = threadline.search_traces(run_id=run_id)
    assert list(linked["run_id"]) == [run_id]
    assert [r.info.run_id for r in client.search_runs([remote], "metrics.accuracy > 0.6")] == [
        run_id
    ]
    client.delete_tag(run_id, "team")
    assert client.update_run(run_id, name="renamed").run_name == "renamed"
    assert client.get_run(run_id).data.tags == {"stage": "dev"}
    client.delete_run(run_id)
    with pytest.raises(ResourceNotFoundError):
        client.get_run("no-such-run")


def test_delete_traces_by_id_and_by_age(remote: str) -> None:
    ids = []
    for i in range(5):
        agent(f"q{i}")
        ids.append(threadline.get_last_active_trace_id())
        _tick()
    client = ThreadlineClient()
    assert client.delete_traces(remote, trace_ids=ids[:2]) == 2
    now_ms = int(time.time() * 1000) + 1
    assert client.delete_traces(remote, max_timestamp_millis=now_ms, max_traces=2) == 2
    assert [t.info.trace_id for t in _traces(remote)] == [ids[4]]
    assert threadline.get_trace(ids[0]) is None


def test_trace_tags(remote: str) -> None:
    agent("tagged")
    trace_id = threadline.get_last_active_trace_id()
    client = ThreadlineClient()
    client.set_trace_tag(trace_id, "reviewed", "yes")
    assert client.get_trace(trace_id).info.tags == {"user": "alice", "reviewed": "yes"}
    assert [t.info.trace_id for t in _traces(remote, filter_string="tags.reviewed = 'yes'")] == [
        trace_id
    ]
    client.delete_trace_tag(trace_id, "user")
    assert client.store.get_trace_info(trace_id).tags == {"reviewed": "yes"}
    with pytest.raises(ResourceNotFoundError):
        client.set_trace_tag("tr-" + "0" * 32, "k", "v")


def test_low_level_client_api(server: ServerProcess, remote: str) -> None:
    client = ThreadlineClient(tracking_uri=server.url)
    root = client.start_trace("stream", inputs={"prompt": "hi"}, tags={"kind": "low-level"})
    child = client.start_span("chunk", trace_id=root.trace_id, parent_id=root.span_id, inputs=1)
    client.end_span(root.trace_id, child.span_id, outputs={"text": "hel"})
    client.end_trace(root.trace_id, outputs="hello")
    trace = client.get_trace(root.trace_id)
    assert trace is not None and trace.info.tags["kind"] == "low-level"
    assert [(s.name, s.outputs) for s in trace.data.spans] == [
        ("stream", "hello"),
        ("chunk", {"text": "hel"}),
    ]
    page = client.search_traces(experiment_ids=[remote], max_results=1, include_spans=False)
    assert [t.info.trace_id for t in page] == [root.trace_id] and page.token is None


# --- the CLI -------------------------------------------------------------------------------
def test_cli_reads_the_server(server: ServerProcess, remote: str, capsys: Any) -> None:
    agent("from the cli")
    trace_id = threadline.get_last_active_trace_id()
    uri = ["--tracking-uri", server.url]
    assert cli_main(["traces", "list", *uri, "--experiment-id", remote, "--output", "json"]) == 0
    assert [t["trace_id"] for t in json.loads(capsys.readouterr().out)] == [trace_id]
    assert cli_main(["traces", "tag", trace_id, "source", "cli", *uri]) == 0
    assert cli_main(["traces", "show", trace_id, *uri]) == 0
    shown = capsys.readouterr().out
    assert "search_tool" in shown and "source=cli" in shown
    assert cli_main(["traces", "list", *uri, "--filter", "nope = 1"]) == 1
    assert "nope" in capsys.readouterr().err
    command = [sys.executable, "-m", "threadline.cli", "traces", "list", *uri]
    listed = subprocess.run(
        [*command, "--experiment-id", remote], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0 and trace_id in listed.stdout, listed.stderr


# --- tokens --------------------------------------------------------------------------------
def test_a_server_with_auth_needs_the_token(
    auth_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    threadline.set_tracking_uri(auth_server.url)
    with pytest.raises(StoreError, match="THREADLINE_TRACKING_TOKEN") as caught:
        threadline.set_experiment("needs-a-token")
    assert "requires a token" in str(caught.value) and auth_server.url in str(caught.value)
    assert getattr(caught.value, "cause", None) == "auth"
    agent("refused")  # never raises into the traced program; the spans are kept for later
    report = threadline.flush_trace_async_logging(timeout=0.5)
    assert report.dropped_spans == 0 and report.pending_spans == 2

    monkeypatch.setenv("THREADLINE_TRACKING_TOKEN", "wrong")
    with pytest.raises(StoreError, match="rejected the token"):
        ThreadlineClient().search_experiments()

    monkeypatch.setenv("THREADLINE_TRACKING_TOKEN", TOKEN)
    report = threadline.flush_trace_async_logging(timeout=30)  # the right token: delivered
    assert report.ok and report.exported_spans == 2
    experiment = threadline.set_experiment(f"with-token-{uuid.uuid4().hex[:8]}")
    agent("accepted")
    assert [len(t.data.spans) for t in _traces(experiment.experiment_id)] == [2]
    assert [len(t.data.spans) for t in _traces("0", filter_string="trace.name = 'agent'")] == [2]


# --- outages -------------------------------------------------------------------------------
def _server_span_count(folder: Path, experiment_id: str) -> int:
    with sqlite3.connect(folder / "server.db") as conn:
        query = "select count(*) from spans join traces using (trace_id) where experiment_id = ?"
        return int(conn.execute(query, (experiment_id,)).fetchone()[0])


@pytest.fixture(scope="module")
def outage_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = server_on_sqlite(tmp_path_factory.mktemp("outage"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def outage_server(outage_process: ServerProcess) -> ServerProcess:
    """A server of this module that tests may stop and start again (same port and file)."""
    return outage_process if outage_process.running else outage_process.start()


def test_traces_made_while_the_server_is_down_arrive_once_it_is_back(
    outage_server: ServerProcess,
) -> None:
    threadline.set_tracking_uri(outage_server.url)
    experiment_id = threadline.set_experiment("outage").experiment_id
    agent("before")
    outage_server.stop()
    for i in range(20):
        assert agent(f"during {i}").startswith("answer")  # tracing never breaks the program
    with pytest.raises(StoreError, match="threadline server") as caught:
        threadline.get_trace("tr-" + "1" * 32)
    assert outage_server.url in str(caught.value)
    report = threadline.flush_trace_async_logging(timeout=0.5)
    assert report.pending_spans == 40 and report.dropped_spans == 0

    outage_server.start()
    report = threadline.flush_trace_async_logging(timeout=60)
    assert report.ok and report.exported_spans == 42
    assert report.destinations["store"].retried == 40
    assert len(_traces(experiment_id)) == 21
    assert _server_span_count(outage_server.folder, experiment_id) == 42


def test_a_long_outage_spools_to_disk_and_replays(
    outage_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "0.05")
    threadline.set_tracking_uri(outage_server.url)
    experiment_id = threadline.set_experiment("spooled").experiment_id
    outage_server.stop()
    for i in range(10):
        agent(f"spooled {i}")
    time.sleep(0.1)
    report = threadline.flush_trace_async_logging()
    assert report.spooled_spans == 20 and report.pending_spans == 0 and report.dropped_spans == 0

    outage_server.start()
    report = threadline.flush_trace_async_logging(timeout=60)
    assert report.replayed_spans == 20 and report.dropped_spans == 0 and report.ok
    assert _server_span_count(outage_server.folder, experiment_id) == 20
    threadline.flush_trace_async_logging()  # replaying again finds nothing left
    assert _server_span_count(outage_server.folder, experiment_id) == 20


def test_oversized_batches_are_split_and_an_oversized_span_is_dropped(tmp_path: Path) -> None:
    limit = {"THREADLINE_SERVER_MAX_BODY_BYTES": str(64 * 1024)}
    process = server_on_sqlite(tmp_path, env=limit).start()
    try:
        threadline.set_tracking_uri(process.url)
        experiment_id = threadline.set_experiment("big").experiment_id
        threadline.config.enable_async_logging()
        for i in range(40):
            search_tool(f"{i:04d}" * 1000)  # 4 KB of input per trace: 160 KB in all
        assert threadline.flush_trace_async_logging().ok
        assert _server_span_count(tmp_path, experiment_id) == 40

        search_tool(uuid.uuid4().hex * 4000)  # 128 KB that no split can make fit
        report = threadline.flush_trace_async_logging()
        assert report.dropped_spans == 1 and report.pending_spans == 0
        assert any("413" in reason for reason in report.reasons)
    finally:
        process.stop()


def test_a_refused_span_is_isolated_and_the_rest_of_its_batch_written(tmp_path: Path) -> None:
    limit = {"THREADLINE_SERVER_MAX_PAYLOAD_BYTES": str(16 * 1024)}
    process = server_on_sqlite(tmp_path, env=limit).start()
    try:
        with capture_traces() as captured:
            for i in range(6):
                search_tool(uuid.uuid4().hex * 2000 if i == 3 else f"small {i}")  # one of 64 KB
        traces, spans = list(captured.trace_rows.values()), list(captured.span_rows.values())
        big = [s for s in spans if len(s.inputs_json) > 16 * 1024]
        store = RestStore(process.url)
        with pytest.raises(BatchRefused, match="413") as refused:
            store.log_batch(traces, spans)
        store.close()
        assert refused.value.refused == ([], big)
        assert _server_span_count(tmp_path, "0") == 5  # the other spans of that one batch

        channel = Channel(StoreDestination(process.url), None, 10_000, 60.0)
        channel.deliver(traces, spans)  # again: upserts, so nothing is stored twice
        assert (channel.stats.exported, channel.stats.dropped, channel.backlog_spans) == (5, 1, 0)
        (reason,) = [r for r in channel.stats.reasons if r.startswith("dropped: refused")]
        assert reason.startswith("dropped: refused by the server: 413: Span 'search_tool'")
        assert _server_span_count(tmp_path, "0") == 5
    finally:
        process.stop()


# --- HTTP details, against a scripted server -----------------------------------------------
class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next scripted (status, headers, body, close)."""

    protocol_version = "HTTP/1.1"
    script: list[tuple[int, dict[str, str], bytes, bool]] = []
    seen: list[tuple[str, str, dict[str, str]]] = []

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer()

    def _answer(self) -> None:
        self.seen.append((self.command, self.path, dict(self.headers)))
        status, headers, body, close = self.script.pop(0)
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = close

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    class Handler(_Scripted):
        script = []
        seen = []

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _error(status: int, message: str, **headers: str) -> tuple[int, dict[str, str], bytes, bool]:
    body = json.dumps({"error": {"code": "X", "message": message}}).encode()
    return status, {"Content-Type": "application/json", **headers}, body, False


def test_errors_map_to_threadline_errors(
    scripted: tuple[str, type[_Scripted]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = scripted
    store = RestStore(url)
    handler.script = [
        _error(429, "slow down", **{"Retry-After": "3"}),
        _error(503, "queue full", **{"Retry-After": "1"}),
        _error(413, "too big"),
        _error(500, "boom"),
        (502, {"Content-Type": "text/html"}, b"<html>bad gateway</html>", False),
        _error(403, "This token is read-only."),
        _error(409, "exists"),
        (200, {"Content-Type": "text/plain"}, b"hello", False),
    ]
    expected = [
        (True, 3.0, "slow down", "unavailable"),
        (True, 1.0, "queue full", "unavailable"),
        (False, None, "too big", "refused"),
        (True, None, "boom", "unavailable"),
        (True, None, "bad gateway", "unavailable"),
        (True, None, "lacks the right", "auth"),  # a token can be fixed: the spans are kept
    ]
    for retryable, retry_after, text, cause in expected:
        with pytest.raises(RemoteStoreError, match=text) as caught:
            store.search_experiments()
        assert caught.value.retryable is retryable
        assert caught.value.retry_after == retry_after
        assert caught.value.cause == cause
    with pytest.raises(ResourceAlreadyExistsError, match="exists"):
        store.create_experiment("taken")
    with pytest.raises(RemoteStoreError, match="not JSON") as not_json:
        store.search_experiments()
    assert not_json.value.retryable and not_json.value.cause == "not-threadline"
    monkeypatch.setenv("THREADLINE_TRACKING_TOKEN", "abc")
    handler.script = [(200, {}, b'{"experiments": [], "next_page_token": null}', False)]
    assert store.search_experiments() == ([], None)
    method, path, headers = handler.seen[-1]
    assert (method, headers["Authorization"]) == ("GET", "Bearer abc")
    assert path.startswith("/api/v1/experiments?")
    store.close()


def test_a_connection_the_server_closed_is_replaced(scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    store = RestStore(url)
    ok = (200, {}, b'{"experiments": [], "next_page_token": null}', False)
    handler.script = [(*ok[:3], True), ok, ok]  # closes after the first answer, unannounced
    for _ in range(3):
        assert store.search_experiments() == ([], None)
    assert len(handler.seen) == 3
    store.close()


def test_an_unreachable_server_names_the_url() -> None:
    store = RestStore("http://127.0.0.1:9")
    with pytest.raises(RemoteStoreError, match=r"127\.0\.0\.1:9.*threadline server") as caught:
        store.get_trace("tr-" + "2" * 32)
    assert caught.value.retryable is True


def test_a_server_uri_needs_no_sqlalchemy() -> None:
    code = (
        "import sys, threadline.store as s\n"
        "s.get_store('http://127.0.0.1:9')\n"
        "print(sorted(m for m in ('sqlalchemy', 'requests', 'httpx', 'urllib.request') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- PostgreSQL, two workers, two SDK processes ------------------------------------------
_SDK_PROCESS = textwrap.dedent(
    """
    import json, sys, threading, threadline

    @threadline.trace
    def step(worker, i, j):
        return [worker, i, j]

    @threadline.trace
    def job(worker, i):
        return [step(worker, i, j) for j in range(4)]

    def work(worker):
        for i in range(25):
            job(worker, i)

    threads = [threading.Thread(target=work, args=(f"{sys.argv[1]}-{w}",)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = threadline.flush_trace_async_logging()
    print(json.dumps({"exported": report.exported_spans, "dropped": report.dropped_spans,
                      "pending": report.pending_spans}))
    """
)


@pytest.mark.postgres
def test_two_sdk_processes_through_two_postgres_workers(postgres_uri: str, tmp_path: Path) -> None:
    process = ServerProcess(tmp_path, postgres_uri, "--workers", "2").start()
    try:
        experiment_id = ThreadlineClient(process.url).create_experiment(
            f"pg-{uuid.uuid4().hex[:8]}"
        )
        env = {
            "THREADLINE_TRACKING_URI": process.url,
            "THREADLINE_EXPERIMENT_ID": experiment_id,
            "THREADLINE_ASYNC_TRACE_LOGGING": "true",
            "THREADLINE_SPOOL_DIR": str(tmp_path / "spool"),
            "PATH": "/usr/bin:/bin",
        }
        sdks = [
            subprocess.Popen(
                [sys.executable, "-c", _SDK_PROCESS, name],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for name in ("a", "b")
        ]
        reports = [json.loads(sdk.communicate(timeout=60)[0]) for sdk in sdks]
        assert reports == [{"exported": 500, "dropped": 0, "pending": 0}] * 2

        traces = ThreadlineClient(process.url).search_traces([experiment_id], max_results=1000)
        assert len(traces) == 200 and {t.info.state.value for t in traces} == {"OK"}
        spans = [(t.info.trace_id, s.span_id) for t in traces for s in t.data.spans]
        assert len(spans) == len(set(spans)) == 1000
    finally:
        process.stop()
