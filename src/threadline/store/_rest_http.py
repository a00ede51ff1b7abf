"""HTTP for ``RestStore``: keep-alive connections, JSON bodies (gzip when large), and the
server's errors mapped back to threadline's.

Standard library only (``http.client``, not ``urllib.request``: the latter opens a new
connection per request). Connections are pooled, not kept per thread, so a thread that
ends leaves no socket for the garbage collector; an idle connection is dropped before the
server's keep-alive timeout would close it, and a request that fails on a connection the
server closed anyway (that race, before any answer) is sent once more on a fresh one. A
call made under a thread deadline (``_call_deadline.within``: the export pipeline writing
on the traced program's thread) shortens its socket timeout to the time left.

Error mapping: 400 → ``InvalidArgumentError`` (``FilterSyntaxError`` for a bad filter or
order_by), 404 → ``ResourceNotFoundError``, 409 → ``ResourceAlreadyExistsError``, 413 and
other 4xx → ``StoreError``: the server refused the request itself, ``retryable = False``.
Everything else is a ``RemoteStoreError`` with ``retryable = True`` (sending the same data
again may work) and a ``cause`` the export pipeline logs once: ``unreachable`` (network
failures, timeouts), ``unavailable`` (408, 429, 5xx; ``retry_after`` from the
``Retry-After`` header), ``auth`` (401/403: the token can be fixed) and ``not-threadline``
(a redirect, an answer that is not JSON, a 400/404 without threadline's error body: the
tracking URI points at something else, e.g. a proxy's page).
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import os
import re
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from threadline import settings
from threadline.errors import (
    FilterSyntaxError,
    InvalidArgumentError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    StoreError,
    ThreadlineError,
)
from threadline.store._call_deadline import DeadlinePassed, timeout_for

if TYPE_CHECKING:
    import ssl

TIMEOUT_SECONDS = 30.0
GZIP_MIN_BYTES = 1024  # smaller bodies are sent as they are
GZIP_LEVEL = 1  # fastest: ~13x on span JSON; higher levels gain ~15% size for 2-6x the CPU
IDLE_SECONDS = 2.0  # below uvicorn's 5 s keep-alive timeout
MAX_IDLE_CONNECTIONS = 8
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_FILTER_ERROR = re.compile(r"^Invalid (?:filter|order_by) .* at position (\d+)$", re.DOTALL)
_TOKEN_HINT = "set THREADLINE_TRACKING_TOKEN to a token the server accepts"
NOT_THREADLINE = "not-threadline"  # a ``cause``: the URL answers, but not as a threadline server


class RemoteStoreError(StoreError):
    """The server could not be reached, did not answer as a threadline server, or refused
    the request; says whether to resend (``retryable``) and why (``cause``)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
        cause: str = "unreachable",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.cause = cause


