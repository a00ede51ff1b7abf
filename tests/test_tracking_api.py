"""Experiments, runs, search/get/delete, tags and the low-level client API on a real store."""

from __future__ import annotations

import time

import pytest

import threadline
from threadline.client import ThreadlineClient
from threadline.entities.trace_location import ExperimentLocation
from threadline.errors import FilterSyntaxError, InvalidArgumentError, ResourceNotFoundError


@pytest.fixture(params=["sqlite", "postgres"])
def store_uri(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/api.db"
    return request.getfixturevalue("postgres_uri")


@pytest.fixture
def client(store_uri):
    threadline.set_tracking_uri(store_uri)
    return ThreadlineClient()


def _wipe(client):
    for experiment in client.search_experiments():
        client.delete_traces(experiment.experiment_id, max_timestamp_millis=2**62)


def test_set_experiment_creates_by_name_and_routes_traces(client):
    _wipe(client)
    assert threadline.get_experiment("0").name == "Default"
    experiment = threadline.set_experiment("my-tracing-experiment")
    assert experiment.name == "my-tracing-experiment"
    assert (
        threadline.set_experiment("my-tracing-experiment").experiment_id == experiment.experiment_id
    )
    with threadline.start_span("in-experiment"):
        pass
    (trace,) = threadline.search_traces(return_type="list")
    assert trace.info.experiment_id == experiment.experiment_id
    assert threadline.set_experiment(experiment_id=experiment.experiment_id) == experiment
    with pytest.raises(ResourceNotFoundError):
        threadline.set_experiment(experiment_id="999999")
    with pytest.raises(InvalidArgumentError):
        threadline.set_experiment()


def test_experiment_id_from_environment(client, monkeypatch):
    experiment_id = client.create_experiment(f"env-{time.time_ns()}")
    monkeypatch.setenv("THREADLINE_EXPERIMENT_ID", experiment_id)
    with threadline.start_span("x"):
        pass
    (trace,) = threadline.search_traces(experiment_ids=[experiment_id], return_type="list")
    assert trace.info.experiment_id == experiment_id


def test_runs_link_traces_and_log_params_metrics_tags(client):
    threadline.set_experiment(f"Run Associated Tracing {time.time_ns()}")
    with threadline.start_run() as run:
        with threadline.start_span(name="Run Span") as parent_span:
            parent_span.set_inputs({"input": "a"})
            parent_span.set_outputs({"response": "b"})
        threadline.log_param("lr", 0.1)
        threadline.log_params({"layers": 3})
        threadline.log_metric("loss", 0.5, step=1)
        threadline.log_metrics({"loss": 0.25}, step=2)
        threadline.set_tag("team", "a")
        threadline.set_tags({"stage": "dev"})
        with threadline.start_run(run_name="child") as child:
            assert threadline.active_run().info.run_id == child.info.run_id
        assert threadline.active_run().info.run_id == run.info.run_id
    assert threadline.active_run() is None
    traces = threadline.search_traces(run_id=run.info.run_id)
    assert list(traces["run_id"]) == [run.info.run_id]
    assert traces["request"][0] == {"input": "a"} and traces["response"][0] == {"response": "b"}
    stored = client.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"lr": "0.1", "layers": "3"}
    assert stored.data.metrics == {"loss": 0.25}
    assert stored.data.tags["team"] == "a" and stored.data.tags["stage"] == "dev"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.25]
    assert client.get_run(child.info.run_id).info.parent_run_id == run.info.run_id
    with pytest.raises(InvalidArgumentError, match="No active run"):
        threadline.log_param("x", 1)


def test_failed_run_is_marked_failed(client):
    with pytest.raises(RuntimeError), threadline.start_run() as run:
        raise RuntimeError("boom")
    assert client.get_run(run.info.run_id).info.status == "FAILED"


