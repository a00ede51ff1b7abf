"""Decoding pauses while a worker's store holds SQLite's write lock (``WritePriority``,
``SqlStore.on_write_lock``, ``prioritize_writes``, ``decode_request(pause=…)``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.server.conftest import otlp_request
from tests.store._factory import simple_trace
from threadline.errors import InvalidArgumentError
from threadline.server import ServerSettings, create_app
from threadline.server.app import prioritize_writes
from threadline.server.ingest.decode import PAUSE_EVERY, decode_request
from threadline.server.ingest.writer import WritePriority
from threadline.store.sql import SqlStore


def test_wait_turn_waits_while_the_lock_is_held_and_not_longer() -> None:
    priority = WritePriority()
    started = time.monotonic()
    priority.wait_turn()  # free: no wait
    assert time.monotonic() - started < 0.1

    priority.lock_held(True)
    released_at: list[float] = []

    def release() -> None:
        time.sleep(0.15)
        released_at.append(time.monotonic())
        priority.lock_held(False)

    threading.Thread(target=release).start()
    priority.wait_turn()
    assert released_at and time.monotonic() >= released_at[0]


def test_wait_turn_is_bounded_when_the_lock_stays_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(WritePriority, "MAX_PAUSE_SECONDS", 0.05)
    priority = WritePriority()
    priority.lock_held(True)
    started = time.monotonic()
    priority.wait_turn()
    assert 0.04 < time.monotonic() - started < 1.0


def test_the_store_reports_its_write_lock_around_each_write(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'w.db'}")
    calls: list[bool] = []
    store.on_write_lock = calls.append
    row, spans = simple_trace(1)
    store.log_batch([row], spans)
    assert calls == [True, False]
    store.get_trace(row.trace_id)  # reads take no write lock
    assert calls == [True, False]
    with pytest.raises(InvalidArgumentError):
        store.log_batch([row.__class__(**{**_fields(row), "state": "BAD"})], [])
    assert calls == [True, False]  # refused before its transaction began: no lock taken
    store.close()


def test_the_lock_is_reported_released_when_a_write_fails_inside(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'w.db'}")
    calls: list[bool] = []
    store.on_write_lock = calls.append

    def explode(*_: object) -> None:
        raise RuntimeError("boom")

    store._upsert_traces = explode  # type: ignore[method-assign]
    row, spans = simple_trace(1)
    with pytest.raises(RuntimeError):
        store.log_batch([row], spans)
    assert calls == [True, False]
    store.close()


def test_prioritize_writes_hooks_only_a_sqlite_store(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'w.db'}")
    app = create_app(ServerSettings(), store)
    assert store.on_write_lock is None  # one process: decoding and writing overlap
    prioritize_writes(app)
    assert store.on_write_lock == app.state.write_priority.lock_held
    store.close()


def test_decode_calls_pause_between_spans() -> None:
    spans = [{"trace": 1, "span": n} for n in range(1, 2 * PAUSE_EVERY + 2)]
    body = otlp_request(spans).SerializeToString()
    calls: list[int] = []
    batch = decode_request(body, "application/x-protobuf", None, lambda: calls.append(1))
    assert len(batch.spans) == len(spans)
    assert len(calls) == 3  # before spans 0, PAUSE_EVERY and 2 * PAUSE_EVERY


def _fields(row: object) -> dict[str, object]:
    import dataclasses

    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}  # type: ignore[arg-type]
