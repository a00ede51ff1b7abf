"""``GET /api/v1/experiments/{experiment_id}/overview``: figures per UTC hour or day.

Per bucket: trace count, error count and rate, latency p50/p95, tokens, cost and, per
feedback name, count, errors, mean and share true; every bucket of the range is present
(empty ones zero-filled) and ``totals`` covers the whole range. Read access to the
experiment is needed (403 otherwise, as for the experiment itself).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from threadline.server.api import PathId, PrincipalDep, StoreDep, json_response
from threadline.server.api.assessment_schemas import OverviewResponse
from threadline.server.api.schemas import Text

router = APIRouter(prefix="/experiments", tags=["overview"])

TimeMs = Annotated[int, Query(gt=-(2**62), lt=2**62)]


@router.get("/{experiment_id}/overview", response_model=OverviewResponse)
def get_overview(
    experiment_id: PathId,
    store: StoreDep,
    who: PrincipalDep,
    bucket: Literal["hour", "day"] = "hour",
    start_time_ms: TimeMs | None = None,
    end_time_ms: TimeMs | None = None,
    filter_string: Annotated[Text | None, Query(max_length=10_000)] = None,
) -> Response:
    """The experiment's traces that started in ``[start_time_ms, end_time_ms)`` (widened to
    whole buckets; default: the last 24 hours, or 30 days with ``bucket=day``), matching
    ``filter_string`` if given; at most 1,000 buckets."""
    who.require_read(experiment_id)
    overview = store.get_overview(
        experiment_id,
        filter_string=filter_string,
        start_time_ms=start_time_ms,
        end_time_ms=end_time_ms,
        bucket=bucket,
    )
    return json_response({"overview": overview.to_dict()})
