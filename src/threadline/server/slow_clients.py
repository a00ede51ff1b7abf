"""Time limits for clients that send a request too slowly (slowloris).

uvicorn times out only idle kept-alive connections, so a client that opens a connection and
sends its request a byte at a time holds it, and a task, for as long as it likes. Two limits
close such connections:

- ``HeaderTimeoutProtocol``: uvicorn's httptools protocol with a deadline for the request
  line and headers, from the connection's start or from the first byte of a kept-alive
  connection's next request. Headers are parsed before the ASGI app runs, so this limit
  lives in the protocol; ``ServerConfig`` carries it to every worker process.
- ``BodyTimeout``: ASGI middleware with a deadline for the request body, extended by one
  second per ``BODY_MIN_BYTES_PER_SECOND`` received, so that a large body on a slow link
  still arrives but one sent a trickle at a time is cut off.

Either closes the connection, answering 408 first to a client that had begun its request.
Both hooks rely on uvicorn's httptools protocol as of uvicorn 0.29-0.55 (``cycle``,
``transport``, ``loop``); ``tests/server/test_slow_clients.py`` checks them end to end.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
BODY_MIN_BYTES_PER_SECOND = 64 * 1024
_TIMED_OUT_TEXT = b"The request headers did not arrive in time."
_HEADERS_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n\r\n%s" % (len(_TIMED_OUT_TEXT), _TIMED_OUT_TEXT)
)


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration with the header deadline; pickled as is to worker processes."""

    def __init__(
        self, app: Any, *, header_timeout: float = DEFAULT_HEADER_TIMEOUT_SECONDS, **kwargs: Any
    ) -> None:
        super().__init__(app, http=HeaderTimeoutProtocol, **kwargs)
        self.header_timeout = header_timeout


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """Closes a connection whose request line and headers take longer than the deadline."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_timeout = float(
            getattr(config, "header_timeout", DEFAULT_HEADER_TIMEOUT_SECONDS)
        )
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = False  # part of a request arrived before the deadline

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            self._header_bytes = True
            if self._header_timer is None:
                self._arm_header_timer()
        super().data_received(data)
        if not self._between_requests():  # the headers are in: the app has the request
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self._header_timeout, self._headers_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._header_bytes = False

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._between_requests():
            return
        if self._header_bytes:  # a silent connection is closed without an answer
            self.transport.write(_HEADERS_TIMED_OUT)
        self.transport.close()


class BodyTimedOut(Exception):
    """The request body did not arrive before its deadline (raised by ``receive``)."""


class BodyTimeout:
    """408 and close when a request body is slower than ``seconds`` plus one second per
    ``min_rate`` bytes received. Only the body is timed: once it is in, ``receive`` (which
    then waits for the client to disconnect) is left alone."""

    def __init__(
        self, app: ASGIApp, seconds: float, min_rate: int = BODY_MIN_BYTES_PER_SECOND
    ) -> None:
        self.app = app
        self.seconds = seconds
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        start: float | None = None
        received = 0
        complete = False
        responded = False

        async def timed_receive() -> Message:
            nonlocal start, received, complete
            if complete:
                return await receive()
            if start is None:
                start = loop.time()
            remaining = start + self.seconds + received / self.min_rate - loop.time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.0))
            except asyncio.TimeoutError:
                raise BodyTimedOut from None
            received += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal responded
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except BodyTimedOut:
            if responded:  # cannot happen: bodies are read before answering
                raise
            from threadline.server.errors import error_response

            message = f"The request body did not arrive in time ({received} bytes received)."
            response = error_response(
                408, message, code="DEADLINE_EXCEEDED", headers={"Connection": "close"}
            )
            await response(scope, receive, send)


def _has_body(scope: Scope) -> bool:
    """Whether the request announces a body (most reads do not: nothing to time)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False
