"""Feedback and expectations on traces: ``log_feedback``, ``log_expectation``,
``log_assessment``, ``get_assessment``, ``update_assessment``, ``override_feedback``,
``delete_assessment`` (MLflow's signatures), at top level and on ``ThreadlineClient``.

Each call first writes what this process has finished tracing (read-your-writes), so
feedback on the trace that just ended finds it stored. A bad argument raises an
``InvalidArgumentError`` naming it, an unknown trace a ``ResourceNotFoundError``; either
way nothing is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from threadline._flush import flush_pending_for_read
from threadline.entities.assessment import (
    DEFAULT_FEEDBACK_NAME,
    Assessment,
    AssessmentError,
    AssessmentSource,
    Expectation,
    Feedback,
)

if TYPE_CHECKING:
    from threadline.store.base import Store


class AssessmentMethods:
    """The assessment calls of ``ThreadlineClient`` (on its ``store``)."""

    if TYPE_CHECKING:

        @property
        def store(self) -> Store: ...

    def log_feedback(
        self,
        *,
        trace_id: str,
        name: str = DEFAULT_FEEDBACK_NAME,
        value: Any = None,
        source: AssessmentSource | None = None,
        error: AssessmentError | BaseException | None = None,
        rationale: str | None = None,
        metadata: dict[str, Any] | None = None,
        span_id: str | None = None,
    ) -> Assessment:
        """Log a feedback on the trace: a ``value`` (bool, number, string, or a list/dict
        of those) or an ``error`` (an ``AssessmentError`` or an exception), not both.
        ``source`` defaults to ``CODE``. Returns the stored feedback (its ``assessment_id``)."""
        feedback = Feedback(
            name=name,
            value=value,
            error=error,
            source=source,
            metadata=metadata,
            span_id=span_id,
            rationale=rationale,
        )
        return self.log_assessment(trace_id, feedback)

    def log_expectation(
        self,
        *,
        trace_id: str,
        name: str,
        value: Any,
        source: AssessmentSource | None = None,
        metadata: dict[str, Any] | None = None,
        span_id: str | None = None,
    ) -> Assessment:
        """Log the expected outcome (ground truth, any JSON value) of the trace."""
        expectation = Expectation(
            name=name, value=value, source=source, metadata=metadata, span_id=span_id
        )
        return self.log_assessment(trace_id, expectation)

    def log_assessment(self, trace_id: str, assessment: Assessment) -> Assessment:
        """Log a ``Feedback`` or an ``Expectation``; returns it as stored."""
        flush_pending_for_read()
        return self.store.log_assessment(trace_id, assessment)

    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment:
        """The assessment (``ResourceNotFoundError`` if the trace has none with that id)."""
        flush_pending_for_read()
        return self.store.get_assessment(trace_id, assessment_id)

    def update_assessment(
        self, trace_id: str, assessment_id: str, assessment: Assessment
    ) -> Assessment:
        """Replace an assessment's name, value (or error), rationale and metadata with those
        of ``assessment`` (of the same kind), in place; to keep the old one, override it."""
        flush_pending_for_read()
        return self.store.update_assessment(trace_id, assessment_id, assessment)

    def override_feedback(
        self,
        *,
        trace_id: str,
        assessment_id: str,
        value: Any,
        rationale: str | None = None,
        source: AssessmentSource | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Assessment:
        """Log a feedback that replaces a valid one (say, an LLM judge's, corrected by a
        person): the new one takes its name and span and names it in ``overrides``; the old
        one is kept with ``valid=False``. Returns the new feedback."""
        feedback = Feedback(value=value, rationale=rationale, source=source, metadata=metadata)
        flush_pending_for_read()
        return self.store.override_feedback(trace_id, assessment_id, feedback)

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        """Delete an assessment. Deleting the feedback that overrode another makes that
        one valid again."""
        flush_pending_for_read()
        self.store.delete_assessment(trace_id, assessment_id)


def _client() -> AssessmentMethods:
    from threadline.client import ThreadlineClient

    return ThreadlineClient()


def log_feedback(
    *,
    trace_id: str,
    name: str = DEFAULT_FEEDBACK_NAME,
    value: Any = None,
    source: AssessmentSource | None = None,
    error: AssessmentError | BaseException | None = None,
    rationale: str | None = None,
    metadata: dict[str, Any] | None = None,
    span_id: str | None = None,
) -> Assessment:
    """Log a feedback on a trace (see ``ThreadlineClient.log_feedback``)."""
    return _client().log_feedback(
        trace_id=trace_id,
        name=name,
        value=value,
        source=source,
        error=error,
        rationale=rationale,
        metadata=metadata,
        span_id=span_id,
    )


def log_expectation(
    *,
    trace_id: str,
    name: str,
    value: Any,
    source: AssessmentSource | None = None,
    metadata: dict[str, Any] | None = None,
    span_id: str | None = None,
) -> Assessment:
    """Log an expectation (ground truth) on a trace."""
    return _client().log_expectation(
        trace_id=trace_id,
        name=name,
        value=value,
        source=source,
        metadata=metadata,
        span_id=span_id,
    )


def log_assessment(trace_id: str, assessment: Assessment) -> Assessment:
    """Log a ``Feedback`` or an ``Expectation`` on a trace."""
    return _client().log_assessment(trace_id, assessment)


def get_assessment(trace_id: str, assessment_id: str) -> Assessment:
    """One assessment of a trace."""
    return _client().get_assessment(trace_id, assessment_id)


def update_assessment(trace_id: str, assessment_id: str, assessment: Assessment) -> Assessment:
    """Change an assessment in place."""
    return _client().update_assessment(trace_id, assessment_id, assessment)


def override_feedback(
    *,
    trace_id: str,
    assessment_id: str,
    value: Any,
    rationale: str | None = None,
    source: AssessmentSource | None = None,
    metadata: dict[str, Any] | None = None,
) -> Assessment:
    """Replace a feedback with a new one, keeping the old one (``valid=False``)."""
    return _client().override_feedback(
        trace_id=trace_id,
        assessment_id=assessment_id,
        value=value,
        rationale=rationale,
        source=source,
        metadata=metadata,
    )


def delete_assessment(trace_id: str, assessment_id: str) -> None:
    """Delete an assessment of a trace."""
    _client().delete_assessment(trace_id, assessment_id)
