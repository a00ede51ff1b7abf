"""The summaries kept beside the traces, updated in the transaction that changes traces.

``TraceWrites`` calls ``_before_trace_changes`` / ``_after_trace_changes`` around every
batch it writes and every deletion; ``Assessments`` calls ``_assessments_changed``.

* ``sessions``: the figures of every session a changed trace belongs to are recomputed
  from its traces (an aggregate over the ``ix_trace_metadata_session_id`` index), and a
  session left without traces is removed.
* ``stale_rollups``: the (experiment, UTC hour) of every changed trace, before and after
  the change, is marked; the overview recomputes those hours when it next reads them.

On PostgreSQL several server processes write at once. A writer takes the row lock of each
session it recomputes (and of each stale mark it sets) before it aggregates, in key order,
so a concurrent writer of the same session waits and then aggregates what the first one
committed: no update is lost and no two writers deadlock on these rows.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.entities.keys import TraceMetadataKey
from threadline.store import tables as t
from threadline.store.sql._trace_writes import TraceWrites

HOUR_MS = 3_600_000
# Times this far from the 64-bit bounds cannot overflow the hour arithmetic.
_SANE_TIME = 2**62
_INT64_MAX = 2**63 - 1
#: Our own constant as SQL text, so that SQLite can use the partial session index.
SESSION_ROWS = t.trace_metadata.c.key == sa.literal_column(f"'{t.SESSION_KEY}'")

Traces = Sequence[str] | sa.Select[Any]  # trace ids, or a query of them
Hours = set[tuple[str, int]]  # (experiment id, start of the UTC hour)
SessionRefs = set[tuple[str, str]]  # (experiment id, session id)


def session_key(session_id: str) -> str:
    """The ``sessions`` key of a session id (session ids may be too long to index)."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def hour_of(time_ms: int) -> int:
    return time_ms - time_ms % HOUR_MS


