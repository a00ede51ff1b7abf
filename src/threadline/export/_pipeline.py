"""The export pipeline: finished spans → bounded queue → one writer → destinations.

Spans are queued as they finish, so long traces stream to the store and a crash loses only
what was in flight. A worker thread (started with the first span) writes batches when
enough items wait or a short interval passes. In synchronous mode (the default) the thread
that ends a root span writes everything pending before returning, so the trace is durable;
in async mode it returns at once. When the queue is full the caller writes a batch itself,
which bounds memory without dropping anything. Each destination is a ``Channel`` that
retries failed batches with back-off and spills them to the on-disk spool; the spool is
replayed when the destination is back, also by the next process. Nothing here raises into
the traced program. The pipeline survives ``os.fork()``, flushes at exit and on SIGTERM.
"""

from __future__ import annotations

import atexit
import os
import random
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from threadline import settings
from threadline.export._channel import Channel, DeliveryStats
from threadline.export._destination import Destination, StoreDestination, destination_for
from threadline.export._rows import rows_for_batch
from threadline.export._spool import Spool, destination_key
from threadline.tracing import _safety

if TYPE_CHECKING:
    from collections import deque

    from threadline.tracing._span import LiveSpan, TraceState

_BATCH_ITEMS = 2000  # most items written in one transaction
_WAKE_ITEMS = 512  # wake the worker once this many items wait
_INTERVAL_S = 0.5  # ...or after this long
_ITEMS_PER_QUEUED_TRACE = 16  # queue bound in items = max queue size (traces) x this
_EXIT_DEADLINE_S = 10.0  # exit/SIGTERM: write for at most this long, then spool the rest
_SPOOL_BACKOFF_MAX_S = 30.0
_FULL_WAIT_S = 1.0  # a full queue blocks the caller at most about this long


