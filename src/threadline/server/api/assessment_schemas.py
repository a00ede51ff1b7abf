"""Request and response bodies of the assessment, session and overview routes (pydantic).

The assessment shape itself (``AssessmentOut``) is in ``schemas.py``: every trace info
carries its assessments. Inputs are bounded as the store's are (250-character names,
100,000-character texts); an assessment's ``value`` is any JSON, checked by the store.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from threadline.server.api.schemas import (
    INT64_MAX,
    AssessmentKind,
    AssessmentOut,
    Id,
    Key,
    OrderBy,
    Text,
    TraceInfoOut,
    _In,
    storable_text,
)

# --- assessments -----------------------------------------------------------------------

LongText = Annotated[str, Field(max_length=100_000), AfterValidator(storable_text)]
NonNegative64 = Annotated[int, Field(ge=0, le=INT64_MAX)]


class AssessmentSourceIn(_In):
    """Who made an assessment: ``HUMAN``, ``LLM_JUDGE`` (or ``AI_JUDGE``) or ``CODE``."""

    source_type: Annotated[str, Field(min_length=1, max_length=32)] = "CODE"
    source_id: Key = "default"


class AssessmentErrorIn(_In):
    """Why a feedback has no value."""

    error_code: Key
    error_message: LongText | None = None
    stack_trace: LongText | None = None


class LogAssessment(_In):
    """A new feedback (``value`` or ``error``) or expectation (``value``) of the trace.

    ``value`` is any JSON: a boolean, number or string, or a list/object of those (numbers
    finite, nested at most 20 levels, at most 1,000,000 characters as JSON).
    """

    kind: AssessmentKind = "feedback"
    name: Key = "feedback"
    value: Any = None
    error: AssessmentErrorIn | None = None
    source: AssessmentSourceIn | None = None
    rationale: LongText | None = None
    metadata: dict[Key, Any] | None = None
    span_id: Id | None = None
    run_id: Id | None = None
    overrides: Id | None = None
    create_time_ms: NonNegative64 | None = None


class UpdateAssessment(_In):
    """The fields to replace; those left out keep their value. For a feedback, a ``value``
    replaces an ``error`` and the other way round (give one, not both)."""

    name: Key | None = None
    value: Any = None
    error: AssessmentErrorIn | None = None
    rationale: LongText | None = None
    metadata: dict[Key, Any] | None = None


class OverrideFeedback(_In):
    """The new feedback's value or error (and rationale, source, metadata); it takes the old
    one's name and span, and the old one stays with ``valid: false``."""

    value: Any = None
    error: AssessmentErrorIn | None = None
    rationale: LongText | None = None
    source: AssessmentSourceIn | None = None
    metadata: dict[Key, Any] | None = None


class AssessmentResponse(BaseModel):
    assessment: AssessmentOut


class AssessmentList(BaseModel):
    assessments: list[AssessmentOut]


# --- sessions and overview -------------------------------------------------------------


class FeedbackSummaryOut(BaseModel):
    """The valid feedback of one name: ``count`` with a value, ``error_count`` with an
    error, ``mean`` of the numeric values, ``share_true`` of the boolean ones."""

    name: str
    count: int
    error_count: int
    mean: float | None
    share_true: float | None


class SessionOut(BaseModel):
    """A session: the traces of one experiment sharing a ``session_id`` metadata value.

    Times are the start times (ms) of its first and last trace; ``turns`` counts its
    traces; ``cost`` is in USD (``null`` when no trace had a known cost); ``traces`` are
    in time order (empty in lists unless ``include_traces``).
    """

    session_id: str
    experiment_id: str
    user: str | None
    first_time_ms: int
    last_time_ms: int
    turns: int
    error_count: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float | None
    feedback: list[FeedbackSummaryOut]
    traces: list[TraceInfoOut]


class SessionList(BaseModel):
    sessions: list[SessionOut]
    next_page_token: str | None


class SessionResponse(BaseModel):
    session: SessionOut


class SearchSessions(_In):
    experiment_ids: Annotated[list[Id], Field(max_length=400)] | None = None
    filter_string: Text | None = None
    max_results: Annotated[int, Field(ge=1, le=10_000)] = 100
    order_by: OrderBy | None = None
    page_token: Text | None = None
    include_traces: bool = False


class OverviewBucketOut(BaseModel):
    """The traces that started in ``[start_time_ms, start_time_ms + bucket_ms)``: latency
    percentiles in ms (nearest rank, within 2.5%; ``null`` without finished traces),
    ``error_rate`` (``null`` without traces), ``cost`` in USD, feedback by name."""

    start_time_ms: int
    trace_count: int
    error_count: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float
    feedback: list[FeedbackSummaryOut]


class OverviewOut(BaseModel):
    """Every bucket of ``[start_time_ms, end_time_ms)`` in order (empty ones zero-filled),
    buckets starting on UTC hours or days, and ``totals`` over the whole range."""

    experiment_id: str
    bucket: Literal["hour", "day"]
    bucket_ms: int
    start_time_ms: int
    end_time_ms: int
    filter_string: str | None
    buckets: list[OverviewBucketOut]
    totals: OverviewBucketOut


class OverviewResponse(BaseModel):
    overview: OverviewOut