class HttpClient:
    """JSON over HTTP(S) to one threadline server. Thread-safe."""

    def __init__(self, base_url: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        parts = urllib.parse.urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(
                f"Tracking URI {base_url!r} is not a server URL; use http(s)://host:port."
            )
        netloc = parts.netloc.rsplit("@", 1)[-1]  # never show credentials in messages
        self.url = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._ssl_context: ssl.SSLContext | None = None

    # --- requests ------------------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send a request; the parsed JSON answer, or raise the mapped error."""
        target = self._prefix + path
        if query:
            pairs = {k: v for k, v in query.items() if v is not None}
            target += "?" + urllib.parse.urlencode(pairs, doseq=True)
        data, sent = _encode(body)
        sent.update(headers or {})
        token = settings.TRACKING_TOKEN.get()
        if token:
            sent["Authorization"] = f"Bearer {token}"
        status, reply, payload = self._send(method, target, data, sent)
        if 300 <= status < 400:
            raise RemoteStoreError(
                f"The server at {self.url} redirects to {reply.get('Location')!r}: set the "
                "tracking URI to the threadline server's own URL.",
                status=status,
                cause=NOT_THREADLINE,
            )
        if status >= 400:
            raise error_for(status, reply, payload, self.url, authenticated=bool(token))
        return _decode(reply, payload, self.url)

    def _send(
        self, method: str, target: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One exchange; a request that fails on a reused (stale) connection is sent again."""
        try:
            timeout = timeout_for(self._timeout)  # before touching a connection
        except DeadlinePassed as exc:
            raise self._unreachable(exc, 0.0) from exc
        conn, reused = self._acquire()
        try:
            try:
                return self._exchange(conn, method, target, data, headers, timeout)
            except _STALE:
                conn.close()
                if not reused:
                    raise
                timeout = timeout_for(self._timeout)
                conn, reused = self._new_connection(), False
                return self._exchange(conn, method, target, data, headers, timeout)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._unreachable(exc, timeout) from exc

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        data: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn.timeout = timeout  # used when it connects
        if conn.sock is not None:  # a pooled connection: its socket already exists
            conn.sock.settimeout(timeout)
        conn.request(method, target, body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        if response.will_close:
            conn.close()
        else:
            self._release(conn)
        return response.status, response.headers, payload

    def _unreachable(self, exc: BaseException, timeout: float) -> RemoteStoreError:
        if isinstance(exc, DeadlinePassed):
            return RemoteStoreError(
                f"Not sent to the threadline server at {self.url}: {exc} (it is sent again "
                "in the background)."
            )
        if isinstance(exc, TimeoutError):
            why = f"no answer within {timeout:.3g} s"
        else:
            why = f"{type(exc).__name__}: {exc}"
        return RemoteStoreError(
            f"Cannot reach the threadline server at {self.url} ({why}). Is `threadline server` "
            "running there, and is the tracking URI right?"
        )

    # --- connection pool -----------------------------------------------------------------
    def _acquire(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (``True``: reused) or a new one."""
        now = time.monotonic()
        stale: list[http.client.HTTPConnection] = []
        found: http.client.HTTPConnection | None = None
        with self._lock:
            stale.extend(self._forget_after_fork())
            while self._idle:
                conn, since = self._idle.pop()
                if now - since < IDLE_SECONDS:
                    found = conn
                    break
                stale.append(conn)
        for conn in stale:
            conn.close()
        if found is not None:
            return found, True
        return self._new_connection(), False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if os.getpid() == self._pid and len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._https:
            if self._ssl_context is None:
                import ssl

                self._ssl_context = ssl.create_default_context()  # loads the CA store once
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._ssl_context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _forget_after_fork(self) -> list[http.client.HTTPConnection]:
        """In a forked child, the inherited connections (to close: that leaves the parent's
        copies open). Called under the lock."""
        if os.getpid() == self._pid:
            return []
        inherited, self._idle = [conn for conn, _since in self._idle], []
        self._pid = os.getpid()
        return inherited

    def close(self) -> None:
        """Close the idle connections (busy ones close when their request ends)."""
        with self._lock:
            idle = self._forget_after_fork() + [conn for conn, _since in self._idle]
            self._idle = []
        for conn in idle:
            conn.close()


# --- bodies --------------------------------------------------------------------------------
def _encode(body: Any) -> tuple[bytes | None, dict[str, str]]:
    headers = {"Accept": "application/json"}
    if body is None:
        return None, headers
    data = json.dumps(body, separators=(",", ":")).encode("ascii")
    headers["Content-Type"] = "application/json"
    if len(data) >= GZIP_MIN_BYTES:
        data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return data, headers


def _decode(headers: http.client.HTTPMessage, payload: bytes, url: str) -> Any:
    try:
        if headers.get("Content-Encoding", "").lower() == "gzip":
            payload = gzip.decompress(payload)
        return json.loads(payload) if payload else None
    except (ValueError, OSError, EOFError) as exc:
        raise RemoteStoreError(
            f"The server at {url} answered something that is not JSON ({payload[:80]!r}); "
            "is the tracking URI the URL of a threadline server (not a proxy's or a login "
            "page)?",
            cause=NOT_THREADLINE,
        ) from exc


# --- errors --------------------------------------------------------------------------------
def error_for(
    status: int, headers: http.client.HTTPMessage, payload: bytes, url: str, *, authenticated: bool
) -> ThreadlineError:
    """The threadline error for an HTTP error answer of the server at ``url``."""
    error = _error_body(headers, payload)
    message = str(error.get("message") or "") or _error_text(status, payload)
    if status in (408, 429) or status >= 500:
        return RemoteStoreError(
            f"The threadline server at {url} is unavailable ({status}): {message}",
            status=status,
            retry_after=_retry_after(headers.get("Retry-After")),
            cause="unavailable",
        )
    if status in (401, 403):
        return _auth_error(status, message, url, authenticated)
    if status in (400, 404) and not error:  # every threadline answer has the error body
        return RemoteStoreError(
            f"The server at {url} answered {status} without a threadline server's error "
            f"body ({message[:80]!r}): is the tracking URI the threadline server's own URL?",
            status=status,
            cause=NOT_THREADLINE,
        )
    mapped = _client_error(status, message, error, url)
    setattr(mapped, "retryable", False)  # noqa: B010  # read by the export pipeline's channel
    setattr(mapped, "status", status)  # noqa: B010
    setattr(mapped, "server_message", message)  # noqa: B010  # the reason, without the URL
    return mapped


def _auth_error(status: int, message: str, url: str, authenticated: bool) -> RemoteStoreError:
    if status == 403:
        hint = f"the token in THREADLINE_TRACKING_TOKEN lacks the right: {message}"
    elif authenticated:
        hint = f"it rejected the token in THREADLINE_TRACKING_TOKEN; {_TOKEN_HINT}"
    else:
        hint = f"it requires a token: {_TOKEN_HINT}"
    return RemoteStoreError(
        f"Not authorized by the threadline server at {url} ({status}): {hint}.",
        status=status,
        cause="auth",
    )


def _client_error(status: int, message: str, error: dict[str, Any], url: str) -> ThreadlineError:
    if status == 400:
        return _invalid_argument(message, error)
    if status == 404:
        return ResourceNotFoundError(message)
    if status == 409:
        return ResourceAlreadyExistsError(message)
    return RemoteStoreError(  # 413 and any other refusal of the request itself
        f"The threadline server at {url} refused the request ({status}): {message}",
        status=status,
        retryable=False,
        cause="refused",
    )


def _invalid_argument(message: str, error: dict[str, Any]) -> InvalidArgumentError:
    """``FilterSyntaxError`` for a bad filter or order_by (``token``/``position`` when the
    server sends them, else the position from the message), else ``InvalidArgumentError``."""
    match = _FILTER_ERROR.match(message)
    if match is None and "token" not in error:
        return InvalidArgumentError(message)
    token = error.get("token")
    position = error.get("position")
    if not isinstance(position, int):
        position = int(match.group(1)) if match else None
    return FilterSyntaxError(
        message, token=token if isinstance(token, str) else None, position=position
    )


def _error_body(headers: http.client.HTTPMessage, payload: bytes) -> dict[str, Any]:
    """The ``error`` object of a ``{"error": {"code", "message", …}}`` answer, or ``{}``."""
    try:
        error = _decode(headers, payload, "")["error"]
    except (ThreadlineError, ValueError, TypeError, KeyError, OSError, EOFError):
        return {}
    return error if isinstance(error, dict) else {}


def _error_text(status: int, payload: bytes) -> str:
    text = payload[:200].decode("utf-8", "replace").strip()
    return text or http.client.responses.get(status, "error")


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), if given."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
