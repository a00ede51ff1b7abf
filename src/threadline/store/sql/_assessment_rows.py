"""Pure: assessments to ``assessments`` rows and back (no SQL here).

A row keeps the value as JSON text and, for the filters and the overview, in a typed
column: ``value_number`` for numbers and booleans (1.0 / 0.0), ``value_text`` for strings;
``value_type`` says which. A feedback holding an error has no value columns set.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from threadline import _json as fast_json
from threadline.entities.assessment import (
    Assessment,
    AssessmentError,
    Expectation,
    Feedback,
    stored_assessment,
)
from threadline.errors import InvalidArgumentError
from threadline.store import tables as t

#: The ``assessments`` columns ``assessment_from_row`` unpacks, in this order.
ASSESSMENT_COLUMNS = (
    "assessment_id",
    "trace_id",
    "kind",
    "name",
    "value_json",
    "error_json",
    "source_type",
    "source_id",
    "rationale",
    "metadata_json",
    "span_id",
    "run_id",
    "overrides",
    "valid",
    "create_time_ms",
    "last_update_time_ms",
)
ASSESSMENT_SELECT = [t.assessments.c[name] for name in ASSESSMENT_COLUMNS]
_IDS: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
#: The assessments of the traces ``ids``, oldest first (``assessment_from_row`` rows).
ASSESSMENTS_OF_TRACES = (
    sa.select(*ASSESSMENT_SELECT)
    .where(t.assessments.c.trace_id.in_(_IDS))
    .order_by(t.assessments.c.create_time_ms, t.assessments.c.assessment_id)
)


def new_assessment_id() -> str:
    return "a-" + uuid.uuid4().hex


def checked(assessment: Any, what: str = "assessment") -> Assessment:
    """``assessment`` if it is a ``Feedback`` or an ``Expectation`` (checked again: its
    fields may have been changed since it was made)."""
    if not isinstance(assessment, (Feedback, Expectation)):
        raise InvalidArgumentError(
            f"{what} must be a Feedback or an Expectation, got {type(assessment).__name__}."
        )
    assessment._check()
    return assessment


def value_columns(assessment: Assessment) -> dict[str, Any]:
    """The value and error columns of a row for ``assessment``."""
    value = assessment.value
    columns: dict[str, Any] = {
        "value_type": None,
        "value_number": None,
        "value_text": None,
        "value_json": assessment.value_json,
        "error_json": None,
    }
    if assessment.error is not None:
        columns["error_json"] = json.dumps(assessment.error.to_dict(), ensure_ascii=False)
    if value is None:
        return columns
    if isinstance(value, bool):
        columns.update(value_type="boolean", value_number=1.0 if value else 0.0)
    elif isinstance(value, (int, float)):
        columns.update(value_type="number", value_number=float(value))
    elif isinstance(value, str):
        columns.update(value_type="string", value_text=value)
    else:
        columns["value_type"] = "json"
    return columns


def row_values(
    assessment: Assessment, trace_id: str, assessment_id: str, now: int
) -> dict[str, Any]:
    """A whole new row."""
    created = assessment.create_time_ms if assessment.create_time_ms is not None else now
    return {
        "assessment_id": assessment_id,
        "trace_id": trace_id,
        "kind": assessment.kind,
        "name": assessment.name,
        **value_columns(assessment),
        "source_type": assessment.source.source_type,
        "source_id": assessment.source.source_id,
        "rationale": assessment.rationale,
        "metadata_json": metadata_text(assessment),
        "span_id": assessment.span_id,
        "run_id": assessment.run_id,
        "overrides": assessment.overrides,
        "valid": assessment.valid,
        "create_time_ms": created,
        "last_update_time_ms": max(created, now),
    }


def metadata_text(assessment: Assessment) -> str:
    return _dumps(assessment.metadata)


def assessment_from_row(row: Sequence[Any]) -> Assessment:
    """An entity from an ``ASSESSMENT_COLUMNS`` row (not checked again: see
    ``stored_assessment``)."""
    (
        assessment_id,
        trace_id,
        kind,
        name,
        value_json,
        error_json,
        source_type,
        source_id,
        rationale,
        metadata_json,
        span_id,
        run_id,
        overrides,
        valid,
        create_time_ms,
        last_update_time_ms,
    ) = row
    error = _loads(error_json)
    return stored_assessment(
        kind,
        source_type,
        source_id,
        name=name,
        value=_loads(value_json),
        error=None if error is None else AssessmentError(**error),
        trace_id=trace_id,
        run_id=run_id,
        rationale=rationale,
        metadata=_loads(metadata_json) or {},
        span_id=span_id,
        create_time_ms=int(create_time_ms),
        last_update_time_ms=int(last_update_time_ms),
        assessment_id=assessment_id,
        overrides=overrides,
        valid=bool(valid),
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else fast_json.loads(text)
