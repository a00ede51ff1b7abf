"""The export pipeline: finished spans → bounded queue → one writer → destination.

Spans are queued as they finish, so long traces stream to the store and a crash loses only
what was in flight. A worker thread (started with the first span) writes batches when
enough items wait or a short interval passes. In synchronous mode (the default) the thread
that ends a root span writes everything pending before returning, so the trace is durable;
in async mode it returns at once. When the queue is full the caller writes a batch itself,
which bounds memory without dropping anything. Failures are logged once per kind, counted,
and never raised. The pipeline survives ``os.fork()`` and flushes at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from threadline import settings
from threadline.export._destination import Destination, StoreDestination
from threadline.export._rows import rows_for_batch
from threadline.tracing import _safety

if TYPE_CHECKING:
    from threadline.tracing._span import LiveSpan, TraceState

_BATCH_ITEMS = 2000  # most items written in one transaction
_WAKE_ITEMS = 512  # wake the worker once this many items wait
_INTERVAL_S = 0.5  # ...or after this long
_ITEMS_PER_QUEUED_TRACE = 16  # queue bound in items = max queue size (traces) x this


@dataclass
class ExportStats:
    """Counters of what the pipeline did in this process."""

    spans_exported: int = 0
    traces_exported: int = 0
    spans_dropped: int = 0
    failed_batches: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)


class ExportPipeline:
    """Queue and writer for finished spans. Thread-safe; one per process."""

    def __init__(self, destination: Destination | None = None) -> None:
        self._destination: Destination = destination or StoreDestination()
        self._async = settings.ASYNC_TRACE_LOGGING.get()
        self._max_items = settings.ASYNC_MAX_QUEUE_SIZE.get() * _ITEMS_PER_QUEUED_TRACE
        self._max_chars = settings.MAX_PAYLOAD_CHARS.get()
        self.stats = ExportStats()
        self._init_threading()
        _register_process_hooks(self)

    def _init_threading(self) -> None:
        self._queue: deque[object] = deque()
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._pid = os.getpid()

    # --- configuration -----------------------------------------------------------------
    @property
    def async_mode(self) -> bool:
        return self._async

    def set_async(self, enabled: bool) -> None:
        """Switch modes; going synchronous first writes what is pending."""
        if not enabled:
            self.flush()
        self._async = enabled

    def set_destination(self, destination: Destination) -> None:
        """Write what is pending to the old destination, then switch."""
        self.flush()
        self._destination = destination

    # --- hot path ----------------------------------------------------------------------
    def on_trace_start(self, state: TraceState) -> None:
        self._enqueue(state)

    def on_span_end(self, span: LiveSpan) -> None:
        self._enqueue(span)

    def on_root_end(self, span: LiveSpan) -> None:
        self._enqueue(span)
        if not self._async:
            self.flush()

    def _enqueue(self, item: object) -> None:
        queue = self._queue
        queue.append(item)
        size = len(queue)
        if size >= _WAKE_ITEMS:
            if size >= self._max_items:
                self._write_pending(limit=_BATCH_ITEMS)  # caller writes: bounded memory
            else:
                self._wake.set()
        if self._worker is None:
            self._start_worker()

    # --- writing -----------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far; ``False`` if the lock was not had in ``timeout``."""
        if not self._write_lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            while self._queue:
                self._write_locked(_BATCH_ITEMS)
        finally:
            self._write_lock.release()
        return True

    def pending(self) -> int:
        return len(self._queue)

    def _write_pending(self, limit: int) -> None:
        with self._write_lock:
            self._write_locked(limit)

    def _write_locked(self, limit: int) -> None:
        queue = self._queue
        items: list[object] = []
        popleft = queue.popleft
        try:
            while queue and len(items) < limit:
                items.append(popleft())
        except IndexError:  # another thread emptied it between the check and the pop
            pass
        if not items:
            return
        try:
            traces, spans = rows_for_batch(items, self._max_chars)
            self._destination.write(traces, spans)
        except Exception as exc:
            self._count_failure(items, exc)
            return
        self.stats.spans_exported += len(spans)
        self.stats.traces_exported += sum(1 for t in traces if t.state != "IN_PROGRESS")

    def _count_failure(self, items: list[object], exc: Exception) -> None:
        from threadline.tracing._span import LiveSpan

        lost = sum(1 for item in items if isinstance(item, LiveSpan))
        stats = self.stats
        stats.failed_batches += 1
        stats.spans_dropped += lost
        reason = type(exc).__name__
        stats.drop_reasons[reason] = stats.drop_reasons.get(reason, 0) + lost
        _safety.log_once(
            f"export:{reason}",
            f"threadline: could not write {lost} spans to the trace store "
            f"({reason}: {exc}); they were dropped. {stats.spans_dropped} spans dropped so far.",
            exc,
        )

    # --- worker ------------------------------------------------------------------------
    def _start_worker(self) -> None:
        with self._start_lock:
            if self._worker is not None:
                return
            worker = threading.Thread(target=self._run, name="threadline-export", daemon=True)
            self._worker = worker
        worker.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_INTERVAL_S)
            self._wake.clear()
            try:
                while self._queue and not self._stop.is_set():
                    self._write_pending(_BATCH_ITEMS)
            except Exception as exc:  # the worker must survive anything
                _safety.log_once("export-worker", f"threadline: export worker error: {exc}", exc)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Write what is pending and stop the worker."""
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
        # Spans that end after this (e.g. later atexit hooks) start a fresh worker.
        with self._start_lock:
            self._worker = None
            self._stop = threading.Event()

    def _after_fork_in_child(self) -> None:
        # The parent exports what it had queued; the child starts empty with fresh locks.
        self._init_threading()


_pipelines: weakref.WeakSet[ExportPipeline] = weakref.WeakSet()
_hooks_registered = False


def _register_process_hooks(pipeline: ExportPipeline) -> None:
    global _hooks_registered
    _pipelines.add(pipeline)
    if _hooks_registered:
        return
    _hooks_registered = True
    atexit.register(_flush_all_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reinit_all_after_fork)


def _flush_all_at_exit() -> None:
    for pipeline in list(_pipelines):
        try:
            pipeline.shutdown(timeout=30.0)
        except Exception as exc:
            _safety.log_once("export-exit", f"threadline: flush at exit failed: {exc}", exc)


def _reinit_all_after_fork() -> None:
    for pipeline in list(_pipelines):
        pipeline._after_fork_in_child()