def _hour_expression(column: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """The start of the UTC hour of ``column`` in SQL: ``%`` truncates on both databases,
    ``((t % H) + H) % H`` is the floor remainder (right before 1970 too)."""
    hour = sa.literal(HOUR_MS, sa.BigInteger)
    return column - (((column % hour) + hour) % hour)


_TR = t.traces.c
_M = t.trace_metadata.c
_IDS: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
_SANE = sa.and_(_TR.request_time > -_SANE_TIME, _TR.request_time < _SANE_TIME)
#: (experiment, hour) of traces; add a condition on ``traces.trace_id``.
_HOURS = sa.select(_TR.experiment_id, _hour_expression(_TR.request_time)).where(_SANE).distinct()
_HOURS_OF_IDS = _HOURS.where(_TR.trace_id.in_(_IDS))
#: (experiment, session id) of traces; add a condition on ``trace_metadata.trace_id``.
_SESSIONS = (
    sa.select(_TR.experiment_id, _M.value)
    .select_from(t.trace_metadata.join(t.traces, _TR.trace_id == _M.trace_id))
    .where(SESSION_ROWS)
    .distinct()
)
#: (experiment, hour or NULL, session id or NULL) of the traces ``ids``.
_HOURS_AND_SESSIONS = (
    sa.select(
        _TR.experiment_id,
        sa.case((_SANE, _hour_expression(_TR.request_time)), else_=sa.null()),
        _M.value,
    )
    .select_from(
        t.traces.outerjoin(t.trace_metadata, sa.and_(_M.trace_id == _TR.trace_id, SESSION_ROWS))
    )
    .where(_TR.trace_id.in_(_IDS))
    .distinct()
)


class Summaries(TraceWrites):
    """Sessions and stale overview hours, kept in step with the traces."""

    def _before_trace_changes(self, conn: Connection, traces: Traces, *, deleting: bool) -> Any:
        hours = self._trace_hours(conn, traces)
        sessions = self._trace_sessions(conn, traces) if deleting else set()
        return hours, sessions

    def _after_trace_changes(self, conn: Connection, trace_ids: Sequence[str], before: Any) -> None:
        hours, sessions = before
        if trace_ids:
            now_hours, now_sessions = self._hours_and_sessions(conn, trace_ids)
            hours, sessions = hours | now_hours, sessions | now_sessions
        self._mark_stale(conn, hours)
        if sessions:
            self._refresh_sessions(conn, sessions)

    def _assessments_changed(self, conn: Connection, trace_ids: Sequence[str]) -> None:
        """An assessment of these traces changed: their hours' feedback figures are stale."""
        self._mark_stale(conn, self._trace_hours(conn, trace_ids))

    def _hours_and_sessions(
        self, conn: Connection, trace_ids: Sequence[str]
    ) -> tuple[Hours, SessionRefs]:
        """The hours and sessions of these traces, in one query per chunk of ids."""
        hours: Hours = set()
        sessions: SessionRefs = set()
        for chunk in self._chunks(list(trace_ids)):
            for experiment_id, hour, session_id in conn.execute(
                _HOURS_AND_SESSIONS, {"ids": chunk}
            ):
                if hour is not None:
                    hours.add((experiment_id, int(hour)))
                if session_id is not None:
                    sessions.add((experiment_id, session_id))
        return hours, sessions

    # --- overview hours ------------------------------------------------------------------

    def _trace_hours(self, conn: Connection, traces: Traces) -> Hours:
        if isinstance(traces, sa.Select):
            rows = list(conn.execute(_HOURS.where(_TR.trace_id.in_(traces.scalar_subquery()))))
        else:
            rows = [
                r
                for chunk in self._chunks(list(traces))
                for r in conn.execute(_HOURS_OF_IDS, {"ids": chunk})
            ]
        return {(e, int(h)) for e, h in rows}

    def _mark_stale(self, conn: Connection, hours: Iterable[tuple[str, int]]) -> None:
        """Mark these hours stale. The upsert takes each mark's row lock (PostgreSQL), so an
        overview recomputing the hour waits for this transaction and then sees its data."""
        rows = [{"experiment_id": e, "hour_ms": h} for e, h in sorted(hours)]
        if rows:
            conn.execute(self._stale_upsert, rows)

    @functools.cached_property
    def _stale_upsert(self) -> Any:
        insert = self._insert(t.stale_rollups)
        return insert.on_conflict_do_update(
            index_elements=[t.stale_rollups.c.experiment_id, t.stale_rollups.c.hour_ms],
            set_={"hour_ms": insert.excluded.hour_ms},
        )

    # --- sessions ------------------------------------------------------------------------

    def _trace_sessions(self, conn: Connection, traces: Traces) -> SessionRefs:
        if isinstance(traces, sa.Select):
            condition = _M.trace_id.in_(traces.scalar_subquery())
            return {(e, v) for e, v in conn.execute(_SESSIONS.where(condition))}
        found: SessionRefs = set()
        for chunk in self._chunks(list(traces)):
            found.update((e, v) for e, v in conn.execute(_SESSIONS.where(_M.trace_id.in_(chunk))))
        return found

    def _refresh_sessions(self, conn: Connection, sessions: SessionRefs) -> None:
        """Recompute these sessions from their traces; remove those left without any."""
        locked = sorted((e, session_key(s), s) for e, s in sessions)
        if self._dialect == "postgresql":
            self._lock_sessions(conn, locked)
        session_ids = sorted({s for _e, _k, s in locked})
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for chunk in self._chunks(session_ids):
            for row in conn.execute(_SESSION_FIGURES, {"values": chunk}):
                values = _session_row(*row)
                rows[(values["experiment_id"], values["session_key"])] = values
        if rows:
            conn.execute(self._session_upsert, [rows[key] for key in sorted(rows)])
        s = t.sessions.c
        for experiment_id, key, _session_id in locked:
            if (experiment_id, key) not in rows:
                conn.execute(
                    t.sessions.delete().where(
                        s.experiment_id == experiment_id, s.session_key == key
                    )
                )

    @functools.cached_property
    def _session_upsert(self) -> Any:
        insert = self._insert(t.sessions)
        keys = ("experiment_id", "session_key")
        return insert.on_conflict_do_update(
            index_elements=list(keys),
            set_={
                c.name: insert.excluded[c.name] for c in t.sessions.columns if c.name not in keys
            },
        )

    @functools.cached_property
    def _session_lock(self) -> Any:
        insert = self._insert(t.sessions)
        return insert.on_conflict_do_update(
            index_elements=[t.sessions.c.experiment_id, t.sessions.c.session_key],
            set_={"session_id": insert.excluded.session_id},
        )

    def _lock_sessions(self, conn: Connection, locked: list[tuple[str, str, str]]) -> None:
        """Take the row lock of each session (creating a placeholder row for a new one)."""
        zero = dict.fromkeys(
            (
                "first_time_ms",
                "last_time_ms",
                "trace_count",
                "error_count",
                "input_tokens",
                "output_tokens",
                "total_tokens",
            ),
            0,
        )
        rows = [
            {"experiment_id": e, "session_key": k, "session_id": s, "user_id": None, **zero}
            for e, k, s in locked
        ]
        conn.execute(self._session_lock, rows)


def _session_figures() -> sa.Select[Any]:
    """Per experiment and session id (of the sessions ``values``): user, first/last start,
    counts and token sums."""
    m = t.trace_metadata.alias("m")
    user = t.trace_metadata.alias("u")
    tr = t.traces.c
    session_rows = m.c.key == sa.literal_column(f"'{t.SESSION_KEY}'")
    return (
        sa.select(
            tr.experiment_id,
            m.c.value,
            sa.func.min(user.c.value),
            sa.func.min(tr.request_time),
            sa.func.max(tr.request_time),
            sa.func.count(),
            sa.func.sum(sa.case((tr.state == "ERROR", 1), else_=0)),
            sa.func.sum(tr.input_tokens),
            sa.func.sum(tr.output_tokens),
            sa.func.sum(tr.total_tokens),
        )
        .select_from(
            m.join(t.traces, tr.trace_id == m.c.trace_id).outerjoin(
                user,
                sa.and_(user.c.trace_id == tr.trace_id, user.c.key == TraceMetadataKey.USER),
            )
        )
        .where(session_rows, m.c.value.in_(sa.bindparam("values", expanding=True)))
        .group_by(tr.experiment_id, m.c.value)
    )


_SESSION_FIGURES = _session_figures()


def _session_row(
    experiment_id: str,
    session_id: str,
    user: str | None,
    first: int,
    last: int,
    count: int,
    errors: Any,
    input_tokens: Any,
    output_tokens: Any,
    total_tokens: Any,
) -> dict[str, Any]:
    return {
        "experiment_id": experiment_id,
        "session_key": session_key(session_id),
        "session_id": session_id,
        "user_id": user,
        "first_time_ms": int(first),
        "last_time_ms": int(last),
        "trace_count": int(count),
        "error_count": int(errors or 0),
        "input_tokens": _int64(input_tokens),
        "output_tokens": _int64(output_tokens),
        "total_tokens": _int64(total_tokens),
    }


def _int64(value: Any) -> int:
    """A sum as stored: 0 for none, at most the largest 64-bit integer."""
    return min(int(value or 0), _INT64_MAX)
