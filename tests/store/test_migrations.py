"""Schema migrations: run on first use, skipped when at head, safe across processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import threadline.store
from tests._pg import create_database, drop_database
from threadline.artifacts.local import LocalArtifactRepository
from threadline.entities.trace import truncate_preview
from threadline.errors import StoreError
from threadline.store import get_store, migrations, reset_store_cache
from threadline.store import tables as t
from threadline.store.offload import REFERENCE, OffloadingStore
from threadline.store.sql import SqlStore

SRC = str(Path(threadline.store.__file__).resolve().parents[2])


@pytest.fixture
def fresh_pg_uri(postgres_uri: str) -> Iterator[str]:
    """A brand-new, empty PostgreSQL database (beyond the session one)."""
    name, uri = create_database()
    try:
        yield uri.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URI of an empty database on each back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("fresh_pg_uri")  # type: ignore[no-any-return]


def revision(store: SqlStore) -> str | None:
    table = sa.table(migrations.VERSION_TABLE, sa.column("version_num"))
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table.c.version_num)).scalar()


def test_head_revision_constant_matches_the_scripts() -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    assert script.get_current_head() == migrations.HEAD_REVISION
    assert migrations.known_revisions() == {"0001", "0002", "0003"}


def test_a_fresh_database_is_upgraded_to_exactly_the_tables(fresh_uri: str) -> None:
    store = SqlStore(fresh_uri)
    try:
        assert revision(store) == migrations.HEAD_REVISION
        assert store.get_experiment("0").name == "Default"
        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": migrations.VERSION_TABLE}
            )
            assert compare_metadata(context, t.metadata) == []
    finally:
        store.close()


def test_a_store_at_head_does_not_run_migrations(
    fresh_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    SqlStore(fresh_uri).close()

    def refuse(connection: object) -> None:
        raise AssertionError("migrations ran again")

    monkeypatch.setattr(migrations, "upgrade", refuse)
    store = get_store(fresh_uri)
    assert isinstance(store, SqlStore)
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    store.create_experiment("still works")
    reset_store_cache()
    assert get_store(fresh_uri).get_experiment_by_name("still works") is not None
    assert not any("CREATE" in s.upper() for s in statements)


def test_the_fast_path_does_not_import_alembic(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'x.db'}"
    SqlStore(uri).close()
    code = textwrap.dedent(
        f"""
        import sys
        from threadline.store import get_store
        get_store({uri!r}).get_experiment("0")
        assert "alembic" not in sys.modules, "alembic was imported"
        """
    )
    run_python(code)


def test_a_database_from_a_newer_threadline_is_refused(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'x.db'}"
    store = SqlStore(uri)
    table = sa.table(migrations.VERSION_TABLE, sa.column("version_num"))
    with store.engine.begin() as conn:
        conn.execute(table.update().values(version_num="9999_future"))
    store.close()
    with pytest.raises(StoreError, match=r"'9999_future'.*Upgrade threadline"):
        SqlStore(uri)


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    process = start_python(code, *args)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return process


def start_python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


OPEN_AT_ONCE = textwrap.dedent(
    """
    import os, sys, time
    from threadline.store import get_store
    from threadline.store.base import TraceRow
    import alembic.command, threadline.store.sql  # so that the race below is tight
    uri, go, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.002)
    store = get_store(uri)
    store.log_batch([TraceRow(f"tr-{n:032x}", "0", 1, "OK")], [])
    print(store.get_experiment("0").name)
    """
)


def test_processes_starting_at_once_on_a_new_database_all_succeed(
    fresh_uri: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    processes = [start_python(OPEN_AT_ONCE, fresh_uri, str(go), str(n)) for n in range(4)]
    for process in processes:  # every process has imported threadline and waits
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    go.touch()
    results = [p.communicate(timeout=60) for p in processes]
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err
        assert out.strip() == "Default"
    store = SqlStore(fresh_uri)
    try:
        assert revision(store) == migrations.HEAD_REVISION
        assert len(store.search_traces()[0]) == 4
        assert [e.name for e in store.search_experiments()[0]] == ["Default"]
    finally:
        store.close()


# --- revision 0002: references written before it keep resolving --------------------------

VICTIM = "tr-victim:one"  # not key-safe: the old scheme hashed it
COLLIDER = "h-" + hashlib.sha256(VICTIM.encode()).hexdigest()[:40]  # spells that hash


def old_key(trace_id: str, span_id: str, field: str) -> str:
    """Where threadline before revision 0002 kept a payload (its key scheme, spelt out)."""

    def segment(text: str) -> str:
        if all(c.isascii() and (c.isalnum() or c in "_-") for c in text) and len(text) <= 128:
            return text
        return "h-" + hashlib.sha256(text.encode()).hexdigest()[:40]

    return f"traces/{segment(trace_id)}/{segment(span_id)}/{field}.json"


def old_reference(field: str, key: str, text: str) -> str:
    """The text the old ``OffloadingStore`` left in a row in place of a payload."""
    reference = {"key": key, "bytes": len(text.encode()), "preview": truncate_preview(text)}
    if field == "events":
        event = {"name": REFERENCE, "timestamp_ns": 5, "attributes": reference}
        return json.dumps([event], ensure_ascii=False)
    return json.dumps({REFERENCE: reference}, ensure_ascii=False)


def write_like_the_old_code(uri: str, folder: Path) -> dict[tuple[str, str], dict[str, object]]:
    """A database at revision 0001 with spans as the old server stored them (references
    in the rows, artifacts at the old keys); the payloads each span should read back."""
    from alembic import command

    repository = LocalArtifactRepository(folder)
    expected: dict[tuple[str, str], dict[str, object]] = {}
    rows: list[dict[str, object]] = []

    def span(trace_id: str, span_id: str, **payloads: object) -> None:
        row: dict[str, object] = {"inputs": "null", "outputs": "null", "events": "[]"}
        for field, value in payloads.items():
            text = json.dumps(value, ensure_ascii=False)
            if field.startswith("offloaded_"):
                field = field.removeprefix("offloaded_")
                key = old_key(trace_id, span_id, field)
                repository.put(key, text.encode())
                text = old_reference(field, key, text)
            row[field] = text
            expected.setdefault((trace_id, span_id), {})[field] = value
        rows.append({"trace_id": trace_id, "span_id": span_id, **row})

    events = [{"name": "chunk", "timestamp_ns": 5, "attributes": {"text": "é" * 3000}}]
    span("tr-plain", "01", offloaded_inputs={"document": "é" * 9000}, offloaded_events=events)
    span("tr-plain", "02", inputs={"small": True})
    span(VICTIM, "01", offloaded_inputs={"secret": "victim " * 2000})
    span(COLLIDER, "02", offloaded_outputs={"own": "collider " * 2000})
    # The collider's forged reference named the victim's artifact: now plain data.
    forged = json.loads(old_reference("inputs", old_key(VICTIM, "01", "inputs"), "forged"))
    span(COLLIDER, "01", inputs=forged)
    # A reference to another span's key was never followed; nor is it now.
    elsewhere = json.loads(old_reference("outputs", old_key("tr-plain", "01", "inputs"), "x"))
    span("tr-other", "01", outputs=elsewhere)
    engine = sa.create_engine(uri)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(conn), "0001")
            traces = sorted({str(r["trace_id"]) for r in rows})
            conn.execute(
                sa.table(
                    "traces",
                    *(sa.column(c) for c in ("trace_id", "experiment_id", "request_time", "state")),
                ).insert(),
                [
                    {"trace_id": tr, "experiment_id": "0", "request_time": 1, "state": "OK"}
                    for tr in traces
                ],
            )
            columns = ("trace_id", "span_id", "name", "span_type", "status_code", "start_time_ns")
            spans = sa.table(
                "spans",
                *(sa.column(c) for c in (*columns, "inputs", "outputs", "attributes", "events")),
            )
            conn.execute(
                spans.insert(),
                [
                    {
                        "name": "s",
                        "span_type": "CHAIN",
                        "status_code": "OK",
                        "start_time_ns": 1,
                        "attributes": "{}",
                        **r,
                    }
                    for r in rows
                ],
            )
    finally:
        engine.dispose()
    return expected


def test_references_stored_before_revision_0002_keep_resolving(
    fresh_uri: str, tmp_path: Path
) -> None:
    folder = tmp_path / "artifacts"
    expected = write_like_the_old_code(fresh_uri, folder)
    store = SqlStore(fresh_uri)  # upgrades to head
    try:
        assert revision(store) == migrations.HEAD_REVISION
        offloading = OffloadingStore(store, LocalArtifactRepository(folder))
        for (trace_id, span_id), payloads in expected.items():
            span = offloading.get_span(trace_id, span_id)
            assert span is not None
            got = span.to_dict()
            for field, value in payloads.items():
                assert got[field] == value, (trace_id, span_id, field)
        victim_file = folder / old_key(VICTIM, "01", "inputs")
        before = set(p for p in folder.rglob("*") if p.is_file())

        # Deleting the collider takes its own artifact, not the victim's.
        assert offloading.delete_traces("0", trace_ids=[COLLIDER]) == 1
        gone = before - set(p for p in folder.rglob("*") if p.is_file())
        assert gone == {folder / old_key(COLLIDER, "02", "outputs")}
        assert victim_file.exists()
        assert offloading.delete_traces("0", trace_ids=["tr-plain", VICTIM]) == 2
        assert not any(p.is_file() for p in folder.rglob("*"))
    finally:
        store.close()


# --- revision 0003: assessments, sessions and rollups on a store that has traces --------


def test_a_store_at_0002_is_upgraded_with_its_sessions_and_overview(fresh_uri: str) -> None:
    """Traces written before revision 0003 get their sessions and overview figures."""
    from alembic import command

    from threadline.entities.assessment import Feedback

    hour = 3_600_000
    day0 = 1_700_006_400_000
    engine = sa.create_engine(fresh_uri)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(conn), "0002")
            traces = sa.table(
                "traces",
                *(
                    sa.column(c)
                    for c in (
                        "trace_id",
                        "experiment_id",
                        "request_time",
                        "execution_duration",
                        "state",
                        "total_tokens",
                    )
                ),
            )
            conn.execute(
                traces.insert(),
                [
                    {
                        "trace_id": f"tr-{n}",
                        "experiment_id": "0",
                        "request_time": day0 + n * hour,
                        "execution_duration": 10 * n,
                        "state": "ERROR" if n == 2 else "OK",
                        "total_tokens": n,
                    }
                    for n in (1, 2, 3)
                ],
            )
            metadata = sa.table(
                "trace_metadata", *(sa.column(c) for c in ("trace_id", "key", "value"))
            )
            conn.execute(
                metadata.insert(),
                [
                    {"trace_id": "tr-1", "key": "session_id", "value": "chat"},
                    {"trace_id": "tr-2", "key": "session_id", "value": "chat"},
                    {"trace_id": "tr-1", "key": "user", "value": "ann"},
                ],
            )
    finally:
        engine.dispose()
    store = SqlStore(fresh_uri)  # upgrades 0002 -> head
    try:
        assert revision(store) == migrations.HEAD_REVISION
        (session,) = store.search_sessions()[0]
        assert (session.session_id, session.user, session.turns, session.error_count) == (
            "chat",
            "ann",
            2,
            1,
        )
        assert (session.total_tokens, [i.trace_id for i in session.traces]) == (3, ["tr-1", "tr-2"])
        with store.engine.connect() as conn:
            stale = conn.execute(sa.select(t.stale_rollups.c.hour_ms)).scalars().all()
        assert sorted(stale) == [day0 + n * hour for n in (1, 2, 3)]
        overview = store.get_overview("0", start_time_ms=day0, end_time_ms=day0 + 4 * hour)
        assert [b.trace_count for b in overview.buckets] == [0, 1, 1, 1]
        assert [b.latency_p50_ms for b in overview.buckets][1:] == [10.0, 20.0, 30.0]
        store.log_assessment("tr-3", Feedback(name="q", value=True))
        assert store.search_traces(filter_string="feedback.q = true")[0][0].info.trace_id == "tr-3"
        assert store.delete_traces("0", trace_ids=["tr-3"]) == 1
        with store.engine.connect() as conn:
            left = conn.execute(sa.select(sa.func.count()).select_from(t.assessments)).scalar()
        assert left == 0
    finally:
        store.close()
