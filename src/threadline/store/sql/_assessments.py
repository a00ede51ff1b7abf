"""Assessments of ``SqlStore``: log, read, update, override and delete feedback and
expectations, and the assessments every ``TraceInfo`` carries.

Each write is one transaction that checks everything first (the trace exists, the span is
one of its spans, the assessment to change is of that trace), so bad input changes nothing.
It also marks the trace's hour stale for the overview (``_overview``), whose figures hold
feedback.

Overrides keep the history: ``override_feedback`` adds a feedback naming the old one in
``overrides`` and sets the old one ``valid=False``. Deleting one link keeps the chain
whole: the assessment that overrode it now overrides what it overrode, and deleting the
valid end of a chain makes the one it replaced valid again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.entities.assessment import Assessment, Feedback
from threadline.entities.trace import TraceInfo
from threadline.errors import InvalidArgumentError, ResourceNotFoundError
from threadline.store import tables as t
from threadline.store.sql._assessment_rows import (
    ASSESSMENT_SELECT,
    ASSESSMENTS_OF_TRACES,
    assessment_from_row,
    checked,
    metadata_text,
    new_assessment_id,
    row_values,
    value_columns,
)
from threadline.store.sql._engine import now_ms
from threadline.store.sql._summaries import Summaries
from threadline.store.sql._trace_reads import TraceReads

_A = t.assessments.c


class Assessments(Summaries, TraceReads):
    """``log_assessment`` … ``delete_assessment``; ``TraceInfo.assessments`` on every read."""

    def log_assessment(self, trace_id: str, assessment: Assessment) -> Assessment:
        """Store a new assessment of the trace (a new id, whatever ``assessment_id`` says);
        one that ``overrides`` another overrides it as ``override_feedback`` does."""
        trace_id = _trace_id(trace_id)
        assessment = checked(assessment)
        _same_trace(assessment, trace_id)
        with self._write("log an assessment") as conn:
            self._require_trace_row(conn, trace_id)
            self._require_span(conn, trace_id, assessment.span_id)
            if assessment.overrides is not None:
                self._invalidate(conn, trace_id, assessment.overrides)
            assessment_id = new_assessment_id()
            values = row_values(assessment, trace_id, assessment_id, now_ms())
            conn.execute(t.assessments.insert().values(values))
            self._assessments_changed(conn, [trace_id])
            return self._assessment(conn, trace_id, assessment_id)

    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment:
        """The assessment, or ``ResourceNotFoundError``."""
        with self._read("read an assessment") as conn:
            return self._assessment(conn, _trace_id(trace_id), assessment_id)

    def list_assessments(self, trace_id: str) -> list[Assessment]:
        """Every assessment of the trace (overridden ones too), oldest first."""
        trace_id = _trace_id(trace_id)
        with self._read("read assessments") as conn:
            self._require_trace_row(conn, trace_id)
            rows = conn.execute(ASSESSMENTS_OF_TRACES, {"ids": [trace_id]}).all()
        return [assessment_from_row(row) for row in rows]

    def update_assessment(
        self, trace_id: str, assessment_id: str, assessment: Assessment
    ) -> Assessment:
        """Replace the name, value (or error), rationale and metadata of an assessment in
        place; its kind, source, span, id and history stay."""
        trace_id = _trace_id(trace_id)
        assessment = checked(assessment)
        with self._write("update an assessment") as conn:
            stored = self._assessment(conn, trace_id, assessment_id)
            if stored.kind != assessment.kind:
                raise InvalidArgumentError(
                    f"Assessment {assessment_id!r} is a {stored.kind}; update it with a "
                    f"{stored.kind.capitalize()}, not a {assessment.kind.capitalize()}."
                )
            conn.execute(
                t.assessments.update()
                .where(_A.assessment_id == assessment_id)
                .values(
                    name=assessment.name,
                    **value_columns(assessment),
                    rationale=assessment.rationale,
                    metadata_json=metadata_text(assessment),
                    last_update_time_ms=max(now_ms(), stored.create_time_ms or 0),
                )
            )
            self._assessments_changed(conn, [trace_id])
            return self._assessment(conn, trace_id, assessment_id)

    def override_feedback(
        self, trace_id: str, assessment_id: str, feedback: Feedback
    ) -> Assessment:
        """A new feedback in place of a valid one, which is kept with ``valid=False``; the
        new one takes the old one's name, span and run."""
        trace_id = _trace_id(trace_id)
        feedback = checked(feedback, "feedback")  # type: ignore[assignment]
        if not isinstance(feedback, Feedback):
            raise InvalidArgumentError("override_feedback takes a Feedback.")
        with self._write("override a feedback") as conn:
            old = self._invalidate(conn, trace_id, assessment_id)
            replacement = Feedback(
                name=old.name,
                value=feedback.value,
                error=feedback.error,
                source=feedback.source,
                metadata=feedback.metadata,
                span_id=old.span_id,
                rationale=feedback.rationale,
                overrides=assessment_id,
                run_id=old.run_id,
            )
            new_id = new_assessment_id()
            conn.execute(
                t.assessments.insert().values(row_values(replacement, trace_id, new_id, now_ms()))
            )
            self._assessments_changed(conn, [trace_id])
            return self._assessment(conn, trace_id, new_id)

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        """Delete one assessment (``ResourceNotFoundError`` if the trace has no such one)."""
        trace_id = _trace_id(trace_id)
        with self._write("delete an assessment") as conn:
            doomed = self._assessment(conn, trace_id, assessment_id)
            successors = _A.trace_id == trace_id, _A.overrides == assessment_id
            conn.execute(
                t.assessments.update().where(*successors).values(overrides=doomed.overrides)
            )
            if doomed.valid and doomed.overrides is not None:
                conn.execute(
                    t.assessments.update()
                    .where(_A.trace_id == trace_id, _A.assessment_id == doomed.overrides)
                    .values(valid=True, last_update_time_ms=now_ms())
                )
            conn.execute(t.assessments.delete().where(_A.assessment_id == assessment_id))
            self._assessments_changed(conn, [trace_id])

    # --- helpers -------------------------------------------------------------------------

    def _assessment(self, conn: Connection, trace_id: str, assessment_id: str) -> Assessment:
        if not isinstance(assessment_id, str) or not assessment_id:
            raise InvalidArgumentError(
                f"assessment_id must be a non-empty string, got {assessment_id!r}."
            )
        query = sa.select(*ASSESSMENT_SELECT).where(
            _A.assessment_id == assessment_id, _A.trace_id == trace_id
        )
        row = conn.execute(query).first()
        if row is None:
            raise ResourceNotFoundError(
                f"No assessment with id {assessment_id!r} in trace {trace_id!r}."
            )
        return assessment_from_row(row)

    def _invalidate(self, conn: Connection, trace_id: str, assessment_id: str) -> Assessment:
        """Mark a valid feedback of the trace overridden; the old one as it was."""
        old = self._assessment(conn, trace_id, assessment_id)
        if old.kind != "feedback":
            raise InvalidArgumentError(
                f"Assessment {assessment_id!r} is an expectation: only feedback is overridden "
                "(change an expectation with update_assessment)."
            )
        if not old.valid:
            current = self._newest_of_chain(conn, trace_id, assessment_id)
            raise InvalidArgumentError(
                f"Feedback {assessment_id!r} was already overridden"
                + (f"; the current one is {current!r}: override that one." if current else ".")
            )
        conn.execute(
            t.assessments.update()
            .where(_A.assessment_id == assessment_id)
            .values(valid=False, last_update_time_ms=max(now_ms(), old.create_time_ms or 0))
        )
        return old

    def _newest_of_chain(self, conn: Connection, trace_id: str, assessment_id: str) -> str | None:
        """The valid end of the chain of overrides that starts at ``assessment_id``."""
        seen = {assessment_id}
        newer = sa.select(_A.assessment_id, _A.valid).where(_A.trace_id == trace_id)
        current = assessment_id
        while True:
            row = conn.execute(newer.where(_A.overrides == current)).first()
            if row is None or row[0] in seen:
                return None
            if row[1]:
                return str(row[0])
            current = row[0]
            seen.add(current)

    def _require_trace_row(self, conn: Connection, trace_id: str) -> None:
        query = sa.select(t.traces.c.trace_id).where(t.traces.c.trace_id == trace_id)
        if conn.execute(query).first() is None:
            raise ResourceNotFoundError(f"No trace with id {trace_id!r}.")

    def _require_span(self, conn: Connection, trace_id: str, span_id: str | None) -> None:
        if span_id is None:
            return
        spans = t.spans.c
        query = sa.select(spans.span_id).where(spans.trace_id == trace_id, spans.span_id == span_id)
        if conn.execute(query).first() is None:
            raise ResourceNotFoundError(f"Trace {trace_id!r} has no span with id {span_id!r}.")

    def _trace_infos(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> list[TraceInfo]:
        """``TraceReads._trace_infos`` with each trace's assessments (one more query)."""
        infos = super()._trace_infos(conn, rows)
        if not infos:
            return infos
        by_trace: dict[str, list[Assessment]] = {}
        for chunk in self._chunks([info.trace_id for info in infos]):
            for row in conn.execute(ASSESSMENTS_OF_TRACES, {"ids": chunk}):
                by_trace.setdefault(row[1], []).append(assessment_from_row(row))
        for info in infos:
            info.assessments = by_trace.get(info.trace_id, [])
        return infos


def _trace_id(trace_id: Any) -> str:
    if not isinstance(trace_id, str) or not trace_id:
        raise InvalidArgumentError(f"trace_id must be a non-empty string, got {trace_id!r}.")
    return trace_id


def _same_trace(assessment: Assessment, trace_id: str) -> None:
    if assessment.trace_id is not None and assessment.trace_id != trace_id:
        raise InvalidArgumentError(
            f"The assessment names trace {assessment.trace_id!r} but is logged to trace "
            f"{trace_id!r}: leave its trace_id unset or make them agree."
        )
