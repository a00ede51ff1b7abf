"""``threadline server --workers N``: the store is prepared in a child process, the
supervisor stays free of the app's heavy imports, and the server processes tune their
garbage collector."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.server.conftest import free_port
from tests.server.test_server_process import _wait_for_log, _wait_healthy, running_server
from threadline.errors import StoreError
from threadline.server import main as server_main
from threadline.server.main import prepare_store_in_child

# Shared libraries that only FastAPI/pydantic and SQLAlchemy bring into a process.
_HEAVY_LIBRARIES = ("pydantic_core", "sqlalchemy")
ORPHAN_EXIT_SECONDS = 30.0  # a worker drains its (empty) queue and exits well before


def test_the_child_creates_the_schema_of_a_new_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    prepare_store_in_child(f"sqlite:///{path}")
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert {"traces", "spans", "experiments"} <= tables


def test_the_childs_error_stops_the_server_with_its_message() -> None:
    with pytest.raises(StoreError, match="Unsupported store URI 'mysql://x/y'"):
        prepare_store_in_child("mysql://x/y")


def test_an_unreachable_store_stops_the_workers_before_they_listen(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "threadline.cli",
            "server",
            "--port",
            "0",
            "--workers",
            "2",
            "--backend-store-uri",
            "postgresql://nobody:secret@127.0.0.1:1/none",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    assert "cannot connect to PostgreSQL at 127.0.0.1:1" in result.stderr
    assert "secret" not in result.stderr + result.stdout
    assert "listening" not in result.stdout


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/PID/maps (Linux)")
def test_the_supervisor_of_two_workers_imports_neither_fastapi_nor_sqlalchemy(
    tmp_path: Path,
) -> None:
    db = tmp_path / "w.db"
    with running_server(tmp_path, "--workers", "2", "--backend-store-uri", f"sqlite:///{db}") as (
        process,
        url,
    ):
        _wait_healthy(url)
        supervisor = Path(f"/proc/{process.pid}/maps").read_text()
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        workers = [Path(f"/proc/{pid}/maps").read_text() for pid in children]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert not [lib for lib in _HEAVY_LIBRARIES if lib in supervisor]
    assert any(all(lib in maps for lib in _HEAVY_LIBRARIES) for maps in workers)


def test_masked_hides_only_the_password() -> None:
    masked = server_main._masked("postgresql://me:pw@db.example:5432/traces")
    assert masked == "postgresql://me:***@db.example:5432/traces"
    assert server_main._masked("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert server_main._masked("postgresql://me@db/traces") == "postgresql://me@db/traces"


def test_tune_gc_freezes_the_startup_heap_and_raises_the_young_threshold() -> None:
    before_threshold = gc.get_threshold()
    try:
        server_main._tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == server_main.GC_YOUNG_THRESHOLD
        assert gc.get_threshold()[1:] == before_threshold[1:]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before_threshold)


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the supervisor only: every process it started ends by itself (the workers
    had gone on answering, and a new server could not bind the port)."""
    port = free_port()
    db = f"sqlite:///{tmp_path / 'w.db'}"
    args = ("--port", str(port), "--workers", "2", "--backend-store-uri", db)
    with running_server(tmp_path, *args) as (process, url):
        _wait_healthy(url)
        _wait_for_log(tmp_path / "server.log", "Application startup complete.", count=2)
        orphans = _children(process.pid)
        assert len(orphans) >= 2
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        deadline = time.monotonic() + ORPHAN_EXIT_SECONDS
        while any(_running(pid) for pid in orphans) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [pid for pid in orphans if _running(pid)]
        for pid in survivors:  # they hold the log pipe open: end them before leaving
            os.kill(pid, signal.SIGKILL)
        assert survivors == []
    with running_server(tmp_path, *args) as (process, url):  # the port is free again
        _wait_healthy(url)
        assert url.endswith(f":{port}")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


# A parent that spawns a child (as uvicorn spawns its workers), prints the child's pid and
# dies at once; the child sets up its watch only after that (argv[1]: which watch).
_ORPHAN_PARENT = """
import multiprocessing, os, sys, time

def child(kind):
    time.sleep(1.0)  # the parent is dead by now
    from threadline.server import supervision
    if kind == "both":
        supervision.exit_with_supervisor()
    else:
        supervision.set_parent_death_signal(supervision.EXIT_SIGNAL)
    time.sleep(60)

if __name__ == "__main__":
    process = multiprocessing.get_context("spawn").Process(target=child, args=(sys.argv[1],))
    process.start()
    print(process.pid, flush=True)
    if sys.argv[1] == "prctl-only":
        time.sleep(3.0)  # the child's prctl is in place before the parent dies
    os._exit(0)
"""


def _orphan_exits(tmp_path: Path, kind: str) -> bool:
    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN_PARENT)
    with subprocess.Popen([sys.executable, str(script), kind], stdout=subprocess.PIPE) as parent:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())  # the child holds the pipe: read one line only
        parent.wait(30)
    deadline = time.monotonic() + ORPHAN_EXIT_SECONDS
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _running(pid):
        os.kill(pid, signal.SIGKILL)
        return False
    return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_worker_whose_supervisor_died_before_it_watched_ends_too(tmp_path: Path) -> None:
    assert _orphan_exits(tmp_path, "both")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_the_parent_death_signal_alone_ends_the_worker(tmp_path: Path) -> None:
    assert _orphan_exits(tmp_path, "prctl-only")
