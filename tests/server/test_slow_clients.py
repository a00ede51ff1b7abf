"""Slow clients (slowloris) against a real ``threadline server``: connections that send
their headers or body a byte at a time, or nothing, are closed by the server within its
timeouts while ordinary requests go on being answered."""

from __future__ import annotations

import json
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.server.conftest import span_row, trace_row
from tests.server.test_server_process import (
    _call,
    _wait_for_log,
    _wait_healthy,
    running_server,
)

TIMEOUT_SECONDS = 1.0  # header and body timeouts of the server under test
SLACK_SECONDS = 10.0  # a loaded machine is slow; a connection kept open is kept far longer
TRICKLE_SECONDS = TIMEOUT_SECONDS + SLACK_SECONDS + 5.0  # how long a client keeps sending
BYTE_INTERVAL = 0.2
PER_KIND = 5  # connections of each kind: 20 in all

_HEAD = "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
_GET = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def _closed(sock: socket.socket, seen: bytearray) -> bool:
    """Whether the server has closed the connection (reading what it answered first)."""
    while select.select([sock], [], [], 0)[0]:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return True
        if not chunk:
            return True
        seen += chunk
    return False


def _slow_client(address: tuple[str, int], kind: str) -> tuple[float | None, bytes]:
    """Opens a connection, misbehaves as ``kind``; returns the seconds until the server
    closed it (None: still open when the client gave up) and what the server answered."""
    seen = bytearray()
    with socket.create_connection(address, timeout=30) as sock:
        start = time.monotonic()
        if kind == "keep-alive":  # one good request, then the next one slowly
            sock.sendall(_GET)
            while b"\r\n\r\n" not in seen or not seen.endswith(b"}"):
                seen += sock.recv(65536)
            seen.clear()
            start = time.monotonic()
        prefix = b""
        if kind == "body":
            prefix = (_HEAD + "Content-Length: 1000000\r\n\r\n").encode()
        elif kind in ("headers", "keep-alive"):
            prefix = (_HEAD + "X-Pad: ").encode()  # then an endless header value
        if prefix:
            sock.sendall(prefix)
        while time.monotonic() - start < TRICKLE_SECONDS:
            if _closed(sock, seen):
                return time.monotonic() - start, bytes(seen)
            if kind != "silent":
                try:
                    sock.sendall(b"a")
                except OSError:
                    return time.monotonic() - start, bytes(seen)
            time.sleep(BYTE_INTERVAL)
    return None, bytes(seen)


def _steady_upload(address: tuple[str, int]) -> bytes:
    """A 1 MiB body sent steadily in 64 KiB pieces for longer than the body timeout (as on a
    slow link): it must not be cut off. Returns the server's answer."""
    document = {
        "traces": [trace_row(1)],
        "spans": [span_row(1, inputs_json=json.dumps({"text": "x" * 1024 * 1024}))],
    }
    body = json.dumps(document).encode()
    head = (
        "POST /api/v1/traces/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    answer = bytearray()
    with socket.create_connection(address, timeout=60) as sock:
        sock.sendall(head.encode())
        for offset in range(0, len(body), 64 * 1024):
            sock.sendall(body[offset : offset + 64 * 1024])
            time.sleep(BYTE_INTERVAL / 2)
        while chunk := sock.recv(65536):
            answer += chunk
    return bytes(answer)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_slow_connections_are_closed_and_others_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    monkeypatch.setenv("THREADLINE_SERVER_HEADER_TIMEOUT_SECONDS", str(TIMEOUT_SECONDS))
    monkeypatch.setenv("THREADLINE_SERVER_BODY_TIMEOUT_SECONDS", str(TIMEOUT_SECONDS))
    db = f"sqlite:///{tmp_path / 'slow.db'}"
    args = ("--backend-store-uri", db, "--workers", workers)
    with running_server(tmp_path, *args) as (_process, url):
        _wait_healthy(url)
        _wait_for_log(tmp_path / "server.log", "Application startup complete.", count=int(workers))
        parts = urlsplit(url)
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        kinds = ["headers", "keep-alive", "body", "silent"] * PER_KIND
        with ThreadPoolExecutor(len(kinds)) as pool:
            futures = [pool.submit(_slow_client, address, kind) for kind in kinds]
            time.sleep(TIMEOUT_SECONDS / 2)  # meanwhile, others are served
            assert _call(f"{url}/api/v1/experiments")["experiments"][0]["name"] == "Default"
            results = [future.result() for future in futures]
        steady = _steady_upload(address)
        assert steady.startswith(b"HTTP/1.1 200 "), steady[:300]
        assert _call(f"{url}/health") == {"status": "ok"}
    for kind, (seconds, answer) in zip(kinds, results):
        assert seconds is not None, f"{kind}: still open after {TRICKLE_SECONDS} s"
        assert seconds <= TIMEOUT_SECONDS + SLACK_SECONDS, (kind, seconds)
        if kind == "silent":
            assert answer == b""  # a connection that never spoke is closed without an answer
        else:
            assert answer.startswith(b"HTTP/1.1 408 "), (kind, answer[:200])
