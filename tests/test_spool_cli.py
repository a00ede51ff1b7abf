"""``threadline spool status`` and ``threadline spool replay`` on a spool the SDK filled for
real (SQLite stores whose folder does not exist yet, so every write fails)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import threadline
from threadline.cli import main
from threadline.export._spool import Spool
from threadline.tracing._runtime import RT


@threadline.trace
def step(i: int) -> int:
    return i


@threadline.trace
def job(i: int) -> int:
    return step(i) + 1


def _spool_traces(uri: str, count: int) -> None:
    """Trace ``count`` jobs (2 spans each) to ``uri``, which fails: they end in the spool."""
    threadline.set_tracking_uri(uri)
    for i in range(count):
        job(i)
    report = threadline.flush_trace_async_logging(timeout=0.2)
    assert report.pending_spans == 0 and report.dropped_spans == 0, report


def _stop_sdk() -> None:
    """Stop the pipeline, so only the command replays (no background replay meanwhile)."""
    threadline.flush_trace_async_logging(timeout=0, terminate=True)
    RT.pipeline = None


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main([*args, "--output", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def _traces_in(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("select count(*) from traces where state = 'OK'").fetchone()[0])


@pytest.fixture
def spooled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """3 traces spooled for a.db and 2 for b.db (their folders do not exist yet)."""
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "0.01")
    a, b = tmp_path / "a" / "a.db", tmp_path / "b" / "b.db"
    _spool_traces(f"sqlite:///{a}", 3)
    _spool_traces(f"sqlite:///{b}", 2)
    _stop_sdk()
    return a, b


def test_status_shows_each_destination(
    spooled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = spooled
    status = _json(capsys, "spool", "status")
    assert status["folder"] == str(tmp_path / "spool")
    found = {d["target"]: d for d in status["destinations"]}
    assert set(found) == {f"sqlite:///{a}", f"sqlite:///{b}"}
    assert (found[f"sqlite:///{a}"]["spans"], found[f"sqlite:///{b}"]["spans"]) == (6, 4)
    for row in found.values():
        assert row["kind"] == "store" and row["batches"] >= 1 and row["bytes"] > 0
        assert 0 <= row["oldest_age_seconds"] < 600

    assert main(["spool", "status"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert (
        table[0]
        == f"Spool {tmp_path / 'spool'}: {sum(r['batches'] for r in found.values())} batches, 10 spans waiting."
    )
    assert table[1].split() == ["KIND", "DESTINATION", "BATCHES", "SPANS", "OLDEST", "BYTES"]
    assert any(f"sqlite:///{a}" in line and " 6 " in line for line in table[2:])
    assert table[-1] == "Deliver them with: threadline spool replay"


def test_replay_delivers_removes_and_reports_the_rest(
    spooled: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = spooled
    a.parent.mkdir()  # a's store can be written now, b's not yet
    assert main(["spool", "replay", "--tracking-uri", f"sqlite:///{a}"]) == 0
    assert "(6 spans) to sqlite:///" in capsys.readouterr().out
    assert _traces_in(a) == 3
    remaining = _json(capsys, "spool", "status")["destinations"]
    assert [(d["target"], d["spans"]) for d in remaining] == [(f"sqlite:///{b}", 4)]

    assert main(["spool", "replay"]) == 1  # b is still unwritable: it stays, exit code 1
    out = capsys.readouterr().out
    assert "Could not deliver" in out and "(4 spans)" in out and "stay in the spool" in out
    assert [d["spans"] for d in _json(capsys, "spool", "status")["destinations"]] == [4]

    b.parent.mkdir()
    replayed = _json(capsys, "spool", "replay")
    assert [
        (d["target"], d["delivered_spans"], d["left_spans"]) for d in replayed["destinations"]
    ] == [(f"sqlite:///{b}", 4, 0)]
    assert _traces_in(b) == 2 and _traces_in(a) == 3  # nothing twice
    assert main(["spool", "status"]) == 0
    assert capsys.readouterr().out.startswith("The spool ") and main(["spool", "replay"]) == 0
    assert "Nothing to replay" in capsys.readouterr().out


def test_old_file_names_and_unreadable_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "0.01")
    db = tmp_path / "later" / "c.db"
    _spool_traces(f"sqlite:///{db}", 2)
    _stop_sdk()
    folder = tmp_path / "spool"
    for path in Spool(folder, 1 << 30).pending():  # as written before names had the count
        stamp, pid, counter, _spans, key = path.name[: -len(".batch.json")].split("-")
        path.rename(path.with_name(f"{stamp}-{pid}-{counter}-{key}.batch.json"))
    (folder / f"{'9' * 20}-1-00000000-3-{'0' * 16}.batch.json").write_text('{"kind": "sto')

    status = _json(capsys, "spool", "status")
    assert [(d["target"], d["spans"]) for d in status["destinations"]] == [(f"sqlite:///{db}", 4)]
    db.parent.mkdir()
    assert main(["spool", "replay"]) == 1  # the broken file is set aside, and said so
    assert "1 unreadable batch files were set aside" in capsys.readouterr().out
    assert _traces_in(db) == 2
    status = _json(capsys, "spool", "status")
    assert status["destinations"] == [] and len(status["unreadable"]) == 1
    assert main(["spool", "replay"]) == 0  # an unreadable file is never replayed again


def test_another_spool_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "elsewhere"
    monkeypatch.setenv("THREADLINE_SPOOL_DIR", str(other))
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "0.01")
    RT.pipeline = None
    _spool_traces(f"sqlite:///{tmp_path}/missing/d.db", 1)
    _stop_sdk()
    monkeypatch.setenv("THREADLINE_SPOOL_DIR", str(tmp_path / "spool"))
    assert _json(capsys, "spool", "status")["destinations"] == []  # $THREADLINE_SPOOL_DIR
    status = _json(capsys, "spool", "status", "--spool-dir", str(other))
    assert [d["spans"] for d in status["destinations"]] == [2]
    assert main(["spool", "status", "--spool-dir", str(other)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"Deliver them with: threadline spool replay --spool-dir {other}"
    )
