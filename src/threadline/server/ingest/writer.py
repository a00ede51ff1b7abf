"""The ingest queue and its one writer: accepted rows are written in batches, and a request
is acknowledged only once the transaction holding its rows has committed.

``submit`` puts a request's rows on a bounded queue (counted in rows) or raises
``QueueFullError`` (the route answers 503 with ``Retry-After``). One asyncio task takes
everything queued (up to ``batch_rows``) and calls ``store.log_batch`` in a thread, so the
event loop never blocks on the database; every request in that batch is then resolved
together (group commit: one commit serves many requests, each waiting on its own future).
Writes are idempotent upserts, so retrying is safe:

* the store is unreachable (``StoreError`` and it does not answer) → the writer retries
  with back-off until it is back; meanwhile waiting requests and new ones get 503
  (``StoreUnavailableError``) at once, and the queued rows are written when it returns;
* the store refuses a request's data (``InvalidArgumentError``) → that request alone is
  answered 400 at once; the other requests of its batch are written without it;
* a request keeps failing while the store answers → dropped after ``POISON_ATTEMPTS``
  tries (its client gets the error), so nothing can block the queue forever.

``close`` stops accepting and drains the queue (server shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from threadline.errors import StoreError, ThreadlineError
from threadline.store.base import SpanRow, Store, TraceRow

logger = logging.getLogger(__name__)

POISON_ATTEMPTS = 3
FIRST_RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 5.0
WARNING_INTERVAL = 30.0


class IngestUnavailableError(Exception):
    """Rows cannot be accepted now; send them again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFullError(IngestUnavailableError):
    """The queue cannot take these rows now."""


class StoreUnavailableError(IngestUnavailableError):
    """The store does not answer; queued rows wait for it, new ones are refused."""


class WriterClosedError(IngestUnavailableError):
    """The server is shutting down and accepts no more rows."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message, retry_after)


@dataclass
class _Item:
    traces: Sequence[TraceRow]
    spans: Sequence[SpanRow]
    done: asyncio.Future[None] | None  # set when someone waits for the write

    @property
    def rows(self) -> int:
        return len(self.traces) + len(self.spans)


class WritePriority:
    """Lets the writer have the interpreter while it holds SQLite's write lock.

    SQLite has one write lock for the whole database, shared by every server process. A
    writer thread that holds it while this process's decoding threads compete with it for
    the GIL keeps the lock several times longer than its own work takes, and the other
    workers' writers wait meanwhile. So the store reports when it holds the lock
    (``SqlStore.on_write_lock``) and decoding pauses until it is released (``wait_turn``,
    called between spans), at most ``MAX_PAUSE_SECONDS`` at a time.
    """

    MAX_PAUSE_SECONDS = 0.5

    def __init__(self) -> None:
        self._free = threading.Event()
        self._free.set()

    def lock_held(self, held: bool) -> None:
        """The store's ``on_write_lock`` hook."""
        if held:
            self._free.clear()
        else:
            self._free.set()

    def wait_turn(self) -> None:
        """Wait while the writer holds the write lock (bounded, so nothing stalls)."""
        self._free.wait(self.MAX_PAUSE_SECONDS)


