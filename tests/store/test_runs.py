"""Runs: lifecycle, params, metrics, tags and ``search_runs``."""

from __future__ import annotations

import math
import re

import pytest

from threadline.entities.run import Metric
from threadline.errors import (
    FilterSyntaxError,
    InvalidArgumentError,
    ResourceNotFoundError,
)
from threadline.store.sql import SqlStore


def test_create_and_get(store: SqlStore) -> None:
    run = store.create_run("0", run_name="first", start_time=5, tags={"t": "1"})
    assert re.fullmatch(r"[0-9a-f]{32}", run.info.run_id)
    assert (run.info.status, run.info.start_time, run.info.lifecycle_stage) == (
        "RUNNING",
        5,
        "active",
    )
    assert run.data.tags == {"t": "1"}
    assert store.get_run(run.info.run_id) == run


def test_a_default_run_name_and_start_time(store: SqlStore) -> None:
    run = store.create_run("0")
    assert run.info.run_name.startswith("run-") and run.info.start_time


def test_runs_need_an_active_experiment(store: SqlStore) -> None:
    with pytest.raises(ResourceNotFoundError):
        store.create_run("404")
    experiment_id = store.create_experiment("gone")
    store.delete_experiment(experiment_id)
    with pytest.raises(InvalidArgumentError, match="is deleted"):
        store.create_run(experiment_id)


def test_unknown_runs(store: SqlStore) -> None:
    for call in (
        lambda: store.get_run("f" * 32),
        lambda: store.update_run("f" * 32, status="FINISHED"),
        lambda: store.delete_run("f" * 32),
        lambda: store.log_params("f" * 32, {"a": "1"}),
        lambda: store.log_metrics("f" * 32, [Metric("m", 1.0, 1)]),
        lambda: store.set_run_tags("f" * 32, {"a": "1"}),
        lambda: store.delete_run_tag("f" * 32, "a"),
        lambda: store.get_metric_history("f" * 32, "m"),
    ):
        with pytest.raises(ResourceNotFoundError, match="No run with id"):
            call()


def test_update(store: SqlStore) -> None:
    run_id = store.create_run("0", run_name="a").info.run_id
    info = store.update_run(run_id, status="FINISHED", end_time=99, run_name="b")
    assert (info.status, info.end_time, info.run_name) == ("FINISHED", 99, "b")
    assert store.get_run(run_id).info == info
    assert store.update_run(run_id) == info
    with pytest.raises(InvalidArgumentError, match="Invalid run status"):
        store.update_run(run_id, status="DONE")


def test_delete_is_soft_and_freezes_the_run(store: SqlStore) -> None:
    run_id = store.create_run("0").info.run_id
    store.delete_run(run_id)
    assert store.get_run(run_id).info.lifecycle_stage == "deleted"
    assert store.search_runs(["0"])[0] == []
    with pytest.raises(InvalidArgumentError, match="is deleted"):
        store.log_params(run_id, {"a": "1"})


def test_params_are_immutable(store: SqlStore) -> None:
    run_id = store.create_run("0").info.run_id
    store.log_params(run_id, {"lr": "0.1", "layers": "2"})
    store.log_params(run_id, {"lr": "0.1"})
    with pytest.raises(InvalidArgumentError) as caught:
        store.log_params(run_id, {"lr": "0.2", "new": "x"})
    message = str(caught.value)
    assert "'lr'" in message and "'0.1'" in message and "'0.2'" in message
    assert store.get_run(run_id).data.params == {"lr": "0.1", "layers": "2"}


def test_param_values_are_validated(store: SqlStore) -> None:
    run_id = store.create_run("0").info.run_id
    with pytest.raises(InvalidArgumentError, match="must be a string"):
        store.log_params(run_id, {"lr": 0.1})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        store.log_params(run_id, {"": "x"})


def test_metrics_keep_history_and_the_latest_by_step_then_time(store: SqlStore) -> None:
    run_id = store.create_run("0").info.run_id
    store.log_metrics(run_id, [Metric("loss", 1.0, timestamp=10, step=0)])
    store.log_metrics(
        run_id,
        [Metric("loss", 0.5, timestamp=5, step=2), Metric("loss", 0.7, timestamp=50, step=1)],
    )
    store.log_metrics(run_id, [Metric("acc", 0.9, timestamp=1), Metric("loss", 0.4, 6, step=2)])
    assert store.get_run(run_id).data.metrics == {"loss": 0.4, "acc": 0.9}
    history = store.get_metric_history(run_id, "loss")
    assert [(m.step, m.timestamp, m.value) for m in history] == [
        (0, 10, 1.0),
        (1, 50, 0.7),
        (2, 5, 0.5),
        (2, 6, 0.4),
    ]
    assert store.get_metric_history(run_id, "missing") == []


