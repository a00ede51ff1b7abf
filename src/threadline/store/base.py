"""The Store interface: one contract for every back end (SQLite, PostgreSQL, a remote server).

Writes arrive as plain rows made by the exporter off the hot path (``TraceRow``, ``SpanRow``);
reads return entities. ``store/sql/`` implements this with SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from threadline.entities.assessment import Assessment, Feedback
from threadline.entities.experiment import Experiment
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.overview import Overview
from threadline.entities.run import Metric, Run, RunInfo
from threadline.entities.session import Session
from threadline.entities.span import Span
from threadline.entities.trace import Trace, TraceInfo

#: The span attributes a trace's structure keeps (``Store.get_trace_structure``): small
#: values a tree, a timeline or a list shows. Payload-heavy ones (chat messages, tools,
#: user attributes) come with the whole span (``Store.get_span``).
STRUCTURE_ATTRIBUTES = (
    SpanAttributeKey.MODEL,
    SpanAttributeKey.PROVIDER,
    SpanAttributeKey.TOKEN_USAGE,
    SpanAttributeKey.COST,
    SpanAttributeKey.CACHED_INPUT_TOKENS,
    SpanAttributeKey.CACHE_CREATION_INPUT_TOKENS,
    SpanAttributeKey.REASONING_TOKENS,
    SpanAttributeKey.FINISH_REASON,
    SpanAttributeKey.ABORTED,
)


# Rows are slotted, not frozen: a frozen dataclass costs ~5x more to construct, and one
# row is made per exported span. Treat them as immutable all the same.
@dataclass(slots=True)
class SpanRow:
    """One finished span, serialised: JSON text for payloads, token counts pulled out."""

    trace_id: str  # "tr-" + 32 hex
    span_id: str  # 16 hex
    parent_id: str | None
    name: str
    span_type: str
    start_time_ns: int
    end_time_ns: int | None
    status_code: str  # "OK" | "ERROR" | "UNSET"
    status_message: str
    inputs_json: str  # JSON text of the inputs ("null" when none)
    outputs_json: str  # JSON text of the outputs
    attributes_json: str  # JSON object text
    events_json: str  # JSON array text of {"name", "timestamp_ns", "attributes"}
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


@dataclass(slots=True)
class TraceRow:
    """The state of a trace as the SDK knows it at one moment (started, or finished).

    Upsert rules in the store: a row for an unknown trace is inserted; for a known trace
    non-``None`` fields overwrite, ``tags`` merge (incoming keys win) and ``metadata`` merges
    without overwriting keys already stored (metadata is immutable). A row whose state is
    ``IN_PROGRESS`` never overwrites a stored final state (``OK``/``ERROR``).
    """

    trace_id: str
    experiment_id: str
    request_time: int  # ms since epoch (root span start)
    state: str  # "OK" | "ERROR" | "IN_PROGRESS"
    execution_duration: int | None = None  # ms
    name: str | None = None  # root span name
    request_preview: str | None = None
    response_preview: str | None = None
    client_request_id: str | None = None
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Store(Protocol):
    """Everything threadline persists. Every method may raise ``StoreError``."""

    # --- traces: write -------------------------------------------------------------------
    def log_batch(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        """Apply trace upserts, then span upserts (by trace_id+span_id), in one transaction.

        Idempotent: applying the same batch twice leaves the same data. Spans of a trace with
        no stored row and no row in the batch create an IN_PROGRESS row in experiment "0".
        Token totals of every touched trace are recomputed from its spans.
        """

    # --- traces: read --------------------------------------------------------------------
    def get_trace(self, trace_id: str) -> Trace | None:
        """The trace with all its spans (ordered by start time), or ``None``."""

    def get_trace_info(self, trace_id: str) -> TraceInfo | None: ...

    def get_trace_structure(self, trace_id: str) -> Trace | None:
        """The trace with its spans but not their payloads, or ``None``.

        Each span has its ids, name, type, times, status and only the attributes named in
        ``STRUCTURE_ATTRIBUTES``; inputs and outputs are ``None`` and events empty. A view
        draws the tree and timeline from this and reads a span's payloads with ``get_span``.
        """

    def get_span(self, trace_id: str, span_id: str) -> Span | None:
        """One span of a trace with its payloads, or ``None``."""

    def search_traces(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        run_id: str | None = None,
        include_spans: bool = True,
    ) -> tuple[list[Trace], str | None]:
        """Traces matching the filter language (``store/search.py``), one page at a time.

        ``experiment_ids=None`` searches every experiment. Default order: newest first.
        Returns the page and the token of the next page (``None`` on the last page).
        Raises ``FilterSyntaxError`` for a bad filter or order_by.
        """

    def delete_traces(
        self,
        experiment_id: str,
        max_timestamp_millis: int | None = None,
        max_traces: int | None = None,
        trace_ids: Sequence[str] | None = None,
    ) -> int:
        """Delete by age (oldest first, at most ``max_traces``) or by ids; returns the count."""

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None: ...

    def delete_trace_tag(self, trace_id: str, key: str) -> None: ...

    # --- assessments ---------------------------------------------------------------------
    def log_assessment(self, trace_id: str, assessment: Assessment) -> Assessment:
        """Store a new feedback or expectation of the trace; returns it as stored (a new
        ``assessment_id``, its times). One that names another in ``overrides`` overrides
        it. ``ResourceNotFoundError`` for an unknown trace or span; nothing is stored then."""

    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment:
        """The assessment, or ``ResourceNotFoundError``."""

    def list_assessments(self, trace_id: str) -> list[Assessment]:
        """Every assessment of the trace (overridden ones too), oldest first."""

    def update_assessment(
        self, trace_id: str, assessment_id: str, assessment: Assessment
    ) -> Assessment:
        """Replace name, value (or error), rationale and metadata in place (same kind)."""

    def override_feedback(
        self, trace_id: str, assessment_id: str, feedback: Feedback
    ) -> Assessment:
        """A new feedback (value, rationale, source, metadata of ``feedback``; name and span
        of the old one) that overrides a valid feedback, which stays with ``valid=False``."""

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        """Delete one assessment; the history of overrides around it stays linked."""

    # --- sessions and overview -----------------------------------------------------------
    def search_sessions(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        include_traces: bool = True,
    ) -> tuple[list[Session], str | None]:
        """Sessions (traces sharing a ``session_id`` metadata value) with a trace matching
        the filter, newest activity first; their ``traces`` only with ``include_traces``."""

    def get_session(self, experiment_id: str, session_id: str) -> Session | None:
        """One session of an experiment with its traces, or ``None``."""

    def get_overview(
        self,
        experiment_id: str,
        filter_string: str | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        bucket: str = "hour",
    ) -> Overview:
        """The experiment's figures per UTC hour or day (every bucket present) and in total,
        for the traces matching the filter."""

    # --- experiments ---------------------------------------------------------------------
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> str: ...

    def get_experiment(self, experiment_id: str) -> Experiment: ...

    def get_experiment_by_name(self, name: str) -> Experiment | None: ...

    def search_experiments(
        self,
        name_like: str | None = None,
        include_deleted: bool = False,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> tuple[list[Experiment], str | None]: ...

    def rename_experiment(self, experiment_id: str, new_name: str) -> None: ...

    def delete_experiment(self, experiment_id: str) -> None: ...

    def restore_experiment(self, experiment_id: str) -> None: ...

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None: ...

    # --- runs ----------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        start_time: int | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> Run: ...

    def get_run(self, run_id: str) -> Run: ...

    def update_run(
        self,
        run_id: str,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo: ...

    def delete_run(self, run_id: str) -> None: ...

    def log_params(self, run_id: str, params: dict[str, str]) -> None: ...

    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None: ...

    def set_run_tags(self, run_id: str, tags: dict[str, str]) -> None: ...

    def delete_run_tag(self, run_id: str, key: str) -> None: ...

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]: ...

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    # --- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Release connections (the store can be reopened by ``get_store``)."""