@dataclass(frozen=True)
class FlushReport:
    """What the pipeline did since the process started, and what still waits (spans)."""

    exported_spans: int
    exported_traces: int
    spooled_spans: int
    replayed_spans: int
    dropped_spans: int
    pending_spans: int
    reasons: dict[str, int] = field(default_factory=dict)
    destinations: dict[str, DeliveryStats] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Everything finished so far reached its destination (nothing waits or was lost)."""
        return self.dropped_spans == 0 and self.pending_spans == 0


class ExportPipeline:
    """Queue, writer and channels for finished spans. Thread-safe; one per process."""

    def __init__(self, destination: Destination | None = None) -> None:
        self._async = settings.ASYNC_TRACE_LOGGING.get()
        self._max_items = settings.ASYNC_MAX_QUEUE_SIZE.get() * _ITEMS_PER_QUEUED_TRACE
        self._max_chars = settings.MAX_PAYLOAD_CHARS.get()
        self._retry_timeout = settings.ASYNC_RETRY_TIMEOUT.get()
        self.spool = _spool_from_settings()
        self.replayed_spans = 0
        self._spool_backoff = 0.0
        self._spool_next_try = 0.0
        self._channels: list[Channel] = [self._channel(destination or StoreDestination())]
        if destination is None:
            self._add_otlp_from_settings()
        self._init_threading()
        _register_process_hooks(self)
        if self.spool is not None and self.spool.release_orphans() + len(self._spooled()):
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
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._pid = os.getpid()

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
            self.flush()

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

    # --- writing -----------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> FlushReport:
        """Write everything queued so far, retry what failed before, replay the spool.

        Re-entered on the thread that is writing (a span ended by a garbage-collection
        finalizer in the middle of a write) it returns at once: the running writer, or the
        worker, writes what was queued. Blocking there would deadlock.
        """
        if self._writer == threading.get_ident():
            self._wake.set()
            return self.report()
        if self._write_lock.acquire(timeout=-1 if timeout is None else timeout):
            self._writer = threading.get_ident()
            try:
                while self._queue:
                    self._write_locked(_BATCH_ITEMS)
                for channel in self._channels:
                    channel.retry(force=True)
                self._replay_spool(force=True)
            finally:
                self._writer = None
                self._write_lock.release()
        return self.report()

    def report(self) -> FlushReport:
        """Counts of exported, retried, spooled, replayed and dropped spans so far."""
        stats = {c.name: c.stats for c in self._channels}
        primary = self._channels[0].stats
        reasons: dict[str, int] = {}
        for channel in self._channels:
            for reason, count in channel.stats.reasons.items():
                key = f"{channel.name}: {reason}"
                reasons[key] = reasons.get(key, 0) + count
        return FlushReport(
            exported_spans=primary.exported,
            exported_traces=primary.traces_exported,
            spooled_spans=sum(c.stats.spooled for c in self._channels),
            replayed_spans=self.replayed_spans,
            dropped_spans=sum(c.stats.dropped for c in self._channels),
            pending_spans=self.pending() + sum(c.backlog_spans for c in self._channels),
            reasons=reasons,
            destinations=stats,
        )

    def pending(self) -> int:
        """Items (spans and trace starts) queued and not yet handed to a destination."""
        return len(self._queue)

    def _relieve_full_queue(self) -> None:
        """Bound memory without dropping and without waiting long on a slow destination.

        If the writer is idle the caller writes a batch itself; if it is busy (perhaps on a
        destination that hangs) the caller waits briefly for room, then spools a batch.
        """
        if self._write_lock.acquire(blocking=False):
            self._writer = threading.get_ident()
            try:
                self._write_locked(_BATCH_ITEMS)
            finally:
                self._writer = None
                self._write_lock.release()
            return
        deadline = time.monotonic() + _FULL_WAIT_S
        while len(self._queue) >= self._max_items and time.monotonic() < deadline:
            time.sleep(0.005)
        if len(self._queue) >= self._max_items:
            items: list[object] = []
            while self._queue and len(items) < _BATCH_ITEMS:
                try:
                    items.append(self._queue.popleft())
                except IndexError:
                    break
            traces, spans = rows_for_batch(items, self._max_chars)
            for channel in self._channels:
                channel._defer_to_spool(traces, spans, "queue full, writer busy")

    def _write_pending(self, limit: int) -> None:
        with self._write_lock:
            self._writer = threading.get_ident()
            try:
                self._write_locked(limit)
            finally:
                self._writer = None

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
        except Exception as exc:
            _safety.internal_error("serialize-batch", exc)
            return
        for channel in self._channels:
            channel.deliver(traces, spans)

    def _spooled(self) -> list[Path]:
        """Spool files for this process's destinations (others are left to their owners)."""
        if self.spool is None:
            return []
        keys = set()
        for channel in self._channels:
            target = channel._target()
            if target:
                keys.add(destination_key(channel.name, target))
        return self.spool.pending(keys)

    def _replay_spool(self, force: bool = False) -> None:
        spool = self.spool
        if spool is None or (not force and time.monotonic() < self._spool_next_try):
            return
        for path in self._spooled():
            claimed = spool.claim(path)
            if claimed is None:
                continue
            try:
                kind, target, traces, spans = spool.load(claimed)
            except Exception as exc:
                claimed.rename(claimed.with_name(claimed.name + ".unreadable"))
                _safety.log_once("spool-corrupt", f"threadline: unreadable spool file: {exc}")
                continue
            try:
                destination_for(kind, target).write(traces, spans)
            except Exception as exc:
                spool.release(claimed)
                self._spool_backoff = min(max(self._spool_backoff * 2, 0.5), _SPOOL_BACKOFF_MAX_S)
                self._spool_next_try = time.monotonic() + self._spool_backoff * random.uniform(
                    0.5, 1.5
                )
                _safety.log_once(
                    f"spool-replay:{kind}",
                    f"threadline: spooled traces for {target} could not be replayed yet "
                    f"({type(exc).__name__}: {exc}); will retry.",
                )
                return
            spool.done(claimed)
            self.replayed_spans += len(spans)
        self._spool_backoff = 0.0

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
                if any(c.failing for c in self._channels) or self._spooled():
                    with self._write_lock:
                        self._writer = threading.get_ident()
                        try:
                            for channel in self._channels:
                                channel.retry()
                            self._replay_spool()
                        finally:
                            self._writer = None
            except Exception as exc:  # the worker must survive anything
                _safety.log_once("export-worker", f"threadline: export worker error: {exc}", exc)

    def shutdown(self, timeout: float = _EXIT_DEADLINE_S) -> FlushReport:
        """Write what is pending within ``timeout``, spool what could not be, stop the worker."""
        deadline = time.monotonic() + timeout
        if self._write_lock.acquire(timeout=timeout):
            self._writer = threading.get_ident()
            try:
                while self._queue and time.monotonic() < deadline:
                    self._write_locked(_BATCH_ITEMS)
                if self._queue:  # out of time: spool the rest without trying the destination
                    self._spool_queue()
                for channel in self._channels:
                    if time.monotonic() < deadline:
                        channel.retry(force=True)
                    channel.spool_backlog()
            finally:
                self._writer = None
                self._write_lock.release()
        self._stop.set()
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
        with self._start_lock:  # spans ending after this start a fresh worker
            self._worker = None
            self._stop = threading.Event()
        return self.report()

    def _spool_queue(self) -> None:
        items = list(self._drain())
        traces, spans = rows_for_batch(items, self._max_chars)
        for channel in self._channels:
            channel._defer_to_spool(traces, spans, "exit deadline")

    def _drain(self) -> deque[object]:
        from collections import deque

        drained: deque[object] = deque()
        while self._queue:
            try:
                drained.append(self._queue.popleft())
            except IndexError:
                break
        return drained

    def _after_fork_in_child(self) -> None:
        # The parent exports what it had queued; the child starts empty with fresh locks.
        self._init_threading()
        for channel in self._channels:
            channel.backlog.clear()
            channel.backlog_spans = 0


def _spool_from_settings() -> Spool | None:
    folder = settings.SPOOL_DIR.get()
    if folder:
        return Spool(Path(folder), settings.SPOOL_MAX_BYTES.get())
    try:
        base = Path.home() / ".cache"
    except (RuntimeError, KeyError):  # no home directory (some containers, system users)
        import tempfile

        base = Path(tempfile.gettempdir())
    return Spool(base / "threadline" / "spool", settings.SPOOL_MAX_BYTES.get())


_pipelines: weakref.WeakSet[ExportPipeline] = weakref.WeakSet()
_hooks_registered = False


def _register_process_hooks(pipeline: ExportPipeline) -> None:
    global _hooks_registered
    _pipelines.add(pipeline)
    if _hooks_registered:
        return
    _hooks_registered = True
    atexit.register(_flush_all, "exit")
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reinit_all_after_fork)
    _install_sigterm_flush()


def _flush_all(why: str) -> None:
    for pipeline in list(_pipelines):
        try:
            pipeline.shutdown(_EXIT_DEADLINE_S)
        except Exception as exc:
            _safety.log_once("export-exit", f"threadline: flush at {why} failed: {exc}", exc)


def _install_sigterm_flush() -> None:
    """On SIGTERM, flush (within the deadline) and then terminate as the default would.

    Installed only from the main thread and only if no SIGTERM handler was set, so an
    application's own handling always wins.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        _flush_all("SIGTERM")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


def _reinit_all_after_fork() -> None:
    for pipeline in list(_pipelines):
        pipeline._after_fork_in_child()
