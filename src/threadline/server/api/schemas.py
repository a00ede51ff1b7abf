"""Request and response bodies of the REST API (pydantic), apart from the table definitions.

Inputs are bounded where the database has bounds (64-bit integers, 250-character keys,
256-character experiment names), so a bad value is a 400 here, never a database error.
``SpanRowIn`` / ``TraceRowIn`` are the store's ``SpanRow`` / ``TraceRow`` field for field:
a remote SDK sends the rows its export pipeline already makes.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_KEY = 250  # store/tables.py MAX_KEY_LENGTH
MAX_VALUE = 8000  # store/tables.py MAX_VALUE_LENGTH
MAX_TOKENS = 10**12
MAX_IDS = 10_000
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: Any) -> Any:
    """Reject text no database stores faithfully (``None`` passes)."""
    if isinstance(value, str) and _UNSTORABLE.search(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


Text = Annotated[str, AfterValidator(storable_text)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY), AfterValidator(storable_text)]
Value = Annotated[str, Field(max_length=MAX_VALUE), AfterValidator(storable_text)]
Id = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(storable_text)]
Name = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(storable_text)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
MaxResults = Annotated[int, Field(ge=1, le=50_000)]
OrderBy = Annotated[list[Annotated[str, Field(max_length=1000)]], Field(max_length=20)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore")  # rows from a newer SDK may carry new fields


# --- errors and health -----------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class Status(BaseModel):
    status: str


# --- experiments -----------------------------------------------------------------------


class CreateExperiment(_In):
    name: Name
    artifact_location: Text | None = None
    tags: dict[Key, Value] = Field(default_factory=dict)


class RenameExperiment(_In):
    new_name: Name


class SetTag(_In):
    key: Key
    value: Value


class ExperimentOut(BaseModel):
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: dict[str, str]
    creation_time: int | None
    last_update_time: int | None


class ExperimentIdResponse(BaseModel):
    experiment_id: str


class ExperimentResponse(BaseModel):
    experiment: ExperimentOut


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]
    next_page_token: str | None


# --- runs ------------------------------------------------------------------------------

RunStatusName = Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]


class CreateRun(_In):
    experiment_id: Id
    run_name: Key | None = None
    start_time: Int64 | None = None
    tags: dict[Key, Value] = Field(default_factory=dict)
    parent_run_id: Id | None = None


class UpdateRun(_In):
    status: RunStatusName | None = None
    end_time: Int64 | None = None
    run_name: Key | None = None


class MetricIn(_In):
    key: Key
    value: float
    timestamp: Int64
    step: Int64 = 0


class LogRunBatch(_In):
    params: dict[Key, Value] = Field(default_factory=dict)
    metrics: Annotated[list[MetricIn], Field(max_length=MAX_IDS)] = Field(default_factory=list)
    tags: dict[Key, Value] = Field(default_factory=dict)


class SearchRuns(_In):
    experiment_ids: Annotated[list[Id], Field(min_length=1, max_length=400)]
    filter_string: Text | None = None
    max_results: MaxResults = 1000
    order_by: OrderBy | None = None
    page_token: Text | None = None


class RunInfoOut(BaseModel):
    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    parent_run_id: str | None


class RunDataOut(BaseModel):
    params: dict[str, str]
    metrics: dict[str, float | str]  # "NaN" / "Infinity" for non-finite values
    tags: dict[str, str]


class RunOut(BaseModel):
    info: RunInfoOut
    data: RunDataOut


class RunResponse(BaseModel):
    run: RunOut


class RunInfoResponse(BaseModel):
    run_info: RunInfoOut


class RunList(BaseModel):
    runs: list[RunOut]
    next_page_token: str | None


class MetricOut(BaseModel):
    key: str
    value: float | str
    timestamp: int
    step: int


class MetricHistory(BaseModel):
    metrics: list[MetricOut]


# --- assessments (the shape every trace info carries) ------------------------------

AssessmentKind = Literal["feedback", "expectation"]


class AssessmentSourceOut(BaseModel):
    source_type: str
    source_id: str


class AssessmentErrorOut(BaseModel):
    error_code: str
    error_message: str | None
    stack_trace: str | None


class AssessmentOut(BaseModel):
    """A feedback or an expectation, as stored."""

    assessment_id: str
    trace_id: str
    kind: AssessmentKind
    name: str
    value: Any  # null for a feedback that holds an error
    error: AssessmentErrorOut | None
    source: AssessmentSourceOut
    rationale: str | None
    metadata: dict[str, Any]
    span_id: str | None
    run_id: str | None
    overrides: str | None  # the assessment this one replaced
    valid: bool  # false once overridden
    create_time_ms: int
    last_update_time_ms: int


# --- traces ----------------------------------------------------------------------------


class SpanRowIn(_Row):
    """``store.base.SpanRow``: one finished span, payloads as JSON text."""

    trace_id: Id
    span_id: Id
    parent_id: Id | None = None
    name: str
    span_type: Annotated[str, Field(max_length=256)] = "UNKNOWN"
    start_time_ns: Int64
    end_time_ns: Int64 | None = None
    status_code: Literal["OK", "ERROR", "UNSET"] = "UNSET"
    status_message: str = ""
    inputs_json: str = "null"
    outputs_json: str = "null"
    attributes_json: str = "{}"
    events_json: str = "[]"
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    total_tokens: Tokens | None = None


class TraceRowIn(_Row):
    """``store.base.TraceRow``: the state of a trace (started, or finished)."""

    trace_id: Id
    experiment_id: Id
    request_time: Int64
    state: Literal["OK", "ERROR", "IN_PROGRESS"]
    execution_duration: Int64 | None = None
    name: str | None = None
    request_preview: str | None = None
    response_preview: str | None = None
    client_request_id: str | None = None
    run_id: Id | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)


class LogTraces(_In):
    traces: list[TraceRowIn] = Field(default_factory=list)
    spans: list[SpanRowIn] = Field(default_factory=list)


class LogTracesResponse(BaseModel):
    traces: int
    spans: int
    written: bool  # False: queued, not yet written (x-threadline-ack: queued)


class SearchTraces(_In):
    experiment_ids: Annotated[list[Id], Field(max_length=400)] | None = None
    filter_string: Text | None = None
    max_results: MaxResults = 100
    order_by: OrderBy | None = None
    page_token: Text | None = None
    run_id: Id | None = None
    include_spans: bool = True


class DeleteTraces(_In):
    experiment_id: Id
    max_timestamp_millis: Int64 | None = None
    max_traces: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    trace_ids: Annotated[list[Id], Field(max_length=MAX_IDS)] | None = None


class DeletedCount(BaseModel):
    deleted: int


class SpanStatusOut(BaseModel):
    code: str
    message: str


class SpanEventOut(BaseModel):
    name: str
    timestamp_ns: int
    attributes: dict[str, Any]


class SpanOut(BaseModel):
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    span_type: str
    start_time_ns: int
    end_time_ns: int | None
    status: SpanStatusOut
    inputs: Any
    outputs: Any
    attributes: dict[str, Any]
    events: list[SpanEventOut]


class TraceInfoOut(BaseModel):
    trace_id: str
    experiment_id: str
    request_time: int
    execution_duration: int | None
    state: str
    request_preview: str | None
    response_preview: str | None
    client_request_id: str | None
    tags: dict[str, str]
    trace_metadata: dict[str, str]
    name: str | None
    assessments: list[AssessmentOut] = Field(default_factory=list)


class TraceDataOut(BaseModel):
    spans: list[SpanOut]


class TraceOut(BaseModel):
    info: TraceInfoOut
    data: TraceDataOut


class TraceResponse(BaseModel):
    trace: TraceOut


class TraceInfoResponse(BaseModel):
    trace_info: TraceInfoOut


class TraceList(BaseModel):
    traces: list[TraceOut]
    next_page_token: str | None


class SpanSummaryOut(BaseModel):
    """A span without its payloads (``inputs``, ``outputs``, ``events`` and most attributes).

    ``attributes`` holds only small well-known keys (model, provider, token usage, cost …);
    ``GET /traces/{trace_id}/spans/{span_id}`` returns the whole span.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    span_type: str
    start_time_ns: int
    end_time_ns: int | None
    status: SpanStatusOut
    attributes: dict[str, Any]


class TraceStructureDataOut(BaseModel):
    spans: list[SpanSummaryOut]


class TraceStructureOut(BaseModel):
    info: TraceInfoOut
    data: TraceStructureDataOut


class TraceStructureResponse(BaseModel):
    trace: TraceStructureOut


class SpanResponse(BaseModel):
    span: SpanOut
