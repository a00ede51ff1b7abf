"""``/api/v1/experiments``: create, get (by id or name), search, rename, delete, restore, tag."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator
from starlette.responses import Response

from threadline.entities.experiment import Experiment
from threadline.errors import ResourceNotFoundError
from threadline.server.api import PathId, PrincipalDep, StoreDep, json_response, page
from threadline.server.api.schemas import (
    CreateExperiment,
    ExperimentIdResponse,
    ExperimentList,
    ExperimentResponse,
    RenameExperiment,
    SetTag,
    storable_text,
)
from threadline.server.auth import Principal
from threadline.store import search
from threadline.store.base import Store

router = APIRouter(prefix="/experiments", tags=["experiments"])
STORE_PAGE = 1000

NameQuery = Annotated[str, Query(min_length=1, max_length=256), AfterValidator(storable_text)]
LikeQuery = Annotated[str | None, Query(max_length=256), AfterValidator(storable_text)]


@router.post("", status_code=201, response_model=ExperimentIdResponse)
def create_experiment(body: CreateExperiment, store: StoreDep, who: PrincipalDep) -> Response:
    """Create an experiment (409 if the name is taken)."""
    who.require_global_write()
    experiment_id = store.create_experiment(
        body.name, artifact_location=body.artifact_location, tags=body.tags
    )
    return json_response({"experiment_id": experiment_id}, 201)


@router.get("", response_model=ExperimentList)
def search_experiments(
    store: StoreDep,
    who: PrincipalDep,
    name_like: LikeQuery = None,
    include_deleted: bool = False,
    max_results: Annotated[int, Query(ge=1, le=50_000)] = 1000,
    page_token: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Experiments, newest first; ``name_like`` is a SQL LIKE pattern."""
    if who.scoped:
        found, token = _visible_page(
            store, who, name_like, include_deleted, max_results, page_token
        )
    else:
        found, token = store.search_experiments(
            name_like=name_like,
            include_deleted=include_deleted,
            max_results=max_results,
            page_token=page_token,
        )
    return page("experiments", [e.to_dict() for e in found], token)


@router.get("/by-name", response_model=ExperimentResponse)
def get_experiment_by_name(name: NameQuery, store: StoreDep, who: PrincipalDep) -> Response:
    """The experiment with this name (404 if none, or not visible to the token)."""
    experiment = store.get_experiment_by_name(name)
    if experiment is None or not who.can_read(experiment.experiment_id):
        raise ResourceNotFoundError(f"No experiment named {name!r}.")
    return _one(experiment)


@router.get("/{experiment_id}", response_model=ExperimentResponse)
def get_experiment(experiment_id: PathId, store: StoreDep, who: PrincipalDep) -> Response:
    who.require_read(experiment_id)
    return _one(store.get_experiment(experiment_id))


@router.patch("/{experiment_id}", response_model=ExperimentResponse)
def rename_experiment(
    experiment_id: PathId, body: RenameExperiment, store: StoreDep, who: PrincipalDep
) -> Response:
    """Rename (409 if the new name is taken)."""
    who.require_write(experiment_id)
    store.rename_experiment(experiment_id, body.new_name)
    return _one(store.get_experiment(experiment_id))


@router.delete("/{experiment_id}", response_model=ExperimentResponse)
def delete_experiment(experiment_id: PathId, store: StoreDep, who: PrincipalDep) -> Response:
    """Mark deleted (restorable); its traces and runs stay."""
    who.require_write(experiment_id)
    store.delete_experiment(experiment_id)
    return _one(store.get_experiment(experiment_id))


@router.post("/{experiment_id}/restore", response_model=ExperimentResponse)
def restore_experiment(experiment_id: PathId, store: StoreDep, who: PrincipalDep) -> Response:
    who.require_write(experiment_id)
    store.restore_experiment(experiment_id)
    return _one(store.get_experiment(experiment_id))


@router.post("/{experiment_id}/tags", response_model=ExperimentResponse)
def set_experiment_tag(
    experiment_id: PathId, body: SetTag, store: StoreDep, who: PrincipalDep
) -> Response:
    who.require_write(experiment_id)
    store.set_experiment_tag(experiment_id, body.key, body.value)
    return _one(store.get_experiment(experiment_id))


def _one(experiment: Experiment) -> Response:
    return json_response({"experiment": experiment.to_dict()})


def _visible_page(
    store: Store,
    who: Principal,
    name_like: str | None,
    include_deleted: bool,
    max_results: int,
    page_token: str | None,
) -> tuple[list[Experiment], str | None]:
    """A page of the experiments a scoped token may see (paging over that subset)."""
    offset = search.decode_page_token(page_token)
    visible: list[Experiment] = []
    token: str | None = None
    while len(visible) <= offset + max_results:
        found, token = store.search_experiments(
            name_like=name_like,
            include_deleted=include_deleted,
            max_results=STORE_PAGE,
            page_token=token,
        )
        visible.extend(e for e in found if who.can_read(e.experiment_id))
        if token is None:
            break
    more = len(visible) > offset + max_results
    next_token = search.encode_page_token(offset + max_results) if more else None
    return visible[offset : offset + max_results], next_token
