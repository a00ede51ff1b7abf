"""``OffloadingStore``: a ``SqlStore``, with large span payloads kept in an artifact repository.

Why a wrapper and not a feature of ``SqlStore``: the database stays the one place that
search reads (trace rows, span names, types, statuses, attributes), while bodies that are
only ever read whole move out, and the embedded store never loads any of this.

Writes. A span's ``inputs``, ``outputs`` or ``events`` larger than ``threshold_bytes``
(UTF-8) goes to the repository under a key of its experiment, trace and span ids; the row
keeps a reference with a preview, and records in ``artifact_keys`` what moved where
(``_offloaded`` has the format). Attributes stay inline for ``span.attributes.<key>``
filters. Sending a span again overwrites the same objects. Artifacts are written first,
the rows only once all are stored: if the repository fails, ``ArtifactStoreError`` (a
``StoreError``: retry later; the server answers 503) is raised and nothing of the batch
reaches the database, so no row points at a payload that is not there.

Reads that return ``Trace`` or ``Span`` values resolve the references the rows record, and
only those: a payload that merely looks like one (sent over OTLP or the REST API, or
written by the SDK's embedded store) comes back exactly as sent. A missing artifact is
logged and its reference returned; a failing repository raises ``ArtifactStoreError``.

Deleting traces then deletes their artifacts, best effort (logged, never failing the
delete): the trace's folder for the experiment, and the objects its rows recorded
elsewhere (before the trace moved, or keys of an older threadline), never another's.
Deletion by age runs as deletions by id, a page at a time, so the ids are known.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from threadline.artifacts.base import ArtifactNotFoundError, ArtifactRepository
from threadline.entities.keys import DEFAULT_EXPERIMENT_ID
from threadline.entities.span import Span
from threadline.entities.trace import Trace, TraceInfo
from threadline.errors import InvalidArgumentError
from threadline.store._offloaded import (
    ENCODING,
    FIELDS,
    REFERENCE,
    OffloadedSpanRow,
    artifact_key,
    decode_keys,
    offloaded_row,
    payload_bytes,
    payload_value,
    reference_fields,
    reference_json,
    row_keys,
    trace_prefix,
)
from threadline.store.base import SpanRow, Store, TraceRow

__all__ = [
    "DEFAULT_THRESHOLD_BYTES",
    "REFERENCE",
    "OffloadedSpanRow",
    "OffloadingStore",
    "artifact_key",
    "payload_bytes",
    "trace_prefix",
]

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD_BYTES = 64 * 1024
#: Repository calls in flight at once for one batch or one read (S3 round trips overlap).
PARALLEL_CALLS = 8
#: Traces deleted per step of a deletion by age.
DELETE_PAGE = 1000

R = TypeVar("R")
V = TypeVar("V")
_Keys = Callable[..., Mapping[tuple[str, str], str]]


class OffloadingStore:
    """``store`` with span payloads above ``threshold_bytes`` kept in ``repository``.

    ``store`` must record which payloads are artifacts (``span_artifact_keys``, as
    ``SqlStore`` does). Every ``Store`` method not defined here passes straight through to
    it; any ``Trace`` or ``Span`` it returns is resolved too.
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
        keys = getattr(store, "span_artifact_keys", None)
        if not callable(keys):
            raise InvalidArgumentError(
                f"OffloadingStore needs a store that records which payloads are artifacts "
                f"(a SqlStore), got {store!r}."
            )
        self._store = store
        self._recorded: _Keys = keys
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

    def offload(self, spans: Sequence[SpanRow], traces: Sequence[TraceRow] = ()) -> list[SpanRow]:
        """Write the large payloads of ``spans`` to the repository; the rows to store instead.

        ``traces`` are the trace rows sent with them (the experiment each trace is sent
        into, which keys depend on; for a trace without one, the stored trace's, else "0").
        Raises ``ArtifactStoreError`` when the repository fails (nothing should then be
        stored: some artifacts may exist, and are overwritten when the batch comes again).
        """
        rows = list(spans)
        big: list[tuple[int, str, bytes]] = []
        for index, row in enumerate(rows):
            done: dict[str, str] | None = None
            for attribute, name in FIELDS.items():
                text = getattr(row, attribute)
                if not isinstance(text, str) or len(text) * 4 <= self._threshold:
                    continue  # the common case: too short to be over, whatever the characters
                data = text.encode(*ENCODING)
                if len(data) <= self._threshold:
                    continue
                done = row_keys(row) if done is None else done
                if name not in done:  # a reference already (offloaded before being queued)
                    big.append((index, attribute, data))
        if not big:
            return rows
        experiments = self._experiments({rows[index].trace_id for index, _, _ in big}, traces)
        uploads = []
        for index, attribute, data in big:
            row = rows[index]
            experiment_id = experiments[row.trace_id]
            key = artifact_key(experiment_id, row.trace_id, row.span_id, FIELDS[attribute])
            uploads.append((index, attribute, key, data))
        _each(lambda upload: self._repository.put(upload[2], upload[3]), uploads)
        changes: dict[int, tuple[dict[str, str], dict[str, str]]] = {}
        for index, attribute, key, data in uploads:
            row, name = rows[index], FIELDS[attribute]
            texts, keys = changes.setdefault(index, ({}, {}))
            text = getattr(row, attribute)
            texts[attribute] = reference_json(name, key, len(data), text, row.start_time_ns)
            keys[name] = key
        for index, (texts, keys) in changes.items():
            rows[index] = offloaded_row(rows[index], texts, keys)
        return rows

    def log_batch(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        """Offload large payloads, then write the rows (``Store.log_batch``)."""
        self._store.log_batch(traces, self.offload(spans, traces))

    def _experiments(self, trace_ids: set[str], traces: Sequence[TraceRow]) -> dict[str, str]:
        """The experiment each trace's spans are sent into: the trace's row in the batch,
        else the stored trace's, else the one the store files unknown traces under. Every
        one is an experiment the sender was allowed to write to."""
        found = {row.trace_id: str(row.experiment_id) for row in traces}
        claimed = {tid: found[tid] for tid in trace_ids if tid in found}
        for trace_id in sorted(trace_ids - claimed.keys()):
            info = self._store.get_trace_info(trace_id)
            claimed[trace_id] = DEFAULT_EXPERIMENT_ID if info is None else info.experiment_id
        return claimed

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
        candidates = [
            (index, names) for index, span in enumerate(spans) if (names := reference_fields(span))
        ]
        if not candidates:
            return spans
        recorded = self._recorded_keys([spans[index] for index, _ in candidates])
        wanted: list[tuple[int, str, str]] = []
        for index, names in candidates:
            keys = recorded.get((spans[index].trace_id, spans[index].span_id), {})
            wanted.extend((index, name, keys[name]) for name in names if name in keys)
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
            changes.setdefault(index, {})[name] = payload_value(name, data)
        out = list(spans)
        for index, fields in changes.items():
            out[index] = Span.from_dict({**spans[index].to_dict(), **fields})
        return out

    def _recorded_keys(self, spans: Sequence[Span]) -> dict[tuple[str, str], dict[str, str]]:
        """``{(trace id, span id): {field: key}}`` as the rows of ``spans`` record them."""
        trace_ids = sorted({span.trace_id for span in spans})
        span_ids = sorted({span.span_id for span in spans})
        return {ids: decode_keys(text) for ids, text in self._recorded(trace_ids, span_ids).items()}

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
        valid = max_timestamp_millis is None and max_traces is None
        if trace_ids is None or isinstance(trace_ids, str) or not valid:
            # Invalid arguments: the store raises the error that explains them.
            return self._store.delete_traces(
                experiment_id, max_timestamp_millis, max_traces, trace_ids
            )
        ids = list(dict.fromkeys(trace_ids))
        keys = self._trace_keys(ids) if all(isinstance(i, str) for i in ids) else {}
        deleted = self._store.delete_traces(experiment_id, trace_ids=ids)
        if deleted:  # ids of other experiments were not deleted: keep their artifacts
            gone = [tid for tid in ids if self._store.get_trace_info(tid) is None]
            self._forget(str(experiment_id), gone, keys)
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
            keys = self._trace_keys(ids) if ids else {}
            deleted = self._store.delete_traces(experiment_id, trace_ids=ids) if ids else 0
            total += deleted
            self._forget(experiment_id, ids, keys)  # searched in this experiment: all gone
            if len(ids) < size or deleted == 0:
                break
        return total

    def _trace_keys(self, trace_ids: Sequence[str]) -> dict[str, list[str]]:
        """``{trace id: keys}`` of every artifact the traces' rows record."""
        out: dict[str, list[str]] = {}
        for (trace_id, _), text in self._recorded(trace_ids).items():
            out.setdefault(trace_id, []).extend(decode_keys(text).values())
        return out

    def _forget(
        self, experiment_id: str, trace_ids: Iterable[str], keys: Mapping[str, list[str]]
    ) -> None:
        """Delete the artifacts of deleted traces: each one's folder for the experiment,
        and the span folders of keys its rows recorded outside it (never other folders:
        keys of an older threadline could share a trace folder with another trace)."""
        prefixes: list[str] = []
        for trace_id in trace_ids:
            own = trace_prefix(experiment_id, trace_id)
            prefixes.append(own)
            elsewhere = {key.rpartition("/")[0] + "/" for key in keys.get(trace_id, ())}
            prefixes.extend(sorted(p for p in elsewhere if not p.startswith(own)))
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
                "Deleted traces, but could not delete %d of their artifact folders from %s "
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


def _each(call: Callable[[V], R], items: Sequence[V]) -> list[R]:
    """``call`` on every item, a few at a time; results in order; the first error raised."""
    if len(items) <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(min(PARALLEL_CALLS, len(items))) as pool:
        return list(pool.map(call, items))
