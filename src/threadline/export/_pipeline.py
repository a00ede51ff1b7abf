"""The export pipeline: finished spans → bounded queue → one writer → destinations.

Spans are queued as they finish, so long traces stream to the store and a crash loses only
what was in flight. A worker thread (started with the first span) writes batches when
enough items wait or a short interval passes. In synchronous mode (the default) the thread
that ends a root span writes what is pending before returning, so the trace is durable;
in async mode it returns at once. Each destination is a ``Channel`` that retries failed
batches with back-off and spills them to the on-disk spool; the spool is replayed when the
destination is back, also by the next process.

The traced program's thread never waits on tracing longer than
``THREADLINE_SYNC_EXPORT_TIMEOUT_SECONDS``: it waits for the writer's lock that long at
most (not at all once the lock has been held that long), its network calls end by that
deadline, and a destination that failed is not tried again on that thread: the worker
retries it (with longer timeouts) until it answers. Nothing here raises into the traced
program. Process hooks (exit, SIGTERM, fork) live in ``_process_hooks.py``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from threadline import settings
from threadline.export import _process_hooks
from threadline.export._channel import Channel
from threadline.export._destination import Destination, StoreDestination
from threadline.export._replay import SpoolReplayer
from threadline.export._report import FlushReport, build_report
from threadline.export._rows import rows_for_batch
from threadline.export._spool import Spool, destination_key, spool_from_settings
from threadline.store._call_deadline import within
from threadline.tracing import _safety

if TYPE_CHECKING:
    from collections import deque

    from threadline.tracing._span import LiveSpan, TraceState

__all__ = ["ExportPipeline", "FlushReport"]

_BATCH_ITEMS = 2000  # most items written in one transaction
_WAKE_ITEMS = 512  # wake the worker once this many items wait
_INTERVAL_S = 0.5  # ...or after this long
_ITEMS_PER_QUEUED_TRACE = 16  # queue bound in items = max queue size (traces) x this
_FULL_WAIT_S = 1.0  # a full queue blocks the caller at most about this long
_FLUSH_RETRY_FIRST_S = 0.1  # a waiting flush retries after this, doubling...
_FLUSH_RETRY_MAX_S = 2.0  # ...up to this (it is waiting for the destination to return)


class ExportPipeline:
    """Queue, writer and channels for finished spans. Thread-safe; one per process."""

    def __init__(self, destination: Destination | None = None) -> None:
        self._async = settings.ASYNC_TRACE_LOGGING.get()
        self._max_items = settings.ASYNC_MAX_QUEUE_SIZE.get() * _ITEMS_PER_QUEUED_TRACE
        self._max_chars = settings.MAX_PAYLOAD_CHARS.get()
        self._retry_timeout = settings.ASYNC_RETRY_TIMEOUT.get()
        self.caller_timeout = settings.SYNC_EXPORT_TIMEOUT.get()
        self.exit_timeout = settings.EXIT_FLUSH_TIMEOUT.get()
        self.spool: Spool = spool_from_settings()
        self._replayer = SpoolReplayer(self.spool)
        self._channels: list[Channel] = [self._channel(destination or StoreDestination())]
        if destination is None:
            self._add_otlp_from_settings()
        self._init_threading()
        _process_hooks.register(self)
        if self.spool.release_orphans() + len(self._spooled()):
            self._start_worker()  # replay what an earlier process left for our destinations

    def _channel(self, destination: Destination) -> Channel:
        return Channel(destination, self.spool, self._max_items, self._retry_timeout)

    def _add_otlp_from_settings(self) -> None:
        """With an OTLP endpoint configured, export there too (or only there)."""
        if not (settings.OTEL_TRACES_ENDPOINT.is_set() or settings.OTEL_ENDPOINT.is_set()):
            return
        from threadline.export._otlp import otlp_destination_from_settings

        try:
            otlp = otlp_destination_from_settings()
        except Exception as exc:  # bad endpoint or missing package: say so, keep the store
            _safety.log_once("otlp-config", f"threadline: OTLP export is off: {exc}")
            return
        if otlp is None:
            return
        if settings.OTLP_EXPORT_ONLY.get():
            self._channels[0] = self._channel(otlp)
        else:
            self._channels.append(self._channel(otlp))

    def _init_threading(self) -> None:
        from collections import deque

        self._queue: deque[object] = deque()
        self._write_lock = threading.Lock()
        self._writer: int | None = None  # thread id holding _write_lock, to spot re-entry
        self._held_since: float | None = None  # when the holder took _write_lock
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    # --- configuration -----------------------------------------------------------------
    @property
    def async_mode(self) -> bool:
        return self._async

    @property
    def _destination(self) -> Destination:
        return self._channels[0].destination

    def set_async(self, enabled: bool) -> None:
        """Switch modes; going synchronous first writes what is pending."""
        if not enabled:
            self.flush()
        self._async = enabled

    def set_destination(self, destination: Destination) -> None:
        """Write what is pending to the old destination, then switch the primary one."""
        self.flush()
        with self._write_lock:
            self._channels[0] = self._channel(destination)

    def add_destination(self, destination: Destination) -> None:
        """Also send every batch to ``destination`` (e.g. an OTLP collector)."""
        with self._write_lock:
            self._channels.append(self._channel(destination))

    # --- hot path ----------------------------------------------------------------------
    def on_trace_start(self, state: TraceState) -> None:
        self._enqueue(state)

    def on_span_end(self, span: LiveSpan) -> None:
        self._enqueue(span)

    def on_root_end(self, span: LiveSpan) -> None:
        self._enqueue(span)
        if not self._async:
            self._attempt(time.monotonic() + self.caller_timeout, retry=False, replay=False)

    def _enqueue(self, item: object) -> None:
        queue = self._queue
        queue.append(item)
        size = len(queue)
        if size >= _WAKE_ITEMS:
            self._wake.set()
            if size >= self._max_items:
                self._relieve_full_queue()
        if self._worker is None:
            self._start_worker()

    # --- flushing ----------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> FlushReport:
        """One attempt now, of at most ``timeout`` seconds (default: the caller bound,
        ``THREADLINE_SYNC_EXPORT_TIMEOUT_SECONDS``): write what is queued, retry what failed
        before, replay this process's spooled batches. Returns at once when re-entered on
        the writing thread (a finalizer ending a span mid-write: blocking would deadlock).
        """
        limit = self.caller_timeout if timeout is None else timeout
        self._attempt(time.monotonic() + limit)
        return self.report()

    def flush_for_read(self) -> None:
        """Read-your-writes: write what is queued (as long as writes succeed) and retry the
        backlog once, each within the caller bound; a destination that fails or does not
        answer in time is left to the worker, and the read goes ahead (or fails) on its own."""
        bound = self.caller_timeout
        self._attempt(time.monotonic() + bound, replay=False, renew=bound)

    def flush_until_delivered(self, timeout: float) -> FlushReport:
        """Retry (with back-off) until everything queued, retried and spooled for this
        process's destinations is delivered, or ``timeout`` seconds have passed."""
        self._retry_until(time.monotonic() + timeout, replay=True)
        return self.report(spool=True)

    def shutdown(self, timeout: float | None = None) -> FlushReport:
        """Retry for up to ``timeout`` seconds (default ``THREADLINE_EXIT_FLUSH_TIMEOUT``),
        spool what is still undelivered, and stop the worker."""
        deadline = time.monotonic() + (self.exit_timeout if timeout is None else timeout)
        self._retry_until(deadline, replay=False)
        grace = max(0.0, deadline - time.monotonic())
        if self._acquire(time.monotonic() + grace, bounded_by_holder=False):
            try:
                if self._queue:
                    self._spool_queue("exit deadline")
                for channel in self._channels:
                    channel.spool_backlog()
            finally:
                self._release()
        else:  # the worker is stuck in a write: spool around it
            self._spool_queue("exit deadline, writer busy")
            for channel in self._channels:
                channel.abandon("exit deadline, writer busy")
        self._stop.set()
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
        with self._start_lock:  # spans ending after this start a fresh worker
            self._worker = None
            self._stop = threading.Event()
        return self.report(spool=True)

    def _retry_until(self, deadline: float, *, replay: bool) -> None:
        delay = _FLUSH_RETRY_FIRST_S
        while True:
            self._attempt(deadline, replay=replay)
            if not self._undelivered(replay):
                return
            now = time.monotonic()
            if now >= deadline:
                return
            asked = max(c.asked_delay(now) for c in self._channels)
            time.sleep(min(max(delay, asked), deadline - now))
            delay = min(delay * 2, _FLUSH_RETRY_MAX_S)

    def _undelivered(self, spool: bool) -> bool:
        if self._queue or any(c.backlog for c in self._channels):
            return True
        return spool and bool(self._spooled())

    def _attempt(
        self, deadline: float, *, retry: bool = True, replay: bool = True, renew: float = 0.0
    ) -> None:
        """Write the queue, then retry backlogs and replay the spool (if asked), all by
        ``deadline``: its network calls end by then. A destination that is failing gets
        new batches queued behind its backlog, untried. With ``renew``, each batch that
        no destination failed on grants ``renew`` more seconds (reads: a long healthy
        queue is written whole, a destination that stops answering costs one bound)."""
        if not self._acquire(deadline):
            self._wake.set()  # the worker writes them
            return
        try:
            while self._queue and time.monotonic() < deadline:
                failing = [c.failing for c in self._channels] if renew else None
                with within(deadline):
                    self._write_locked(_BATCH_ITEMS)
                if renew and failing == [c.failing for c in self._channels]:
                    deadline = max(deadline, time.monotonic() + renew)
            with within(deadline):
                for channel in self._channels if retry else ():
                    if time.monotonic() < deadline:
                        channel.retry(force=True)
                if replay and time.monotonic() < deadline:
                    self._replayer.replay(self.destination_keys(), force=True)
        finally:
            self._release()
        if self._queue:
            self._wake.set()

    # --- the writer's lock -------------------------------------------------------------
    def _acquire(self, deadline: float, *, bounded_by_holder: bool = True) -> bool:
        """Take the writer's lock by ``deadline``. Never on the thread that holds it (a
        finalizer ending a span mid-write), and, with ``bounded_by_holder``, not past the
        caller bound after the holder took it: a writer stuck on a hanging destination
        makes later callers give up at once instead of each waiting the full bound."""
        if self._writer == threading.get_ident():
            return False
        now = time.monotonic()
        wait = deadline - now
        since = self._held_since
        if bounded_by_holder and since is not None:
            wait = min(wait, since + self.caller_timeout - now)
        if not self._write_lock.acquire(timeout=-1 if wait == float("inf") else max(0.0, wait)):
            return False
        self._writer = threading.get_ident()
        self._held_since = time.monotonic()
        return True

    def _release(self) -> None:
        self._writer = None
        self._held_since = None
        self._write_lock.release()

    # --- writing -----------------------------------------------------------------------
    def report(self, *, spool: bool = False) -> FlushReport:
        """Counts of exported, retried, spooled, replayed and dropped spans so far; with
        ``spool``, also the spans waiting in the spool for this process's destinations."""
        return build_report(
            self._channels,
            self._replayer,
            queued=self.pending(),
            spool_pending=self.spooled_spans() if spool else 0,
        )

    def pending(self) -> int:
        """Items (spans and trace starts) queued and not yet handed to a destination."""
        return len(self._queue)

    def spooled_spans(self) -> int:
        """Spans waiting in the spool for this process's destinations."""
        keys = self.destination_keys()
        return sum(b.spans for b in self.spool.backlogs(keys)) if keys else 0

    def _spooled(self) -> list[Path]:
        """Spool files for this process's destinations (others are left to their owners)."""
        return self._replayer.pending(self.destination_keys())

    def destination_keys(self) -> set[str]:
        """Spool keys of this process's destinations (those that can be spooled)."""
        keys = set()
        for channel in self._channels:
            target = channel._target()
            if target:
                keys.add(destination_key(channel.name, target))
        return keys

    def _relieve_full_queue(self) -> None:
        """Bound memory without dropping and without waiting long on a slow destination.

        If the writer is idle the caller writes a batch itself (within the caller bound);
        if it is busy (perhaps on a destination that hangs) the caller waits briefly for
        room, then spools a batch.
        """
        if self._writer != threading.get_ident() and self._write_lock.acquire(blocking=False):
            self._writer = threading.get_ident()
            self._held_since = time.monotonic()
            try:
                with within(time.monotonic() + self.caller_timeout):
                    self._write_locked(_BATCH_ITEMS)
            finally:
                self._release()
            return
        deadline = time.monotonic() + _FULL_WAIT_S
        while len(self._queue) >= self._max_items and time.monotonic() < deadline:
            time.sleep(0.005)
        if len(self._queue) >= self._max_items:
            self._spool_queue("queue full, writer busy", _BATCH_ITEMS)

    def _write_pending(self, limit: int) -> None:
        if not self._acquire(float("inf"), bounded_by_holder=False):
            return
        try:
            self._write_locked(limit)
        finally:
            self._release()

    def _write_locked(self, limit: int) -> None:
        items = self._take(limit)
        if not items:
            return
        try:
            traces, spans = rows_for_batch(items, self._max_chars)
        except Exception as exc:
            _safety.internal_error("serialize-batch", exc)
            return
        for channel in self._channels:
            channel.deliver(traces, spans)

    def _take(self, limit: int | None) -> list[object]:
        queue = self._queue
        items: list[object] = []
        popleft = queue.popleft
        try:
            while queue and (limit is None or len(items) < limit):
                items.append(popleft())
        except IndexError:  # another thread emptied it between the check and the pop
            pass
        return items

    def _spool_queue(self, why: str, limit: int | None = None) -> None:
        items = self._take(limit)
        if not items:
            return
        traces, spans = rows_for_batch(items, self._max_chars)
        for channel in self._channels:
            channel._defer_to_spool(traces, spans, why)

    # --- worker ------------------------------------------------------------------------
    def _start_worker(self) -> None:
        with self._start_lock:
            if self._worker is not None:
                return
            worker = threading.Thread(target=self._run, name="threadline-export", daemon=True)
            self._worker = worker
        worker.start()

    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            self._wake.wait(_INTERVAL_S)
            self._wake.clear()
            try:
                while self._queue and not stop.is_set():
                    self._write_pending(_BATCH_ITEMS)
                failing = any(c.failing for c in self._channels)
                if failing or self._replayer.due():
                    self._retry_in_background()
            except Exception as exc:  # the worker must survive anything
                _safety.log_once("export-worker", f"threadline: export worker error: {exc}", exc)

    def _retry_in_background(self) -> None:
        if not self._acquire(float("inf"), bounded_by_holder=False):
            return
        try:
            for channel in self._channels:
                channel.retry()
            self._replayer.replay(self.destination_keys())
        finally:
            self._release()

    def _after_fork_in_child(self) -> None:
        # The parent exports what it had queued; the child starts empty with fresh locks.
        self._init_threading()
        for channel in self._channels:
            channel.backlog.clear()
            channel.backlog_spans = 0
            channel.inflight = None
