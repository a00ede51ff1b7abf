"""Delivery to one destination, losing nothing silently.

A batch is written at once while the destination is healthy. When a write fails the
batch waits in memory and is retried with exponential back-off and jitter; a batch still
undelivered after the retry timeout, or one that does not fit in memory, goes to the
on-disk spool. Only when the spool is full is a batch dropped, and then it is counted.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field

from threadline.export._destination import Destination
from threadline.export._spool import Spool, SpoolFull
from threadline.store.base import SpanRow, TraceRow
from threadline.tracing import _safety

_BACKOFF_START_S = 0.5
_BACKOFF_MAX_S = 30.0


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
    """One destination with its backlog and back-off state. Used under the pipeline's lock."""

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
        self._backoff = 0.0
        self._next_try = 0.0

    @property
    def name(self) -> str:
        return str(getattr(self.destination, "kind", type(self.destination).__name__))

    @property
    def failing(self) -> bool:
        return bool(self.backlog)

    def deliver(self, traces: list[TraceRow], spans: list[SpanRow]) -> None:
        """Write now if healthy, else queue behind the backlog (order is kept)."""
        target = self._target()
        if not self.backlog:
            try:
                self.destination.write(traces, spans)
            except Exception as exc:
                if getattr(exc, "retryable", True) is False:
                    self._drop(len(spans), f"rejected: {exc}"[:200])
                    return
                self._failed(exc, len(spans))
            else:
                self._delivered(traces, spans)
                return
        self._defer(_Deferred(traces, spans, time.monotonic(), target))

    def retry(self, *, force: bool = False) -> None:
        """Retry the backlog when the back-off allows (always with ``force``)."""
        if not self.backlog:
            return
        now = time.monotonic()
        if not force and now < self._next_try:
            self._spool_expired(now)
            return
        while self.backlog:
            item = self.backlog[0]
            try:
                self.destination.write(item.traces, item.spans)
            except Exception as exc:
                if getattr(exc, "retryable", True) is False:  # resending cannot succeed
                    self.backlog.popleft()
                    self.backlog_spans -= len(item.spans)
                    self._drop(len(item.spans), f"rejected: {exc}"[:200])
                    continue
                self._failed(exc, 0)
                break
            self.backlog.popleft()
            self.backlog_spans -= len(item.spans)
            self.stats.retried += len(item.spans)
            self._delivered(item.traces, item.spans)
        else:
            self._backoff = 0.0
        self._spool_expired(time.monotonic())

    def spool_backlog(self) -> None:
        """Move everything waiting in memory to the spool (at exit, or when asked)."""
        while self.backlog:
            item = self.backlog.popleft()
            self.backlog_spans -= len(item.spans)
            self._to_spool(item, "exit with destination down")

    def _defer_to_spool(self, traces: list[TraceRow], spans: list[SpanRow], why: str) -> None:
        """Spool a batch without trying the destination (exit deadline passed)."""
        self._to_spool(_Deferred(traces, spans, time.monotonic(), self._target()), why)

    # --- internals -----------------------------------------------------------------------
    def _target(self) -> str:
        try:
            return str(self.destination.target())
        except Exception:  # no target: such a destination's batches cannot be spooled
            return ""

    def _delivered(self, traces: list[TraceRow], spans: list[SpanRow]) -> None:
        self.stats.exported += len(spans)
        self.stats.traces_exported += sum(1 for t in traces if t.state != "IN_PROGRESS")

    def _failed(self, exc: Exception, spans: int) -> None:
        reason = f"{type(exc).__name__}"
        self.stats.note(f"write failed: {reason}", spans)
        delay = getattr(exc, "retry_after", None)
        if isinstance(delay, (int, float)) and delay > 0:
            self._backoff = min(float(delay), _BACKOFF_MAX_S)
        else:
            self._backoff = min(max(self._backoff * 2, _BACKOFF_START_S), _BACKOFF_MAX_S)
        jitter = random.uniform(0.5, 1.5)
        self._next_try = time.monotonic() + self._backoff * jitter
        _safety.log_once(
            f"export:{self.name}:{reason}",
            f"threadline: could not write traces to the {self.name} destination "
            f"({reason}: {exc}); they will be retried with back-off and kept on disk if it "
            "stays unavailable.",
            exc,
        )

    def _defer(self, item: _Deferred) -> None:
        if self.backlog_spans + len(item.spans) > self.max_backlog_spans:
            self._to_spool(item, "backlog full")
            return
        self.backlog.append(item)
        self.backlog_spans += len(item.spans)

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
            self._drop(count, f"{why}, spool full")
            _safety.log_once("spool-full", f"threadline: {exc}; traces were dropped.")
            return
        except OSError as exc:
            self._drop(count, f"{why}, spool not writable")
            _safety.log_once("spool-error", f"threadline: cannot write the spool: {exc}", exc)
            return
        self.stats.spooled += count
        self.stats.note(f"spooled: {why}", count)

    def _drop(self, count: int, reason: str) -> None:
        self.stats.dropped += count
        self.stats.note(f"dropped: {reason}", count)
        _safety.log_once(
            f"drop:{reason}",
            f"threadline: {count} spans could not be exported and were dropped ({reason}). "
            f"{self.stats.dropped} dropped so far.",
        )
