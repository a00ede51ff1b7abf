"""A real ``threadline server`` process for the remote-SDK tests.

``threadline server --port 0`` on 127.0.0.1 with its own SQLite file (or PostgreSQL); the
URL comes from its startup line. One server per test module (``server``), one that
requires a token (``auth_server``); ``ServerProcess`` also stops and restarts a server on
the same port and database (an outage).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import threadline

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
TOKEN = "secret-0123456789abcdef"  # the server needs 16 characters or more
_LINE = re.compile(r"threadline server listening on (http://\S+)")


class ServerProcess:
    """``threadline server`` on 127.0.0.1; ``url`` once started."""

    def __init__(self, folder: Path, store_uri: str, *args: str, env: dict[str, str] | None = None):
        self.folder = folder
        self.store_uri = store_uri
        self.args = args
        self.env = env or {}
        self.url = ""
        self.port = 0
        self._process: subprocess.Popen[str] | None = None
        self._log = folder / "server.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> ServerProcess:
        """Start (on the port it had before, if any) and wait until it answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("THREADLINE_", "OTEL_"))}
        env.update(self.env)
        command = [sys.executable, "-m", "threadline.cli", "server", "--port", str(self.port)]
        command += ["--backend-store-uri", self.store_uri, *self.args]
        with self._log.open("a") as log:
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=self.folder, env=env
            )
        self.url = self._startup_url()
        self.port = int(self.url.rsplit(":", 1)[1])
        _wait_healthy(self.url)
        return self

    def stop(self) -> None:
        """SIGTERM (graceful: the ingest queue is drained), then kill if it hangs."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()

    def _startup_url(self) -> str:
        process = self._process
        assert process is not None and process.stdout is not None
        stdout = process.stdout
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                match = _LINE.search(lines.get(timeout=0.2))
            except queue.Empty:
                if process.poll() is not None:
                    break
                continue
            if match:
                return match.group(1)
        raise AssertionError(
            f"threadline server did not start (exit code {process.poll()}):\n"
            + self._log.read_text()
        )


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def server_on_sqlite(folder: Path, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
    return ServerProcess(folder, f"sqlite:///{folder / 'server.db'}", *args, env=env)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server on its own SQLite file, for the whole module."""
    process = server_on_sqlite(tmp_path_factory.mktemp("server"))
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that requires ``Authorization: Bearer secret``."""
    process = server_on_sqlite(tmp_path_factory.mktemp("auth-server"), "--auth-token", TOKEN)
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture
def remote(server: ServerProcess) -> str:
    """The SDK pointed at ``server``, with a fresh active experiment; returns its id."""
    threadline.set_tracking_uri(server.url)
    return threadline.set_experiment(f"exp-{uuid.uuid4().hex[:10]}").experiment_id
