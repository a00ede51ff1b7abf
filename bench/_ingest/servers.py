"""Servers under test as child processes: start, wait until ready, RSS, stop (no leftovers).

Each server runs in its own session (process group) so that stopping it ends its workers
too; RSS is the sum of ``VmRSS`` over the server process and its descendants.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_LISTENING = re.compile(r"listening on (http://\S+)")
_STARTUP_COMPLETE = "Application startup complete."


class ServerFailed(Exception):
    """A server did not start; the message has the tail of its output."""


@dataclass
class Server:
    """A running server: its process, base URL, log file and RSS samples (MB)."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    rss_samples: list[float] = field(default_factory=list)

    def rss_mb(self) -> float:
        """Current RSS of the server's process tree, in MB."""
        return tree_rss_mb(self.proc.pid)

    def sample_rss(self) -> None:
        """Remember the current RSS (for the peak)."""
        try:
            self.rss_samples.append(self.rss_mb())
        except OSError:
            pass

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL after 30 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        try:  # workers that outlived their parent
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_rss_mb(pid: int) -> float:
    """Sum of ``VmRSS`` of ``pid`` and every descendant, in MB."""
    total_kb = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
        todo += _children(current)
    return total_kb / 1024


def worker_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each worker of the uvicorn supervisor
    ``pid``, by PID: with ``--workers N``, how the work was shared between them.

    Workers are the children started by multiprocessing's spawn; its resource tracker,
    also a child, is left out.
    """
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for child in _children(pid):
        try:
            if b"spawn_main" not in Path(f"/proc/{child}/cmdline").read_bytes():
                continue
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        used[child] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return used


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: Path, lines: int = 5) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def _spawn(cmd: Sequence[str], log: Path, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )


def start_threadline(
    python: Path, store_uri: str, log: Path, timeout: float = 60, workers: int = 1
) -> Server:
    """``threadline server --port 0 --workers N``; the URL is read from its startup line.

    The server binds the socket before uvicorn's supervisor starts the workers, so the
    startup line has the real port with several workers too. With ``workers`` > 1 the
    server is ready once every worker logged uvicorn's "Application startup complete."
    (otherwise the first worker would accept every client's keep-alive connection and
    serve the whole run alone).
    """
    cmd = [str(python), "-m", "threadline.cli", "server", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--workers", str(workers), "--backend-store-uri", store_uri]
    proc = _spawn(cmd, log, None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace")
        match = _LISTENING.search(text)
        started = workers == 1 or text.count(_STARTUP_COMPLETE) >= workers
        if match and started and _ready(match.group(1) + "/api/v1/experiments"):
            return Server("threadline", proc, match.group(1), log)
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    server = Server("threadline", proc, "", log)
    server.stop()
    raise ServerFailed(f"threadline server did not start: {_tail(log)}")


def start_command(
    name: str,
    cmd: Sequence[str],
    url: str,
    probe_path: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> Server:
    """Any server on a known URL, ready when ``GET probe_path`` answers below 500."""
    proc = _spawn(cmd, log, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ready(url + probe_path):
            return Server(name, proc, url, log)
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    server = Server(name, proc, url, log)
    server.stop()
    raise ServerFailed(f"{name} did not start within {timeout:.0f} s: {_tail(log)}")


def _ready(url: str, post: bytes | None = None) -> bool:
    headers = {"Content-Type": "application/json"} if post is not None else {}
    request = urllib.request.Request(url, data=post, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False
