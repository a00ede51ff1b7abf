"""``GET /api/v1/stats/experiments``: trace counts, error rate and last activity per experiment.

The web UI's experiments page needs these for every experiment at once; the store has no
method for them, so this module reads the ``traces`` summary table directly with one
``GROUP BY`` (SQLAlchemy Core, read-only, bound parameters). It never reads span bodies.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.responses import Response

from threadline.server.api import ERRORS, PrincipalDep, StoreDep, json_response
from threadline.server.api.schemas import Id
from threadline.store import tables as t
from threadline.store.base import Store

router = APIRouter(prefix="/api/v1/stats", tags=["stats"], responses=ERRORS)


class ExperimentStats(BaseModel):
    """The summary of one experiment's traces."""

    experiment_id: str
    trace_count: int
    error_count: int
    in_progress_count: int
    error_rate: float | None
    last_activity_ms: int | None


class ExperimentStatsList(BaseModel):
    stats: list[ExperimentStats]


@router.get("/experiments", response_model=ExperimentStatsList)
def experiment_stats(
    store: StoreDep,
    who: PrincipalDep,
    experiment_id: Annotated[list[Id] | None, Query(max_length=1000)] = None,
) -> Response:
    """Stats of the given experiments (``experiment_id`` repeats), else of every visible one."""
    ids = who.readable_ids(experiment_id)
    return json_response({"stats": trace_stats(store, ids)})


def trace_stats(store: Store, experiment_ids: list[str] | None) -> list[dict[str, Any]]:
    """One row per experiment that has traces (``None``: every experiment)."""
    engine: sa.Engine | None = getattr(store, "engine", None)
    if engine is None:  # not a SQL store: no aggregates to offer
        return [_stats(e, None) for e in experiment_ids or []]
    tr = t.traces
    # In NUMERIC: a row with an absurd time (stored before times were checked) must not
    # overflow 64-bit arithmetic and fail the whole page.
    ended = sa.cast(tr.c.request_time, sa.Numeric) + sa.cast(
        sa.func.coalesce(tr.c.execution_duration, 0), sa.Numeric
    )
    query = sa.select(
        tr.c.experiment_id,
        sa.func.count().label("trace_count"),
        sa.func.sum(sa.case((tr.c.state == "ERROR", 1), else_=0)).label("error_count"),
        sa.func.sum(sa.case((tr.c.state == "IN_PROGRESS", 1), else_=0)).label("in_progress"),
        sa.func.max(ended).label("last_activity"),
    ).group_by(tr.c.experiment_id)
    if experiment_ids is not None:
        query = query.where(tr.c.experiment_id.in_(experiment_ids))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    found = {str(row.experiment_id): row for row in rows}
    wanted = experiment_ids if experiment_ids is not None else sorted(found)
    return [_stats(experiment_id, found.get(experiment_id)) for experiment_id in wanted]


def _stats(experiment_id: str, row: Any) -> dict[str, Any]:
    count = int(row.trace_count) if row is not None else 0
    errors = int(row.error_count or 0) if row is not None else 0
    return {
        "experiment_id": experiment_id,
        "trace_count": count,
        "error_count": errors,
        "in_progress_count": int(row.in_progress or 0) if row is not None else 0,
        "error_rate": errors / count if count else None,
        "last_activity_ms": _int64(row.last_activity) if row is not None else None,
    }


def _int64(value: Any) -> int | None:
    """A stored time as a 64-bit integer (clamped: JSON readers cannot take more)."""
    if value is None:
        return None
    return max(-(2**63), min(int(value), 2**63 - 1))
