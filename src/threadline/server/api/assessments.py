"""``/api/v1/traces/{trace_id}/assessments``: log, list, get, update, override, delete.

Rights follow the trace's experiment, as for traces: reading needs read access to it,
writing write access; a trace in an experiment the token cannot see is a 404, so a token
learns nothing about it. Bad values are a 400 from the store, before anything is written.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from threadline.entities.assessment import (
    Assessment,
    AssessmentError,
    AssessmentSource,
    Expectation,
    Feedback,
)
from threadline.errors import InvalidArgumentError, ResourceNotFoundError
from threadline.server.api import PathId, PrincipalDep, StoreDep, json_response
from threadline.server.api.assessment_schemas import (
    AssessmentErrorIn,
    AssessmentList,
    AssessmentResponse,
    AssessmentSourceIn,
    LogAssessment,
    OverrideFeedback,
    UpdateAssessment,
)
from threadline.server.api.schemas import DeletedCount
from threadline.server.auth import Principal
from threadline.store.base import Store

router = APIRouter(prefix="/traces/{trace_id}/assessments", tags=["assessments"])


@router.post("", status_code=201, response_model=AssessmentResponse)
def log_assessment(
    trace_id: PathId, body: LogAssessment, store: StoreDep, who: PrincipalDep
) -> Response:
    """Add a feedback or an expectation to the trace; answers it as stored (201)."""
    _writable(store, who, trace_id)
    stored = store.log_assessment(trace_id, _new_assessment(body))
    return _one(stored, 201)


@router.get("", response_model=AssessmentList)
def list_assessments(trace_id: PathId, store: StoreDep, who: PrincipalDep) -> Response:
    """Every assessment of the trace, overridden ones too (``valid: false``), oldest first."""
    _readable(store, who, trace_id)
    found = store.list_assessments(trace_id)
    return json_response({"assessments": [a.to_dict() for a in found]})


@router.get("/{assessment_id}", response_model=AssessmentResponse)
def get_assessment(
    trace_id: PathId, assessment_id: PathId, store: StoreDep, who: PrincipalDep
) -> Response:
    _readable(store, who, trace_id)
    return _one(store.get_assessment(trace_id, assessment_id))


@router.patch("/{assessment_id}", response_model=AssessmentResponse)
def update_assessment(
    trace_id: PathId,
    assessment_id: PathId,
    body: UpdateAssessment,
    store: StoreDep,
    who: PrincipalDep,
) -> Response:
    """Change an assessment in place (the fields given); its history is not kept: to
    correct a feedback and keep the old one, override it."""
    _writable(store, who, trace_id)
    current = store.get_assessment(trace_id, assessment_id)
    updated = store.update_assessment(trace_id, assessment_id, _patched(current, body))
    return _one(updated)


@router.post("/{assessment_id}/override", status_code=201, response_model=AssessmentResponse)
def override_feedback(
    trace_id: PathId,
    assessment_id: PathId,
    body: OverrideFeedback,
    store: StoreDep,
    who: PrincipalDep,
) -> Response:
    """A new feedback in place of this one, which stays with ``valid: false`` (201)."""
    _writable(store, who, trace_id)
    feedback = Feedback(
        value=body.value,
        error=_error(body.error),
        rationale=body.rationale,
        source=_source(body.source),
        metadata=body.metadata,
    )
    return _one(store.override_feedback(trace_id, assessment_id, feedback), 201)


@router.delete("/{assessment_id}", response_model=DeletedCount)
def delete_assessment(
    trace_id: PathId, assessment_id: PathId, store: StoreDep, who: PrincipalDep
) -> Response:
    """Delete one assessment (the one it overrode becomes valid again if it was current)."""
    _writable(store, who, trace_id)
    store.delete_assessment(trace_id, assessment_id)
    return json_response({"deleted": 1})


def _one(assessment: Assessment, status: int = 200) -> Response:
    return json_response({"assessment": assessment.to_dict()}, status)


def _readable(store: Store, who: Principal, trace_id: str) -> str:
    """The trace's experiment, or 404 when there is no such trace for this token."""
    info = store.get_trace_info(trace_id)
    if info is None or not who.can_read(info.experiment_id):
        raise ResourceNotFoundError(f"No trace with id {trace_id!r}.")
    return info.experiment_id


def _writable(store: Store, who: Principal, trace_id: str) -> None:
    who.require_write(_readable(store, who, trace_id))


def _source(source: AssessmentSourceIn | None) -> AssessmentSource | None:
    return None if source is None else AssessmentSource(source.source_type, source.source_id)


def _error(error: AssessmentErrorIn | None) -> AssessmentError | None:
    if error is None:
        return None
    return AssessmentError(error.error_code, error.error_message, error.stack_trace)


def _new_assessment(body: LogAssessment) -> Assessment:
    common: dict[str, Any] = {
        "name": body.name,
        "source": _source(body.source),
        "metadata": body.metadata,
        "span_id": body.span_id,
        "run_id": body.run_id,
        "overrides": body.overrides,
        "create_time_ms": body.create_time_ms,
    }
    if body.kind == "expectation":
        if body.error is not None or body.rationale is not None:
            raise InvalidArgumentError("An expectation takes neither an error nor a rationale.")
        return Expectation(value=body.value, **common)
    return Feedback(value=body.value, error=_error(body.error), rationale=body.rationale, **common)


def _patched(current: Assessment, body: UpdateAssessment) -> Assessment:
    """``current`` with the fields the body gives."""
    given = body.model_fields_set
    value, error = current.value, current.error
    if body.value is not None and body.error is not None:
        raise InvalidArgumentError("Give a value or an error, not both.")
    if body.value is not None:
        value, error = body.value, None
    elif body.error is not None:
        value, error = None, _error(body.error)
    common: dict[str, Any] = {
        "name": body.name if body.name is not None else current.name,
        "source": current.source,
        "metadata": body.metadata if "metadata" in given else current.metadata,
        "span_id": current.span_id,
        "run_id": current.run_id,
    }
    if current.kind == "expectation":
        if error is not None or ("rationale" in given and body.rationale is not None):
            raise InvalidArgumentError("An expectation takes neither an error nor a rationale.")
        return Expectation(value=value, **common)
    rationale = body.rationale if "rationale" in given else current.rationale
    return Feedback(value=value, error=error, rationale=rationale, **common)
