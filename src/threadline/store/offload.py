"""``OffloadingStore``: any ``Store``, with large span payloads kept in an artifact repository.

Why a wrapper and not a feature of ``SqlStore``: the database stays the one place that
search reads (trace rows, span names, types, statuses, attributes), while bodies that are
only ever read whole move out; any back end gets this without changing its SQL.

Writes. A span's ``inputs``, ``outputs`` or ``events`` JSON larger than ``threshold_bytes``
(UTF-8) is written to the repository under ``traces/<trace id>/<span id>/<field>.json``,
and the row keeps a small reference instead: ``{"threadline.artifact": {"key", "bytes",
"preview"}}`` (for events, one event of that name carrying the same attributes), with the
payload's first 1,000 characters as the preview, so a row read without this wrapper still
says what it was and where it went. Attributes stay inline: ``span.attributes.<key>``
filters run in SQL on them. Keys are derived from the ids, so sending a span again
overwrites the same objects (writes stay idempotent). Artifacts are written first and the
rows only when every artifact is stored: if the repository fails, ``ArtifactStoreError``
(a ``StoreError``: retry later; the server answers 503) is raised and nothing of the batch
reaches the database, so no row ever points at a payload that is not there.

Reads. ``get_trace``, ``search_traces`` and any other read that returns ``Trace`` or ``Span``
values resolve references transparently. A reference is followed only when its key is the
one derived from the span's own ids and field, so a payload that merely looks like a
reference (or names another trace's artifact) is returned as it is. An artifact that is
gone is logged and its reference (with the preview) returned; a repository that fails
raises ``ArtifactStoreError``.

Deletes. Deleting traces removes ``traces/<trace id>/`` from the repository afterwards,
best effort: a failure there is logged and never fails the delete. Deletion by age is run
as deletions by id, oldest first, one page at a time, so the ids to clean up are known.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from threadline import _json as fast_json
from threadline.artifacts.base import ArtifactNotFoundError, ArtifactRepository
from threadline.entities.span import Span, SpanEvent
from threadline.entities.trace import Trace, TraceInfo, truncate_preview
from threadline.errors import InvalidArgumentError
from threadline.store._stored_span import StoredSpan
from threadline.store.base import SpanRow, Store, TraceRow

logger = logging.getLogger(__name__)

REFERENCE = "threadline.artifact"
DEFAULT_THRESHOLD_BYTES = 64 * 1024
#: Repository calls in flight at once for one batch or one read (S3 round trips overlap).
PARALLEL_CALLS = 8
#: Traces deleted per step of a deletion by age.
DELETE_PAGE = 1000
_FIELDS = {"inputs_json": "inputs", "outputs_json": "outputs", "events_json": "events"}
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# A \u escape of a character of REFERENCE ("threadline.artifact": '.' and a-z), which could
# spell it in JSON text; escapes of other characters (é, 中 …) cannot.
_REFERENCE_ESCAPE = re.compile(r"\\u00(?:[67][0-9a-fA-F]|2[eE])")
_ENCODING = ("utf-8", "surrogatepass")  # lossless, even for text with lone surrogates

R = TypeVar("R")
V = TypeVar("V")


def payload_bytes(text: str, over: int) -> int | None:
    """The UTF-8 size of ``text`` when it is larger than ``over`` bytes, else ``None``.

    Cheap for the common small payload: a text of n characters takes n to 4n bytes.
    """
    if len(text) * 4 <= over:
        return None
    size = len(text) if text.isascii() else len(text.encode(*_ENCODING))
    return size if size > over else None


def artifact_key(trace_id: str, span_id: str, field: str) -> str:
    """Where a span's ``field`` (``inputs``, ``outputs`` or ``events``) is kept."""
    return f"{trace_prefix(trace_id)}{_segment(span_id)}/{field}.json"


def trace_prefix(trace_id: str) -> str:
    """The folder of every artifact of one trace."""
    return f"traces/{_segment(trace_id)}/"


