"""``threadline server --workers N``: the store is prepared in a child process, the
supervisor stays free of the app's heavy imports, and the server processes tune their
garbage collector."""

from __future__ import annotations

import gc
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.test_server_process import _wait_healthy, running_server
from threadline.errors import StoreError
from threadline.server import main as server_main
from threadline.server.main import prepare_store_in_child

# Shared libraries that only FastAPI/pydantic and SQLAlchemy bring into a process.
_HEAVY_LIBRARIES = ("pydantic_core", "sqlalchemy")


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