class BatchWriter:
    """A bounded queue of rows and the single task that writes them to ``store``."""

    def __init__(
        self,
        store: Store,
        *,
        max_queued_rows: int,
        batch_rows: int,
        retry_after: int = 1,
    ) -> None:
        self._store = store
        self._max_rows = max_queued_rows
        self._batch_rows = batch_rows
        self._retry_after = retry_after
        self._items: deque[_Item] = deque()
        self._queued_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_warning = float("-inf")
        self._last_request_rows = 0
        self._store_down: StoreError | None = None  # the error while the store is unreachable
        self.written_rows = 0
        self.dropped_rows = 0

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def start(self) -> None:
        """Start the writer task on the running loop (at app startup, or on first use).

        After ``close`` it starts afresh: an app whose lifespan runs again ingests again.
        """
        if self._task is None or self._task.done():
            self._closing = False
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ingest-writer")

    def check_room(self) -> None:
        """Raise ``QueueFullError`` now if a request like the last one would not fit (or
        ``StoreUnavailableError``, ``WriterClosedError``): the route asks before decoding, so
        a full queue or a down store costs a client a quick 503 and the server no work."""
        if self._closing:
            raise WriterClosedError("The server is shutting down; send the batch again later.")
        if self._store_down is not None:
            raise self._unreachable()
        if self._queued_rows and self._queued_rows + self._last_request_rows > self._max_rows:
            raise self._full()

    def _full(self) -> QueueFullError:
        return QueueFullError(
            f"The ingest queue is full ({self._queued_rows} rows waiting to be written); "
            f"retry in {self._retry_after} s.",
            self._retry_after,
        )

    def _unreachable(self) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"The store is unavailable ({self._store_down}); nothing of this request was "
            f"stored. Retry in {self._retry_after} s.",
            self._retry_after,
        )

    @property
    def store_available(self) -> bool:
        """False while the writer finds the store unreachable."""
        return self._store_down is None

    def submit(
        self, traces: Sequence[TraceRow], spans: Sequence[SpanRow], *, wait: bool = False
    ) -> asyncio.Future[None] | None:
        """Queue rows; with ``wait``, returns a future resolved once they are committed."""
        if self._closing:
            raise WriterClosedError("The server is shutting down; send the batch again later.")
        if self._store_down is not None:
            raise self._unreachable()
        self.start()
        rows = len(traces) + len(spans)
        self._last_request_rows = rows
        if rows and self._queued_rows and self._queued_rows + rows > self._max_rows:
            raise self._full()
        done = asyncio.get_running_loop().create_future() if wait else None
        if done is not None:  # a waiter that gave up must not leave an unread exception
            done.add_done_callback(lambda f: f.cancelled() or f.exception())
        if not rows:
            if done is not None:
                done.set_result(None)
            return done
        self._items.append(_Item(traces, spans, done))
        self._queued_rows += rows
        assert self._wakeup is not None
        self._wakeup.set()
        return done

    async def close(self, timeout: float) -> int:
        """Stop accepting, write what is queued (within ``timeout`` s); returns rows lost."""
        self._closing = True
        if self._task is None or self._wakeup is None:
            return 0
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except asyncio.TimeoutError:
            self._task.cancel()
            lost = self._queued_rows
            logger.error("Ingest queue not drained within %.0f s: %d rows lost", timeout, lost)
            self.dropped_rows += lost
            for item in self._items:
                if item.done is not None and not item.done.done():
                    item.done.set_exception(WriterClosedError("The server shut down first."))
            self._items.clear()
            self._queued_rows = 0
            return lost
        return 0

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._items:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._take_batch()
            await self._write(batch)
            for item in batch:
                self._queued_rows -= item.rows
                self._items.popleft()

    def _take_batch(self) -> list[_Item]:
        """The oldest items, up to ``batch_rows`` rows (at least one item). They stay queued
        (and counted) until written."""
        batch: list[_Item] = []
        rows = 0
        for item in self._items:
            if batch and rows + item.rows > self._batch_rows:
                break
            batch.append(item)
            rows += item.rows
        return batch

    async def _write(self, batch: list[_Item]) -> None:
        traces = [row for item in batch for row in item.traces]
        spans = [row for item in batch for row in item.spans]
        try:
            await asyncio.to_thread(self._store.log_batch, traces, spans)
        except Exception as exc:
            if len(batch) > 1:  # find the culprit: write the requests one by one
                for item in batch:
                    await self._write_one(item)
                return
            await self._write_one(batch[0], first_error=exc)
            return
        self._succeeded(batch)

    async def _write_one(self, item: _Item, first_error: Exception | None = None) -> None:
        delay = FIRST_RETRY_DELAY
        failures_while_store_up = 0
        error = first_error
        while True:
            if error is None:
                try:
                    await asyncio.to_thread(self._store.log_batch, item.traces, item.spans)
                except Exception as exc:
                    error = exc
                else:
                    self._succeeded([item])
                    return
            if not isinstance(error, StoreError):  # the data is refused: resending cannot help
                self._drop(item, error)
                return
            if await self._store_answers():
                failures_while_store_up += 1
                if failures_while_store_up >= POISON_ATTEMPTS:
                    self._drop(item, error)
                    return
            else:
                self._unavailable(error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)
            error = None

    def _unavailable(self, error: StoreError) -> None:
        """The store is down: refuse new requests and answer the waiting ones 503 now (their
        rows stay queued and are written once it is back; a resend is harmless)."""
        first = self._store_down is None
        self._store_down = error
        if first or time.monotonic() - self._last_warning > WARNING_INTERVAL:
            self._last_warning = time.monotonic()
            logger.warning(
                "Store unavailable; %d rows wait to be written: %s", self._queued_rows, error
            )
        refusal = self._unreachable()
        for item in self._items:
            if item.done is not None and not item.done.done():
                item.done.set_exception(refusal)

    async def _store_answers(self) -> bool:
        try:
            await asyncio.to_thread(self._store.search_experiments, max_results=1)
        except Exception:
            return False
        return True

    def _succeeded(self, items: list[_Item]) -> None:
        if self._store_down is not None:
            logger.warning("Store available again; writing the %d queued rows", self._queued_rows)
            self._store_down = None
        for item in items:
            self.written_rows += item.rows
            if item.done is not None and not item.done.done():
                item.done.set_result(None)

    def _drop(self, item: _Item, error: Exception) -> None:
        self.dropped_rows += item.rows
        logger.error(
            "Dropped %d trace and %d span rows the store refused: %s: %s",
            len(item.traces),
            len(item.spans),
            type(error).__name__,
            error,
            exc_info=not isinstance(error, ThreadlineError),
        )
        if item.done is not None and not item.done.done():
            item.done.set_exception(error)


async def wait_written(done: asyncio.Future[None], timeout: float) -> bool:
    """Wait for a submitted batch's commit; ``False`` on timeout (it stays queued and will
    be written).

    Raises the store's error if the batch was refused, ``StoreUnavailableError`` if the
    store went away meanwhile.
    """
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout)
    except asyncio.TimeoutError:
        return False
    return True
