"""How many bytes of ingest request bodies a server process reads and decodes at once.

Decoding a body takes a few times its size in memory, and every ingest request used to be
read and decoded in full before the queue could refuse it: eight concurrent 29 MB OTLP
bodies took a process from 88 MB to 1.4 GB. ``IngestBudget`` (ASGI middleware on
``POST /v1/traces`` and ``POST /api/v1/traces/batch``) reserves each request's body in a
``ByteBudget`` first: from its Content-Length before anything is read, else as it arrives,
and (through ``BUDGET_STATE_KEY``, read by ``BodyPolicy``) as gzip is decompressed. A body
that does not fit is refused with 503 and ``Retry-After``, never kept or decoded. Its bytes
are still read and dropped before answering (at most the body size limit, within the body
timeout): closing a connection the client is still writing to resets it, and the client
would see a network error instead of the 503. A client that sent ``Expect: 100-continue``
gets the 503 at once, before sending its body.

A request alone always fits, whatever its size (the body size limit is ``BodyPolicy``'s,
413), so no request is refused for ever. Fewer large bodies decoded at once also leaves
the CPU and the thread pool to the read API meanwhile. Once the last large request is
done, freed memory is handed back to the system (``release_memory``) rather than kept in
the C allocator's free lists.
"""

from __future__ import annotations

import asyncio
import threading
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from starlette.datastructures import Headers

from threadline.server.errors import error_response

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

INGEST_PATHS = frozenset({"/v1/traces", "/api/v1/traces/batch"})
BUDGET_STATE_KEY = "threadline.ingest_budget"  # scope["state"]: the request's Reservation
RELEASE_AFTER_BYTES = 8 * 1024 * 1024  # reserved since the last release: worth a malloc_trim
RELEASE_AGAIN_SECONDS = 3.0  # the queued rows of those requests are written by then


class ByteBudget:
    """At most ``capacity`` bytes reserved at once (thread-safe: gunzip runs in a thread)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self.holders = 0
        self.reserved_since_release = 0
        self._lock = threading.Lock()

    def reservation(self) -> Reservation:
        with self._lock:
            self.holders += 1
        return Reservation(self)

    def _take(self, reservation: Reservation, size: int) -> bool:
        with self._lock:
            if reservation.closed:  # its request is over (a thread still decompressing)
                return False
            alone = self.used == reservation.held  # nobody else holds any
            if self.used + size > self.capacity and not alone:
                return False
            self.used += size
            self.reserved_since_release += size
            reservation.held += size
            return True

    def _give_back(self, reservation: Reservation) -> bool:
        """Returns whether the budget is now idle after enough traffic to release memory."""
        with self._lock:
            if reservation.closed:
                return False
            reservation.closed = True
            self.used -= reservation.held
            self.holders -= 1
            reservation.held = 0
            if self.holders == 0 and self.reserved_since_release >= RELEASE_AFTER_BYTES:
                self.reserved_since_release = 0
                return True
            return False


class Reservation:
    """One request's share of a ``ByteBudget``; ``take`` more as its body grows."""

    def __init__(self, budget: ByteBudget) -> None:
        self.budget = budget
        self.held = 0
        self.closed = False

    def take(self, size: int) -> bool:
        """Reserve ``size`` more bytes; False (nothing reserved) when they do not fit."""
        return self.budget._take(self, size)

    def close(self) -> bool:
        """Give the bytes back; True when memory is worth releasing now (the first time)."""
        return self.budget._give_back(self)


class OverBudget(Exception):
    """The body being read does not fit in the budget (raised by ``receive``)."""


class IngestBudget:
    """ASGI middleware: ingest bodies reserved in a ``ByteBudget`` of ``max_bytes``, 503
    with ``Retry-After`` for one that does not fit (see the module's docstring)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_body_bytes: int, retry_after: int
    ) -> None:
        self.app = app
        self.budget = ByteBudget(max_bytes)
        self.max_body_bytes = max_body_bytes
        self.retry_after = retry_after
        self._release_task: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in INGEST_PATHS
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        size = int(declared) if declared.isdigit() else None
        if size is not None and size > self.max_body_bytes:  # BodyPolicy's 413, unread
            await self.app(scope, receive, send)
            return
        reservation = self.budget.reservation()
        counted = _CountingReceive(receive, reservation)
        try:
            if size is not None and not reservation.take(size):
                # Expect: 100-continue: the client waits for our answer to send the body.
                waiting = headers.get("expect", "").lower() == "100-continue"
                await self._refuse(scope, counted, send, unread=waiting)
                return
            scope.setdefault("state", {})[BUDGET_STATE_KEY] = reservation
            try:
                await self.app(scope, counted.receive, send)
            except OverBudget:
                await self._refuse(scope, counted, send)
        finally:
            self._close(reservation)

    async def _refuse(
        self, scope: Scope, counted: _CountingReceive, send: Send, *, unread: bool = False
    ) -> None:
        """503: the body read to its end and dropped (its share of the budget given back
        first), or the connection closed when it cannot or should not be read."""
        budget = self.budget
        message = (
            f"The server is decoding "
            f"{(budget.used - counted.reservation.held) / 2**20:.1f} MiB of other ingest "
            f"requests (THREADLINE_SERVER_INGEST_MAX_INFLIGHT_BYTES: "
            f"{budget.capacity / 2**20:g} MiB) and this one does not fit now; nothing in it "
            "was kept: send it again later."
        )
        self._close(counted.reservation)
        headers = {"Retry-After": str(self.retry_after)}
        if unread or not await counted.drain(self.max_body_bytes):
            headers["Connection"] = "close"  # the rest of the body is not read
        await error_response(503, message, headers=headers)(scope, counted.receive, send)

    def _close(self, reservation: Reservation) -> None:
        if reservation.close():
            self._release_soon()

    def _release_soon(self) -> None:
        """Release memory now (in a thread), and again once queued rows are written."""
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, release_memory)
        if self._release_task is not None:
            self._release_task.cancel()
        self._release_task = loop.call_later(
            RELEASE_AGAIN_SECONDS, loop.run_in_executor, None, release_memory
        )


class _CountingReceive:
    """A ``receive`` that reserves every body byte it hands on (``OverBudget`` if it cannot)."""

    def __init__(self, receive: Receive, reservation: Reservation) -> None:
        self._receive = receive
        self.reservation = reservation
        self.received = 0
        self.complete = False  # the whole body has been received (or will not be sent)

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request":
            self.complete = True
            return message
        self.received += len(message.get("body", b""))
        self.complete = not message.get("more_body", False)
        extra = self.received - self.reservation.held
        if extra > 0 and not self.reservation.take(extra):
            raise OverBudget
        return message

    async def drain(self, limit: int) -> bool:
        """Read the rest of the body, keeping none of it; False past ``limit`` bytes in all
        or if the client went away."""
        while not self.complete:
            message = await self._receive()
            if message["type"] != "http.request":
                return False
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
            if self.received > limit:
                return False
        return True


def release_memory() -> bool:
    """Hand the C allocator's free memory back to the system (glibc ``malloc_trim``).

    Returns False where there is no such call (musl, macOS, Windows): nothing to do there.
    """
    trim = _malloc_trim()
    return trim is not None and bool(trim(0))


@cache
def _malloc_trim() -> Callable[[int], Any] | None:
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast("Callable[[int], Any]", trim)
