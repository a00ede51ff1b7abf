"""Sessions of ``SqlStore``: list and read the conversations that ``sessions`` summarises.

A page of sessions is one indexed read of ``sessions`` (ordered by last activity by
default), then, for the sessions on the page only, their traces: their cost and feedback
are summed from those, and their ``TraceInfo``s loaded when asked for. A filter is the
trace filter language: a session is listed when at least one of its traces matches, and
its figures are still those of all its traces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.entities.keys import TraceMetadataKey
from threadline.entities.session import Session
from threadline.entities.trace import TraceInfo
from threadline.errors import InvalidArgumentError
from threadline.store import search
from threadline.store import tables as t
from threadline.store.sql._checks import _experiment_id_list
from threadline.store.sql._figures import Figures, summary, trace_cost
from threadline.store.sql._summaries import session_key
from threadline.store.sql._trace_reads import TraceReads

#: ``order_by`` names of ``search_sessions`` and their ``sessions`` columns.
SESSION_ORDER_COLUMNS = {
    "last_time_ms": "last_time_ms",
    "first_time_ms": "first_time_ms",
    "turns": "trace_count",
    "error_count": "error_count",
    "total_tokens": "total_tokens",
}
_SESSION_COLUMNS = (
    "experiment_id",
    "session_id",
    "user_id",
    "first_time_ms",
    "last_time_ms",
    "trace_count",
    "error_count",
    "input_tokens",
    "output_tokens",
    "total_tokens",
)
_S = t.sessions.c
_SELECT = [_S[name] for name in _SESSION_COLUMNS]
_META = t.trace_metadata.alias("session_meta")
_COST = t.trace_metadata.alias("cost")
_TR = t.traces.c
#: The traces of the sessions ``values`` (any experiment): id, experiment, start, session
#: id and cost metadata; the session index, then one lookup per trace.
_SESSION_TRACES = (
    sa.select(_TR.trace_id, _TR.experiment_id, _TR.request_time, _META.c.value, _COST.c.value)
    .select_from(
        _META.join(t.traces, _TR.trace_id == _META.c.trace_id).outerjoin(
            _COST, sa.and_(_COST.c.trace_id == _TR.trace_id, _COST.c.key == TraceMetadataKey.COST)
        )
    )
    .where(
        _META.c.key == sa.literal_column(f"'{t.SESSION_KEY}'"),
        _META.c.value.in_(sa.bindparam("values", expanding=True)),
    )
)
_A = t.assessments.c
#: The valid feedback of the traces ``ids``: trace, name, value type, number.
_FEEDBACK = sa.select(_A.trace_id, _A.name, _A.value_type, _A.value_number).where(
    _A.trace_id.in_(sa.bindparam("ids", expanding=True)),
    _A.kind == "feedback",
    _A.valid == sa.true(),
)


class Sessions(TraceReads):
    """``search_sessions`` and ``get_session``."""

    def search_sessions(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        include_traces: bool = True,
    ) -> tuple[list[Session], str | None]:
        """One page of sessions (newest activity first), and the next page's token."""
        limit = search.check_max_results(max_results, limit=10_000)
        offset = search.decode_page_token(page_token)
        conditions = search.compile_trace_filter(search.parse_filter(filter_string), self._dialect)
        order = search.parse_order_by(
            order_by,
            SESSION_ORDER_COLUMNS,
            prefix="session",
            default=search.OrderKey("last_time_ms", ascending=False),
        )
        where: list[sa.ColumnElement[bool]] = []
        if experiment_ids is not None:
            where.append(_S.experiment_id.in_(_experiment_id_list(experiment_ids)))
        if conditions:
            where.append(_has_matching_trace(conditions))
        query = (
            sa.select(*_SELECT)
            .where(*where)
            .order_by(*search.order_clauses(order, t.sessions, "session_key"), _S.experiment_id)
            .limit(limit + 1)
            .offset(offset)
        )
        with self._read("search sessions") as conn:
            rows = conn.execute(query).all()
            sessions = self._sessions(conn, rows[:limit], include_traces)
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return sessions, token

    def get_session(self, experiment_id: str, session_id: str) -> Session | None:
        """The session with its traces, or ``None``."""
        if not isinstance(session_id, str) or not session_id:
            raise InvalidArgumentError(
                f"session_id must be a non-empty string, got {session_id!r}."
            )
        query = sa.select(*_SELECT).where(
            _S.experiment_id == str(experiment_id), _S.session_key == session_key(session_id)
        )
        with self._read("read a session") as conn:
            rows = conn.execute(query).all()
            found = self._sessions(conn, rows, include_traces=True)
        return found[0] if found else None

    def _sessions(
        self, conn: Connection, rows: Sequence[Sequence[Any]], include_traces: bool
    ) -> list[Session]:
        """Sessions from ``sessions`` rows, with cost, feedback and (maybe) traces."""
        if not rows:
            return []
        wanted = {(row[0], row[1]) for row in rows}
        traces: dict[tuple[str, str], list[tuple[str, int, str | None]]] = {}
        for chunk in self._chunks(sorted({session_id for _e, session_id in wanted})):
            for trace_id, experiment_id, start, session_id, cost in conn.execute(
                _SESSION_TRACES, {"values": chunk}
            ):
                if (experiment_id, session_id) in wanted:
                    traces.setdefault((experiment_id, session_id), []).append(
                        (trace_id, start, cost)
                    )
        for same in traces.values():
            same.sort(key=lambda r: (r[1], r[0]))  # request_time, trace_id
        trace_ids = [r[0] for same in traces.values() for r in same]
        feedback: dict[str, list[tuple[str, str | None, float | None]]] = {}
        for chunk in self._chunks(trace_ids):
            for trace_id, name, value_type, number in conn.execute(_FEEDBACK, {"ids": chunk}):
                feedback.setdefault(trace_id, []).append((name, value_type, number))
        infos = {}
        if include_traces:
            found = [
                row for chunk in self._chunks(trace_ids) for row in self._trace_rows(conn, chunk)
            ]
            infos = {info.trace_id: info for info in self._trace_infos(conn, found)}
        return [_session(row, traces.get((row[0], row[1]), []), feedback, infos) for row in rows]