def _segment(text: str) -> str:
    """An id as one safe key segment; ids with other characters are hashed."""
    if _SAFE_ID.fullmatch(text):
        return text
    return "h-" + hashlib.sha256(text.encode(*_ENCODING)).hexdigest()[:40]


class OffloadingStore:
    """``store`` with span payloads above ``threshold_bytes`` kept in ``repository``.

    Every ``Store`` method not defined here passes straight through to ``store``; any
    ``Trace`` or ``Span`` it returns is resolved too.
    """

    def __init__(
        self,
        store: Store,
        repository: ArtifactRepository,
        *,
        threshold_bytes: int = DEFAULT_THRESHOLD_BYTES,
    ) -> None:
        if isinstance(threshold_bytes, bool) or not isinstance(threshold_bytes, int):
            raise InvalidArgumentError(
                f"threshold_bytes must be a positive integer, got {threshold_bytes!r}."
            )
        if threshold_bytes <= 0:
            raise InvalidArgumentError(
                f"threshold_bytes must be a positive integer, got {threshold_bytes!r}."
            )
        self._store = store
        self._repository = repository
        self._threshold = threshold_bytes

    def __repr__(self) -> str:
        return f"OffloadingStore({self._store!r}, {self._repository.location!r})"

    @property
    def inner(self) -> Store:
        """The wrapped store (rows there hold references, not offloaded payloads)."""
        return self._store

    @property
    def repository(self) -> ArtifactRepository:
        return self._repository

    @property
    def threshold_bytes(self) -> int:
        return self._threshold

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # also keeps copy/pickle probing away from a missing _store
            raise AttributeError(name)
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def resolved(*args: Any, **kwargs: Any) -> Any:
            return self._resolve_result(attribute(*args, **kwargs))

        return resolved

    # --- writes --------------------------------------------------------------------------

    def offload(self, spans: Sequence[SpanRow]) -> list[SpanRow]:
        """Write the large payloads of ``spans`` to the repository; the rows to store instead.

        Raises ``ArtifactStoreError`` when the repository fails (nothing should then be
        stored: some artifacts may exist, and are overwritten when the batch comes again).
        """
        rows = list(spans)
        uploads: list[tuple[int, str, str, bytes]] = []
        for index, row in enumerate(rows):
            for field, name in _FIELDS.items():
                text = getattr(row, field)
                if not isinstance(text, str) or len(text) * 4 <= self._threshold:
                    continue  # the common case: too short to be over, whatever the characters
                data = text.encode(*_ENCODING)
                if len(data) > self._threshold:
                    key = artifact_key(row.trace_id, row.span_id, name)
                    uploads.append((index, field, key, data))
        if not uploads:
            return rows
        _each(lambda upload: self._repository.put(upload[2], upload[3]), uploads)
        changes: dict[int, dict[str, Any]] = {}
        for index, field, key, data in uploads:
            text = getattr(rows[index], field)
            changes.setdefault(index, {})[field] = _reference_json(
                _FIELDS[field], key, len(data), text, rows[index].start_time_ns
            )
        for index, fields in changes.items():
            rows[index] = dataclasses.replace(rows[index], **fields)
        return rows

    def log_batch(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        """Offload large payloads, then write the rows (``Store.log_batch``)."""
        self._store.log_batch(traces, self.offload(spans))

    # --- reads ---------------------------------------------------------------------------

    def get_trace(self, trace_id: str) -> Trace | None:
        trace = self._store.get_trace(trace_id)
        return None if trace is None else self._resolve_traces([trace])[0]

    def get_trace_info(self, trace_id: str) -> TraceInfo | None:
        return self._store.get_trace_info(trace_id)

    def get_trace_structure(self, trace_id: str) -> Trace | None:
        """Spans without payloads: nothing to fetch from the repository."""
        return self._store.get_trace_structure(trace_id)

    def get_span(self, trace_id: str, span_id: str) -> Span | None:
        span = self._store.get_span(trace_id, span_id)
        return None if span is None else self._resolve_spans([span])[0]

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
        traces, token = self._store.search_traces(
            experiment_ids=experiment_ids,
            filter_string=filter_string,
            max_results=max_results,
            order_by=order_by,
            page_token=page_token,
            run_id=run_id,
            include_spans=include_spans,
        )
        return (self._resolve_traces(traces) if include_spans else traces), token

    def _resolve_result(self, value: Any) -> Any:
        if isinstance(value, Trace):
            return self._resolve_traces([value])[0]
        if isinstance(value, Span):
            return self._resolve_spans([value])[0]
        if isinstance(value, list) and value and all(isinstance(v, Trace) for v in value):
            return self._resolve_traces(value)
        if isinstance(value, list) and value and all(isinstance(v, Span) for v in value):
            return self._resolve_spans(value)
        if isinstance(value, tuple):
            return tuple(self._resolve_result(v) for v in value)
        return value

    def _resolve_traces(self, traces: list[Trace]) -> list[Trace]:
        spans = self._resolve_spans([s for trace in traces for s in trace.data.spans])
        out: list[Trace] = []
        start = 0
        for trace in traces:
            end = start + len(trace.data.spans)
            resolved = spans[start:end]
            start = end
            if any(a is not b for a, b in zip(resolved, trace.data.spans)):
                trace = dataclasses.replace(
                    trace, data=dataclasses.replace(trace.data, spans=resolved)
                )
            out.append(trace)
        return out

    def _resolve_spans(self, spans: list[Span]) -> list[Span]:
        """The spans with their references replaced by the artifacts' contents."""
        wanted = [
            (index, name, key)
            for index, span in enumerate(spans)
            for name, key in _references(span)
        ]
        if not wanted:
            return spans
        contents = _each(lambda item: self._fetch(item[2]), wanted)
        changes: dict[int, dict[str, Any]] = {}
        for (index, name, key), data in zip(wanted, contents):
            if data is None:
                logger.warning(
                    "The %s of span %s in trace %s are missing from the artifact store %s "
                    "(key %s); returning the stored reference and preview instead.",
                    name,
                    spans[index].span_id,
                    spans[index].trace_id,
                    self._repository.location,
                    key,
                )
                continue
            changes.setdefault(index, {})[name] = _decoded(name, data)
        out = list(spans)
        for index, fields in changes.items():
            out[index] = Span.from_dict({**spans[index].to_dict(), **fields})
        return out

    def _fetch(self, key: str) -> bytes | None:
        try:
            return self._repository.get(key)
        except ArtifactNotFoundError:
            return None

    # --- deletes -------------------------------------------------------------------------

    def delete_traces(
        self,
        experiment_id: str,
        max_timestamp_millis: int | None = None,
        max_traces: int | None = None,
        trace_ids: Sequence[str] | None = None,
    ) -> int:
        """``Store.delete_traces``, then the deleted traces' artifacts (best effort)."""
        if trace_ids is None and _is_age_delete(max_timestamp_millis, max_traces):
            assert max_timestamp_millis is not None
            return self._delete_by_age(str(experiment_id), max_timestamp_millis, max_traces)
        if trace_ids is None or isinstance(trace_ids, str):
            # Invalid arguments: the store raises the error that explains them.
            return self._store.delete_traces(
                experiment_id, max_timestamp_millis, max_traces, trace_ids
            )
        ids = list(trace_ids)
        deleted = self._store.delete_traces(experiment_id, max_timestamp_millis, max_traces, ids)
        if deleted:  # ids of other experiments were not deleted: keep their artifacts
            gone = [tid for tid in dict.fromkeys(ids) if self._store.get_trace_info(tid) is None]
            self._forget(gone)
        return deleted

    def _delete_by_age(self, experiment_id: str, before_ms: int, max_traces: int | None) -> int:
        total = 0
        while max_traces is None or total < max_traces:
            size = DELETE_PAGE if max_traces is None else min(DELETE_PAGE, max_traces - total)
            page, _ = self._store.search_traces(
                experiment_ids=[experiment_id],
                filter_string=f"trace.timestamp_ms <= {before_ms}",
                max_results=size,
                order_by=["timestamp_ms ASC"],
                include_spans=False,
            )
            ids = [trace.info.trace_id for trace in page]
            deleted = self._store.delete_traces(experiment_id, trace_ids=ids) if ids else 0
            total += deleted
            self._forget(ids)  # searched in this experiment: every one of them is gone
            if len(ids) < size or deleted == 0:
                break
        return total

    def _forget(self, trace_ids: Iterable[str]) -> None:
        prefixes = [trace_prefix(str(tid)) for tid in trace_ids]
        if not prefixes:
            return
        failures = [
            (prefix, error)
            for prefix, error in zip(prefixes, _each(self._delete_prefix, prefixes))
            if error is not None
        ]
        if failures:
            prefix, error = failures[0]
            logger.warning(
                "Deleted traces, but could not delete the artifacts of %d of them from %s "
                "(first: %s: %s); remove them by hand if space matters.",
                len(failures),
                self._repository.location,
                prefix,
                error,
            )

    def _delete_prefix(self, prefix: str) -> Exception | None:
        try:
            self._repository.delete_prefix(prefix)
        except Exception as exc:  # best effort: the traces are already deleted
            return exc
        return None


def _is_age_delete(max_timestamp_millis: Any, max_traces: Any) -> bool:
    """Whether these are valid arguments of a deletion by age (the store checks the rest)."""
    if isinstance(max_timestamp_millis, bool) or not isinstance(max_timestamp_millis, int):
        return False
    return max_traces is None or (type(max_traces) is int and max_traces >= 1)


def _reference_json(name: str, key: str, size: int, text: str, start_time_ns: int) -> str:
    reference = {"key": key, "bytes": size, "preview": truncate_preview(text)}
    if name == "events":
        event = {"name": REFERENCE, "timestamp_ns": start_time_ns, "attributes": reference}
        return json.dumps([event], ensure_ascii=False)
    return json.dumps({REFERENCE: reference}, ensure_ascii=False)


def _references(span: Span) -> list[tuple[str, str]]:
    """``(field, key)`` of each reference in ``span`` that points at its own artifact."""
    found = []
    for name in ("inputs", "outputs"):
        if not _may_reference(span, name):
            continue
        value = getattr(span, name)
        if isinstance(value, dict) and len(value) == 1 and REFERENCE in value:
            key = artifact_key(span.trace_id, span.span_id, name)
            reference = value[REFERENCE]
            if isinstance(reference, dict) and reference.get("key") == key:
                found.append((name, key))
    if not _may_reference(span, "events"):
        return found
    events = span.events
    if len(events) == 1 and events[0].name == REFERENCE:
        key = artifact_key(span.trace_id, span.span_id, "events")
        if events[0].attributes.get("key") == key:
            found.append(("events", key))
    return found


def _may_reference(span: Span, field: str) -> bool:
    """Whether ``field`` of ``span`` may hold a reference. A stored span's payload not yet
    parsed is checked as text, and stays unparsed (the fast path) when it cannot: the
    reference's key name must appear in it, literally or spelt with ``\\u`` escapes."""
    text = span.unparsed_text(field) if isinstance(span, StoredSpan) else None
    if text is None or REFERENCE in text:
        return True
    return "\\u" in text and _REFERENCE_ESCAPE.search(text) is not None


def _decoded(name: str, data: bytes) -> Any:
    """An artifact back to the value the span had (as the SQL store reads inline JSON)."""
    value = fast_json.stored_value(data.decode(*_ENCODING))  # not JSON: kept as text
    if name != "events":
        return value
    events = []
    for item in value if isinstance(value, list) else []:
        try:
            events.append(SpanEvent.from_dict(item).to_dict())
        except (KeyError, TypeError, ValueError, AttributeError):
            logger.debug("Skipping a malformed span event in an artifact: %r", item)
    return events


def _each(call: Callable[[V], R], items: Sequence[V]) -> list[R]:
    """``call`` on every item, a few at a time; results in order; the first error raised."""
    if len(items) <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(min(PARALLEL_CALLS, len(items))) as pool:
        return list(pool.map(call, items))
