"""Delivery to one destination, losing nothing silently.

A batch is written at once while the destination is healthy. When a write fails the
batch waits in memory and is retried with exponential back-off and jitter; a batch still
undelivered after the retry timeout, or one that does not fit in memory, goes to the
on-disk spool. While a backlog waits, new batches queue behind it without trying the
destination (so a traced call never waits on a destination known to be failing); the
background worker's retries make it healthy again.

Only data the destination refuses as such is dropped, and counted with the reason: rows a
threadline server refused (``BatchRefused``: the rest of the batch was written) or a batch
whose error says ``retryable = False`` (an OTLP collector's 400). Everything else — the
server down or hanging, a 5xx, a wrong token, an answer that is not a threadline
server's — keeps the spans. When the spool is full a batch is dropped, and counted.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field

from threadline.errors import ThreadlineError
from threadline.export._destination import Destination
from threadline.export._spool import Spool, SpoolFull
from threadline.store.base import SpanRow, TraceRow
from threadline.tracing import _safety

_BACKOFF_START_S = 0.5
_BACKOFF_MAX_S = 30.0
_REASON_CHARS = 200
_MERGE_ROWS = 2000  # small waiting batches are merged up to this many rows (fewer requests)


@dataclass
class DeliveryStats:
    """What happened to the spans sent to one destination (counts of spans)."""

    exported: int = 0
    traces_exported: int = 0
    retried: int = 0
    spooled: int = 0
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def note(self, reason: str, spans: int) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + spans


@dataclass
class _Deferred:
    traces: list[TraceRow]
    spans: list[SpanRow]
    since: float
    target: str


class Channel:
    """One destination with its backlog and back-off state. Used under the pipeline's lock
    (except ``abandon``, at exit, when the lock could not be had)."""

    def __init__(
        self,
        destination: Destination,
        spool: Spool | None,
        max_backlog_spans: int,
        retry_timeout_s: float,
    ) -> None:
        self.destination = destination
        self.spool = spool
        self.max_backlog_spans = max_backlog_spans
        self.retry_timeout_s = retry_timeout_s
        self.stats = DeliveryStats()
        self.backlog: deque[_Deferred] = deque()
        self.backlog_spans = 0
        self.inflight: _Deferred | None = None  # the batch being written now
        self._backoff = 0.0
        self._next_try = 0.0
        self._asked_until = 0.0  # the destination asked not to be called before (Retry-After)

    @property
    def name(self) -> str:
        return str(getattr(self.destination, "kind", type(self.destination).__name__))

    @property
    def failing(self) -> bool:
        return bool(self.backlog)

    def asked_delay(self, now: float) -> float:
        """Seconds the destination asked to wait before the next try (``Retry-After``)."""
        return max(0.0, self._asked_until - now)

    def deliver(self, traces: list[TraceRow], spans: list[SpanRow]) -> None:
        """Write now if healthy, else queue behind the backlog (order is kept)."""
        item = _Deferred(traces, spans, time.monotonic(), self._target())
        if not self.backlog and not self._attempt(item, first=True):
            return
        self._defer(item)

    def retry(self, *, force: bool = False) -> None:
        """Retry the backlog when the back-off allows (with ``force``: unless the
        destination asked for a delay, ``Retry-After``)."""
        if not self.backlog:
            return
        now = time.monotonic()
        if now < self._asked_until or (not force and now < self._next_try):
            self._spool_expired(now)
            return
        while self.backlog:
            item = self.backlog[0]
            if self._attempt(item, first=False):
                break
            self.backlog.popleft()
            self.backlog_spans -= len(item.spans)
        else:
            self._backoff = 0.0
        self._spool_expired(time.monotonic())

    def spool_backlog(self, why: str = "exit with destination down") -> None:
        """Move everything waiting in memory to the spool (at exit, or when asked)."""
        while self.backlog:
            item = self.backlog.popleft()
            self.backlog_spans -= len(item.spans)
            self._to_spool(item, why)

    def abandon(self, why: str) -> None:
        """At exit, with the writer stuck in a write: spool the batch in flight and the
        backlog. A batch in flight may still arrive too; writes are idempotent upserts."""
        inflight, self.inflight = self.inflight, None
        if inflight is not None:
            self._to_spool(inflight, why)
        self.spool_backlog(why)

    def _defer_to_spool(self, traces: list[TraceRow], spans: list[SpanRow], why: str) -> None:
        """Spool a batch without trying the destination (exit deadline passed)."""
        self._to_spool(_Deferred(traces, spans, time.monotonic(), self._target()), why)

    # --- internals -----------------------------------------------------------------------
    def _attempt(self, item: _Deferred, *, first: bool) -> bool:
        """Write one batch; ``True`` if it must wait (and be retried), ``False`` when done:
        delivered, or refused by the destination (then dropped and counted)."""
        self.inflight = item
        try:
            self.destination.write(item.traces, item.spans)
        except Exception as exc:
            refused = getattr(exc, "refused", None)
            if refused is not None:  # only those rows: the rest was written
                self._partly_delivered(item, refused, getattr(exc, "reasons", {}), first)
                return False
            if getattr(exc, "retryable", True) is False:  # resending cannot succeed
                self._drop(len(item.spans), f"rejected: {exc}"[:_REASON_CHARS])
                return False
            self._failed(exc, len(item.spans) if first else 0)
            return True
        finally:
            self.inflight = None
        if not first:
            self.stats.retried += len(item.spans)
        self._delivered(item.traces, item.spans)
        return False

    def _target(self) -> str:
        try:
            return str(self.destination.target())
        except Exception:  # no target: such a destination's batches cannot be spooled
            return ""

    def _delivered(self, traces: list[TraceRow], spans: list[SpanRow]) -> None:
        self.stats.exported += len(spans)
        self.stats.traces_exported += sum(1 for t in traces if t.state != "IN_PROGRESS")

    def _partly_delivered(
        self,
        item: _Deferred,
        refused: tuple[list[TraceRow], list[SpanRow]],
        reasons: dict[str, int],
        first: bool,
    ) -> None:
        refused_traces = {id(t) for t in refused[0]}
        refused_spans = {id(s) for s in refused[1]}
        traces = [t for t in item.traces if id(t) not in refused_traces]
        spans = [s for s in item.spans if id(s) not in refused_spans]
        if not first:
            self.stats.retried += len(spans)
        self._delivered(traces, spans)
        for reason, count in (reasons or {"refused": len(refused[1])}).items():
            self._drop(count, f"refused by the server: {reason}", log_kind="refused")

    def _failed(self, exc: Exception, spans: int) -> None:
        cause = str(getattr(exc, "cause", "") or type(exc).__name__)
        self.stats.note(f"write failed: {cause}", spans)
        now = time.monotonic()
        delay = getattr(exc, "retry_after", None)
        if isinstance(delay, (int, float)) and delay > 0:
            self._backoff = min(float(delay), _BACKOFF_MAX_S)
            self._asked_until = now + self._backoff
            self._next_try = self._asked_until
        else:
            self._backoff = min(max(self._backoff * 2, _BACKOFF_START_S), _BACKOFF_MAX_S)
            self._next_try = now + self._backoff * random.uniform(0.5, 1.5)
        known = isinstance(exc, (ThreadlineError, OSError))  # its message says it all
        _safety.log_once(
            f"export:{self.name}:{cause}",
            f"threadline: could not write traces to the {self.name} destination "
            f"({type(exc).__name__}: {exc}); the spans are kept: retried with back-off, "
            "then spooled to disk if it stays unavailable (see `threadline spool status`).",
            None if known else exc,
        )

    def _defer(self, item: _Deferred) -> None:
        if self.backlog_spans + len(item.spans) > self.max_backlog_spans:
            self._to_spool(item, "backlog full")
            return
        self.backlog_spans += len(item.spans)
        last = self.backlog[-1] if self.backlog else None
        rows = len(item.traces) + len(item.spans)
        if last and last.target == item.target and _rows(last) + rows <= _MERGE_ROWS:
            # One retry (and one spool file) for many small batches: sync mode defers one
            # per trace. New lists: a batch's lists are shared with the other channels.
            last.traces = last.traces + item.traces
            last.spans = last.spans + item.spans
            return
        self.backlog.append(item)

    def _spool_expired(self, now: float) -> None:
        while self.backlog and now - self.backlog[0].since > self.retry_timeout_s:
            item = self.backlog.popleft()
            self.backlog_spans -= len(item.spans)
            self._to_spool(item, "retry timeout")

    def _to_spool(self, item: _Deferred, why: str) -> None:
        count = len(item.spans)
        if self.spool is None or not item.target:
            self._drop(count, f"{why}, no spool")
            return
        try:
            self.spool.put(self.name, item.target, item.traces, item.spans)
        except SpoolFull as exc:
            halves = _halves(item)
            if halves is not None:  # what fits is kept: merged batches can be large
                for half in halves:
                    self._to_spool(half, why)
                return
            self._drop(count, f"{why}, spool full")
            _safety.log_once("spool-full", f"threadline: {exc}; traces were dropped.")
            return
        except OSError as exc:
            self._drop(count, f"{why}, spool not writable")
            _safety.log_once("spool-error", f"threadline: cannot write the spool: {exc}", exc)
            return
        self.stats.spooled += count
        self.stats.note(f"spooled: {why}", count)

    def _drop(self, count: int, reason: str, log_kind: str | None = None) -> None:
        self.stats.dropped += count
        self.stats.note(f"dropped: {reason}", count)
        _safety.log_once(
            f"drop:{log_kind or reason}",
            f"threadline: {count} spans could not be exported and were dropped ({reason}). "
            f"{self.stats.dropped} dropped so far.",
        )


def _rows(item: _Deferred) -> int:
    return len(item.traces) + len(item.spans)


def _halves(item: _Deferred) -> tuple[_Deferred, _Deferred] | None:
    """The batch in two, by trace (each trace's rows stay together); ``None`` for one trace."""
    ids = list(
        dict.fromkeys([*(t.trace_id for t in item.traces), *(s.trace_id for s in item.spans)])
    )
    if len(ids) < 2:
        return None
    first = set(ids[: len(ids) // 2])
    parts = [
        _Deferred(
            [t for t in item.traces if (t.trace_id in first) == side],
            [s for s in item.spans if (s.trace_id in first) == side],
            item.since,
            item.target,
        )
        for side in (True, False)
    ]
    return parts[0], parts[1]