def test_search_traces_dataframe_columns_and_filters(client):
    threadline.set_experiment(f"search-{time.time_ns()}")

    @threadline.trace(span_type="AGENT")
    def agent(question):
        threadline.update_current_trace(tags={"env": "prod"}, client_request_id="req-7")
        return question[::-1]

    agent("abc")
    agent("xyz")
    df = threadline.search_traces(order_by=["timestamp_ms ASC"])
    assert list(df.columns) == [
        "trace_id",
        "trace",
        "client_request_id",
        "state",
        "request_time",
        "execution_duration",
        "request",
        "response",
        "request_preview",
        "response_preview",
        "trace_metadata",
        "tags",
        "spans",
        "experiment_id",
        "run_id",
        "assessments",
        "expectations",
    ]
    assert list(df["response"]) == ["cba", "zyx"]
    assert list(df["client_request_id"]) == ["req-7", "req-7"]
    assert len(threadline.search_traces(max_results=1)) == 1
    hits = threadline.search_traces(
        filter_string="trace.request_preview LIKE '%xyz%' AND tags.env = 'prod'", return_type="list"
    )
    assert [t.data.root_span.outputs for t in hits] == ["zyx"]
    with pytest.raises(FilterSyntaxError, match="bogus"):
        threadline.search_traces(filter_string="trace.bogus = 1")
    with pytest.raises(InvalidArgumentError, match="return_type"):
        threadline.search_traces(return_type="dict")


def test_delete_traces_by_time_count_and_ids(client):
    experiment_id = client.create_experiment(f"delete-{time.time_ns()}")
    ids = []
    for i in range(6):
        with threadline.start_span(
            f"t{i}", trace_destination=ExperimentLocation(experiment_id)
        ) as s:
            ids.append(s.trace_id)
        time.sleep(0.002)
    current_time = int(time.time() * 1000)
    deleted = client.delete_traces(
        experiment_id=experiment_id, max_timestamp_millis=current_time, max_traces=2
    )
    assert deleted == 2
    remaining = {t.info.trace_id for t in client.search_traces(experiment_ids=[experiment_id])}
    assert remaining == set(ids[2:])  # the oldest went first
    assert client.delete_traces(experiment_id, trace_ids=[ids[5]]) == 1
    assert client.get_trace(ids[5]) is None
    assert client.delete_traces(experiment_id, max_timestamp_millis=current_time) == 3


def test_trace_tags_after_the_fact(client):
    with threadline.start_span("tagged") as span:
        pass
    client.set_trace_tag(span.trace_id, "reviewed", "yes")
    assert client.get_trace(span.trace_id).info.tags == {"reviewed": "yes"}
    client.delete_trace_tag(span.trace_id, "reviewed")
    assert client.get_trace(span.trace_id).info.tags == {}


def test_client_pages_with_page_token(client):
    experiment_id = client.create_experiment(f"paging-{time.time_ns()}")
    for i in range(25):
        with threadline.start_span(f"p{i}", trace_destination=ExperimentLocation(experiment_id)):
            pass
    seen, token = [], None
    while True:
        page = client.search_traces(
            experiment_ids=[experiment_id], max_results=10, page_token=token, include_spans=False
        )
        seen.extend(t.info.trace_id for t in page)
        token = page.token
        if token is None:
            break
    assert len(seen) == len(set(seen)) == 25


def test_low_level_client_api(client):
    root = client.start_trace("callback-root", span_type="CHAIN", inputs={"q": 1}, tags={"k": "v"})
    child = client.start_span(
        "llm", trace_id=root.trace_id, parent_id=root.span_id, inputs={"p": 2}
    )
    client.end_span(root.trace_id, child.span_id, outputs={"text": "hi"}, attributes={"model": "m"})
    dangling = client.start_span("left-open", trace_id=root.trace_id, parent_id=root.span_id)
    client.end_trace(root.trace_id, outputs={"answer": 3})
    trace = client.get_trace(root.trace_id)
    spans = {s.name: s for s in trace.data.spans}
    assert spans["llm"].parent_id == root.span_id and spans["llm"].outputs == {"text": "hi"}
    assert spans["llm"].attributes == {"model": "m"}
    assert spans["left-open"].end_time_ns is not None and dangling.is_ended
    assert trace.info.tags == {"k": "v"} and trace.data.root_span.outputs == {"answer": 3}
    assert threadline.get_current_active_span() is None
    with pytest.raises(InvalidArgumentError, match="No open span"):
        client.end_span(root.trace_id, child.span_id)


def test_trace_json_round_trip_from_store(client):
    with threadline.start_span("rt") as span:
        span.set_inputs({"a": [1, 2]})
    trace = client.get_trace(span.trace_id)
    assert type(trace).from_json(trace.to_json()) == trace