def _session(
    row: Sequence[Any],
    traces: list[tuple[str, int, str | None]],
    feedback: dict[str, list[tuple[str, str | None, float | None]]],
    infos: dict[str, TraceInfo],
) -> Session:
    """A ``Session`` from its ``sessions`` row and its traces (id, start, cost text)."""
    figures = Figures()
    priced = []
    for trace_id, _start, cost in traces:
        for name, value_type, number in feedback.get(trace_id, ()):
            figures.add_feedback(name, value_type, number)
        if cost is not None:
            priced.append(trace_cost(cost))
    return Session(
        session_id=row[1],
        experiment_id=row[0],
        user=row[2],
        first_time_ms=int(row[3]),
        last_time_ms=int(row[4]),
        turns=int(row[5]),
        error_count=int(row[6]),
        input_tokens=int(row[7]),
        output_tokens=int(row[8]),
        total_tokens=int(row[9]),
        cost=round(sum(priced), 12) if priced else None,
        feedback={n: summary(n, figures.feedback[n]) for n in sorted(figures.feedback)},
        traces=[infos[trace_id] for trace_id, _s, _c in traces if trace_id in infos],
    )


def _has_matching_trace(conditions: Sequence[sa.ColumnElement[bool]]) -> sa.ColumnElement[bool]:
    """EXISTS a trace of the session (same experiment) that meets the trace conditions."""
    meta = t.trace_metadata.alias("session_meta")
    tr = t.traces.c
    return sa.exists().where(
        meta.c.key == sa.literal_column(f"'{t.SESSION_KEY}'"),
        meta.c.value == _S.session_id,
        tr.trace_id == meta.c.trace_id,
        tr.experiment_id == _S.experiment_id,
        *conditions,
    )
