"""Trace reads of ``SqlStore``: one trace (whole, summary, structure, one span), search
with the filter language, and result rows made into entities.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from threadline.entities.span import Span, SpanStatus, SpanStatusCode
from threadline.entities.trace import Trace, TraceData, TraceInfo, TraceMetadataKey
from threadline.store import _read_statements as reads
from threadline.store import search
from threadline.store import tables as t
from threadline.store._stored_span import SUMMARY_COLUMNS, StoredSpan
from threadline.store.base import STRUCTURE_ATTRIBUTES
from threadline.store.sql._checks import _experiment_id_list
from threadline.store.sql._engine import SqlBase
from threadline.store.sql._row_values import _loads


def _trace_info(row: Sequence[Any], tags: dict[str, str], metadata: dict[str, str]) -> TraceInfo:
    """A summary row (``reads.TRACE_COLUMNS``) with its tags and metadata."""
    (
        trace_id,
        experiment_id,
        request_time,
        execution_duration,
        state,
        name,
        request_preview,
        response_preview,
        client_request_id,
        run_id,
        input_tokens,
        output_tokens,
        total_tokens,
    ) = row
    metadata = dict(metadata)
    if run_id is not None:
        metadata[TraceMetadataKey.RUN_ID] = run_id
    if input_tokens is not None or output_tokens is not None or total_tokens is not None:
        metadata[TraceMetadataKey.TOKEN_USAGE] = json.dumps(
            {
                "input_tokens": input_tokens or 0,
                "output_tokens": output_tokens or 0,
                "total_tokens": total_tokens or 0,
            }
        )
    return TraceInfo(
        trace_id=trace_id,
        experiment_id=experiment_id,
        request_time=request_time,
        execution_duration=execution_duration,
        state=state,
        request_preview=request_preview,
        response_preview=response_preview,
        client_request_id=client_request_id,
        tags=tags,
        trace_metadata=metadata,
        name=name,
    )


_TRACE_ID = operator.attrgetter("_trace_id")
_START = operator.attrgetter("_start_time_ns")


def _ordered_spans(spans: list[Span]) -> list[Span]:
    """By start time; a parent before its children when they started at the same instant.

    Spans rarely share a start time: then a plain sort by it is the answer (linear on rows
    that came sorted), and the parent depths are worked out only when some do.
    """
    starts = list(map(_START, spans))
    if len(set(starts)) == len(starts):
        return sorted(spans, key=_START)
    return _ordered_with_ties(spans, starts)


def _ordered_with_ties(spans: list[Span], starts: list[int]) -> list[Span]:
    """``_ordered_spans`` when start times repeat: depth (from the root) breaks the ties.

    Only spans that share a start time need their depth. Walking up from them gives the
    depths a walk from every span would, unless the parent links loop (bad data), where a
    depth depends on where the walk entered the loop: then every span is walked, in list
    order, as the store always did.
    """
    parents = {s.span_id: s.parent_id for s in spans}
    depths: dict[str, int] = {}
    loops: list[str] = []

    def depth(span_id: str) -> int:
        chain: list[str] = []
        node: str | None = span_id
        while node is not None and node in parents and node not in depths and node not in chain:
            chain.append(node)
            node = parents[node]
        if node is not None and node in chain:
            loops.append(node)
        level = depths.get(node, -1) if node is not None else -1
        for item in reversed(chain):  # a cycle (bad data) just stops the walk
            level += 1
            depths[item] = level
        return depths.get(span_id, 0)

    seen: set[int] = set()
    tied: set[int] = set()
    for start in starts:
        (tied if start in seen else seen).add(start)
    keys = [(start, depth(s.span_id) if start in tied else 0) for s, start in zip(spans, starts)]
    if loops:
        depths.clear()
        keys = [(start, depth(s.span_id)) for s, start in zip(spans, starts)]
    order = sorted(range(len(spans)), key=keys.__getitem__)
    return [spans[i] for i in order]


_STRUCTURE_COLUMNS = SUMMARY_COLUMNS

# A span with none of the structure attributes, as SQLite and PostgreSQL write the array.
_NOTHING_PICKED = frozenset(
    sep.join(["null"] * len(STRUCTURE_ATTRIBUTES)).join("[]") for sep in (",", ", ")
)


def _structure_span(
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    name: str,
    span_type: str,
    status_code: str,
    status_message: str | None,
    start_time_ns: int,
    end_time_ns: int | None,
    picked: str | None,
) -> Span:
    """A span without payloads (a ``_structure_query`` row, in ``_STRUCTURE_COLUMNS`` order
    then the structure attributes the database picked out, as a JSON array)."""
    attributes: dict[str, Any] = {}
    if picked is not None and picked not in _NOTHING_PICKED:  # most spans: skip the parse
        values = _loads(picked)
        if isinstance(values, list):
            attributes = {k: v for k, v in zip(STRUCTURE_ATTRIBUTES, values) if v is not None}
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=name,
        span_type=span_type,
        start_time_ns=start_time_ns,
        end_time_ns=end_time_ns,
        status=SpanStatus(
            status_code if status_code in SpanStatusCode.ALL else SpanStatusCode.UNSET,
            status_message or "",
        ),
        attributes=attributes,
    )


class TraceReads(SqlBase):
    """``get_trace`` and its lighter forms, ``search_traces``."""

    def get_trace(self, trace_id: str) -> Trace | None:
        """The trace with all its spans, or ``None``."""
        with self._read("read a trace") as conn:
            infos = self._trace_infos(conn, self._trace_rows(conn, [trace_id]))
            if not infos:
                return None
            spans = self._load_spans(conn, [trace_id]).get(trace_id, [])
        return Trace(info=infos[0], data=TraceData(spans=spans))

    def get_trace_info(self, trace_id: str) -> TraceInfo | None:
        """The trace's summary (no spans), or ``None``."""
        with self._read("read a trace") as conn:
            infos = self._trace_infos(conn, self._trace_rows(conn, [trace_id]))
        return infos[0] if infos else None

    def get_trace_structure(self, trace_id: str) -> Trace | None:
        """The trace with its spans but not their payloads (see ``Store.get_trace_structure``).

        The database picks the ``STRUCTURE_ATTRIBUTES`` out of each span's attributes, so
        inputs, outputs, events and large attributes are never read into Python.
        """
        with self._read("read a trace") as conn:
            infos = self._trace_infos(conn, self._trace_rows(conn, [trace_id]))
            if not infos:
                return None
            rows = conn.execute(self._structure_query(trace_id)).all()
        spans = [_structure_span(*row) for row in rows]
        return Trace(info=infos[0], data=TraceData(spans=_ordered_spans(spans)))

    def _structure_query(self, trace_id: str) -> sa.Select[Any]:
        """The span columns of one trace, with the structure attributes as a JSON array text."""
        c = t.spans.c
        columns = [c[name] for name in _STRUCTURE_COLUMNS]
        where = c.trace_id == trace_id
        if self._dialect == "postgresql":
            # Parse each span's attributes once (OFFSET 0 keeps the planner from inlining the
            # cast into every key lookup), then build the array from the parsed value.
            parsed = sa.cast(c.attributes, postgresql.JSONB).label("parsed")
            inner = sa.select(*columns, parsed).where(where).offset(0).subquery("structure")
            values = [
                inner.c.parsed.op("->")(sa.literal(key, sa.Text)) for key in STRUCTURE_ATTRIBUTES
            ]
            as_text = sa.cast(sa.func.jsonb_build_array(*values), sa.Text)
            return sa.select(
                *[inner.c[name] for name in _STRUCTURE_COLUMNS], as_text.label("picked")
            )
        paths = [sa.literal(f'$."{key}"') for key in STRUCTURE_ATTRIBUTES]  # our own keys
        picked = sa.case(  # several paths give a JSON array; most spans have no attributes
            (c.attributes == "{}", sa.null()),
            else_=sa.func.json_extract(c.attributes, *paths),
        )
        return sa.select(*columns, picked.label("picked")).where(where)

    def get_span(self, trace_id: str, span_id: str) -> Span | None:
        """One span with its payloads (parsed when read), or ``None``."""
        with self._read("read a span") as conn:
            row = conn.execute(reads.SPAN, {"trace_id": trace_id, "span_id": span_id}).first()
        return None if row is None else StoredSpan(row)

    def span_artifact_keys(
        self, trace_ids: Sequence[str], span_ids: Sequence[str] | None = None
    ) -> dict[tuple[str, str], str]:
        """``{(trace id, span id): spans.artifact_keys}`` for spans of ``trace_ids`` that
        have one (at least those of ``span_ids``, if given): which payloads
        ``OffloadingStore`` moved to its artifact repository, and where."""
        c = t.spans.c
        found: dict[tuple[str, str], str] = {}
        with self._read("read artifact keys") as conn:
            for chunk in self._chunks(list(trace_ids)):
                query = sa.select(c.trace_id, c.span_id, c.artifact_keys).where(
                    c.trace_id.in_(chunk), c.artifact_keys.is_not(None)
                )
                if span_ids is not None and len(span_ids) <= self._chunk_size:
                    query = query.where(c.span_id.in_(list(span_ids)))
                found.update(((tid, sid), keys) for tid, sid, keys in conn.execute(query))
        return found

    def _trace_rows(self, conn: Connection, trace_ids: list[str]) -> Sequence[Sequence[Any]]:
        """Summary rows (``reads.TRACE_COLUMNS``) of these traces."""
        return conn.execute(reads.TRACE_ROWS, {"ids": trace_ids}).all()

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
        """One page of traces matching the filter language (``store/search.py``)."""
        limit = search.check_max_results(max_results)
        offset = search.decode_page_token(page_token)
        conditions = search.compile_trace_filter(search.parse_filter(filter_string), self._dialect)
        order = search.parse_order_by(
            order_by,
            search.TRACE_ORDER_COLUMNS,
            prefix="trace",
            default=search.OrderKey("request_time", ascending=False),
        )
        if experiment_ids is not None:
            conditions.append(t.traces.c.experiment_id.in_(_experiment_id_list(experiment_ids)))
        if run_id is not None:
            conditions.append(t.traces.c.run_id == run_id)
        query = (
            sa.select(*reads.TRACE_SELECT)
            .where(*conditions)
            .order_by(*search.order_clauses(order, t.traces, "trace_id"))
            .limit(limit + 1)
            .offset(offset)
        )
        with self._read("search traces") as conn:
            rows = conn.execute(query).all()
            infos = self._trace_infos(conn, rows[:limit])
            spans = self._load_spans(conn, [i.trace_id for i in infos]) if include_spans else {}
        page = [Trace(info, TraceData(spans=spans.get(info.trace_id, []))) for info in infos]
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return page, token

    def _trace_infos(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> list[TraceInfo]:
        """``TraceInfo`` for summary rows (``reads.TRACE_COLUMNS``), with their tags and
        metadata (two queries; none when there are no rows)."""
        if not rows:
            return []
        ids = [row[0] for row in rows]
        tags = self._trace_key_values(conn, reads.TRACE_TAGS, ids)
        metadata = self._trace_key_values(conn, reads.TRACE_METADATA, ids)
        return [_trace_info(row, tags.get(row[0], {}), metadata.get(row[0], {})) for row in rows]

    def _trace_key_values(
        self, conn: Connection, statement: sa.Select[Any], ids: Sequence[str]
    ) -> dict[str, dict[str, str]]:
        """``{trace id: {key: value}}`` from a prebuilt (trace_id, key, value) statement."""
        out: dict[str, dict[str, str]] = {}
        for chunk in self._chunks(ids):
            for owner_id, key, value in conn.execute(statement, {"ids": chunk}):
                out.setdefault(owner_id, {})[key] = value
        return out

    def _load_spans(self, conn: Connection, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
        """Spans of many traces in one query per ``ID_CHUNK`` traces, payloads parsed on
        first use (``StoredSpan``)."""
        grouped: dict[str, list[Span]] = {}
        for chunk in self._chunks(trace_ids):
            rows = conn.execute(reads.SPANS, {"ids": chunk}).all()  # by trace, start time
            for trace_id, spans in itertools.groupby(map(StoredSpan, rows), _TRACE_ID):
                grouped.setdefault(trace_id, []).extend(spans)
        return {tid: _ordered_spans(spans) for tid, spans in grouped.items()}