def test_nan_and_infinite_metrics(store: SqlStore) -> None:
    run_id = store.create_run("0").info.run_id
    store.log_metrics(run_id, [Metric("a", math.nan, 1), Metric("b", math.inf, 1)])
    metrics = store.get_run(run_id).data.metrics
    assert math.isnan(metrics["a"]) and metrics["b"] == math.inf
    assert math.isnan(store.get_metric_history(run_id, "a")[0].value)


@pytest.mark.parametrize(
    "metric",
    [Metric("m", "high", 1), Metric("m", True, 1), Metric("m", 1.0, 1.5), Metric("", 1.0, 1)],  # type: ignore[arg-type]
)
def test_bad_metrics_are_refused(store: SqlStore, metric: Metric) -> None:
    run_id = store.create_run("0").info.run_id
    with pytest.raises(InvalidArgumentError):
        store.log_metrics(run_id, [metric])


def test_run_tags(store: SqlStore) -> None:
    run_id = store.create_run("0", tags={"a": "1"}).info.run_id
    store.set_run_tags(run_id, {"a": "2", "b": "3"})
    store.delete_run_tag(run_id, "b")
    store.delete_run_tag(run_id, "never-set")
    assert store.get_run(run_id).data.tags == {"a": "2"}


@pytest.fixture
def runs(store: SqlStore) -> dict[str, str]:
    """Three runs in experiment 1 and one in experiment 0."""
    experiment_id = store.create_experiment("e")
    ids = {}
    for n, (status, lr, acc) in enumerate(
        [("RUNNING", "1", 0.4), ("FINISHED", "2", 0.8), ("FAILED", "1", 0.6)]
    ):
        run = store.create_run(
            experiment_id, run_name=f"run{n}", start_time=100 + n, tags={"k": f"v{n}"}
        )
        store.log_params(run.info.run_id, {"lr": lr})
        store.log_metrics(run.info.run_id, [Metric("acc", acc, 1)])
        if status != "RUNNING":
            store.update_run(run.info.run_id, status=status, end_time=200 + n)
        ids[f"run{n}"] = run.info.run_id
    store.create_run("0", run_name="elsewhere")
    return ids


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        (None, ["run2", "run1", "run0"]),
        ("status = 'RUNNING'", ["run0"]),
        ("attributes.status != 'running'", ["run2", "run1"]),
        ("params.lr = '1'", ["run2", "run0"]),
        ("tags.k = 'v1'", ["run1"]),
        ("metrics.acc > 0.5", ["run2", "run1"]),
        ("metrics.acc >= 0.6 AND params.lr = '1'", ["run2"]),
        ("run_name = 'run1'", ["run1"]),
        ("run_name LIKE 'run%' AND start_time > 100", ["run2", "run1"]),
        ("end_time < 202", ["run1"]),
        ("metrics.missing > 0", []),
    ],
)
def test_search_runs(
    store: SqlStore, runs: dict[str, str], filter_string: str | None, expected: list[str]
) -> None:
    experiment_id = store.get_experiment_by_name("e").experiment_id  # type: ignore[union-attr]
    found, _ = store.search_runs([experiment_id], filter_string=filter_string)
    assert [r.info.run_name for r in found] == expected


def test_search_runs_order_and_pages(store: SqlStore, runs: dict[str, str]) -> None:
    experiment_id = store.get_experiment_by_name("e").experiment_id  # type: ignore[union-attr]
    found, _ = store.search_runs([experiment_id], order_by=["run_name ASC"])
    assert [r.info.run_name for r in found] == ["run0", "run1", "run2"]
    first, token = store.search_runs([experiment_id, "0"], max_results=3)
    second, end = store.search_runs([experiment_id, "0"], max_results=3, page_token=token)
    assert len(first) == 3 and len(second) == 1 and end is None
    with_data = [r for r in first if r.info.run_name.startswith("run")]
    assert all(r.data.params and r.data.metrics and r.data.tags for r in with_data)


@pytest.mark.parametrize(
    ("filter_string", "message"),
    [
        ("metrics.acc LIKE '1'", "not supported for numeric field"),
        ("status = 'DONE'", "use one of RUNNING, FINISHED, FAILED, KILLED"),
        ("trace.status = 'OK'", "unknown field 'trace.status'"),
        ("params.lr = 1", "takes a quoted string"),
    ],
)
def test_bad_run_filters(store: SqlStore, filter_string: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError, match=message):
        store.search_runs(["0"], filter_string=filter_string)
