"""``/api/v1/runs``: create, get, update, delete, log params/metrics/tags in a batch, search."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from threadline.entities.run import Metric, Run
from threadline.errors import ResourceNotFoundError
from threadline.server.api import PathId, PrincipalDep, QueryKey, StoreDep, json_response, page
from threadline.server.api.schemas import (
    CreateRun,
    LogRunBatch,
    MetricHistory,
    RunInfoResponse,
    RunList,
    RunResponse,
    SearchRuns,
    UpdateRun,
)
from threadline.server.auth import Principal
from threadline.store.base import Store

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post("", status_code=201, response_model=RunResponse)
def create_run(body: CreateRun, store: StoreDep, who: PrincipalDep) -> Response:
    """Start a run (status RUNNING) in an active experiment."""
    who.require_write(body.experiment_id)
    run = store.create_run(
        body.experiment_id,
        run_name=body.run_name,
        start_time=body.start_time,
        tags=body.tags,
        parent_run_id=body.parent_run_id,
    )
    return json_response({"run": run_dict(run)}, 201)


@router.post("/search", response_model=RunList)
def search_runs(body: SearchRuns, store: StoreDep, who: PrincipalDep) -> Response:
    """Active runs of the experiments matching a filter such as ``metrics.m > 0.5``."""
    runs, token = store.search_runs(
        who.readable_ids(body.experiment_ids) or [],
        filter_string=body.filter_string,
        max_results=body.max_results,
        order_by=body.order_by,
        page_token=body.page_token,
    )
    return page("runs", [run_dict(r) for r in runs], token)


@router.get("/{run_id}", response_model=RunResponse)
def get_run(run_id: PathId, store: StoreDep, who: PrincipalDep) -> Response:
    return json_response({"run": run_dict(_visible_run(store, who, run_id))})


@router.patch("/{run_id}", response_model=RunInfoResponse)
def update_run(run_id: PathId, body: UpdateRun, store: StoreDep, who: PrincipalDep) -> Response:
    """Change the status, end time or name."""
    _writable_run(store, who, run_id)
    info = store.update_run(
        run_id, status=body.status, end_time=body.end_time, run_name=body.run_name
    )
    return json_response({"run_info": dataclasses.asdict(info)})


@router.delete("/{run_id}", response_model=RunResponse)
def delete_run(run_id: PathId, store: StoreDep, who: PrincipalDep) -> Response:
    _writable_run(store, who, run_id)
    store.delete_run(run_id)
    return json_response({"run": run_dict(store.get_run(run_id))})


@router.post("/{run_id}/log-batch", response_model=RunResponse)
def log_batch(run_id: PathId, body: LogRunBatch, store: StoreDep, who: PrincipalDep) -> Response:
    """Log params, metrics and tags at once (params are immutable: a changed value is a 400)."""
    _writable_run(store, who, run_id)
    if body.params:
        store.log_params(run_id, body.params)
    if body.metrics:
        metrics = [Metric(m.key, m.value, m.timestamp, m.step) for m in body.metrics]
        store.log_metrics(run_id, metrics)
    if body.tags:
        store.set_run_tags(run_id, body.tags)
    return json_response({"run": run_dict(store.get_run(run_id))})


@router.delete("/{run_id}/tags", response_model=RunResponse)
def delete_run_tag(run_id: PathId, key: QueryKey, store: StoreDep, who: PrincipalDep) -> Response:
    _writable_run(store, who, run_id)
    store.delete_run_tag(run_id, key)
    return json_response({"run": run_dict(store.get_run(run_id))})


@router.get("/{run_id}/metrics/history", response_model=MetricHistory)
def get_metric_history(
    run_id: PathId, key: QueryKey, store: StoreDep, who: PrincipalDep
) -> Response:
    """Every logged value of one metric, by step then timestamp."""
    _visible_run(store, who, run_id)
    history = store.get_metric_history(run_id, key)
    return json_response({"metrics": [dataclasses.asdict(m) for m in history]})


def run_dict(run: Run) -> dict[str, Any]:
    return run.to_dict()


def _visible_run(store: Store, who: Principal, run_id: str) -> Run:
    """The run, or 404 when it does not exist or is in an experiment the token cannot see."""
    run = store.get_run(run_id)
    if not who.can_read(run.info.experiment_id):
        raise ResourceNotFoundError(f"No run with id {run_id!r}.")
    return run


def _writable_run(store: Store, who: Principal, run_id: str) -> None:
    who.require_write(_visible_run(store, who, run_id).info.experiment_id)
