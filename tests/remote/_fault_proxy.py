"""A TCP proxy on 127.0.0.1 in front of a real ``threadline server`` that can misbehave.

``mode`` decides what each new connection gets: ``forward`` (relayed to the server),
``hang`` (accepted, read, never answered), ``close`` (the request is read, then the
connection is closed without an answer), or a canned answer that is not a threadline
server's (``500``, ``html``: a 200 with a proxy's HTML page, ``404``, ``redirect``,
``401``). Canned answers close the connection, so every request sees the current mode;
changing the mode closes the connections already open (hanging ones included).
"""

from __future__ import annotations

import select
import socket
import threading

_CANNED = {
    "500": (500, "text/plain", b"internal error"),
    "html": (200, "text/html", b"<html><body>Please sign in to the proxy</body></html>"),
    "404": (404, "text/html", b"<html>not found</html>"),
    "redirect": (302, "text/html", b""),
    "401": (401, "text/plain", b"unauthorized"),
}
MODES = ("forward", "hang", "close", *_CANNED)


class FaultProxy:
    """``url`` accepts connections; ``set_mode`` picks how they are treated."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "forward"
        self.requests = 0  # requests seen in a mode other than forward
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def set_mode(self, mode: str) -> None:
        assert mode in MODES, mode
        self.mode = mode
        self._close_open()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()
        self._close_open()

    # --- internals -----------------------------------------------------------------------
    def _close_open(self) -> None:
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client, self.mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: str) -> None:
        try:
            if mode == "forward":
                self._relay(client)
                return
            _read_request(client)
            self.requests += 1
            if mode == "hang":
                while client.recv(65536):  # until the client or set_mode closes it
                    pass
            elif mode in _CANNED:
                client.sendall(_answer(*_CANNED[mode]))
        except (OSError, ValueError):  # closed by set_mode/stop (select on a closed socket)
            pass
        finally:
            client.close()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
        self._track(upstream)
        try:
            pair = {client: upstream, upstream: client}
            while not self._stopped.is_set():
                readable, _, _ = select.select(list(pair), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        finally:
            upstream.close()


def _read_request(sock: socket.socket) -> None:
    """Read one HTTP request (head and Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return
        body += chunk


def _answer(status: int, content_type: str, body: bytes) -> bytes:
    head = [
        f"HTTP/1.1 {status} Fault",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if 300 <= status < 400:
        head.append("Location: http://127.0.0.1:1/login")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
