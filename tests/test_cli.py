"""The ``threadline`` command, run for real against a SQLite store filled through the SDK."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import threadline
from threadline.cli import main
from threadline.client import ThreadlineClient
from threadline.entities.span import SpanType
from threadline.entities.trace import Trace
from threadline.tracing import _runtime, _safety


def _reset_sdk() -> None:
    _runtime.reset()
    from threadline import store

    reset_store_cache = getattr(store, "reset_store_cache", None)
    if reset_store_cache is not None:
        reset_store_cache()


@dataclass(frozen=True)
class Logged:
    """What the ``logged`` fixture wrote."""

    uri: str
    experiment_id: str
    agent_id: str  # an OK trace with a failed (caught) TOOL span and a CHAT_MODEL span
    failed_id: str  # a trace whose root raised
    default_id: str  # a trace in the Default experiment


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No THREADLINE_* settings from outside, a wide terminal, and a clean SDK afterwards."""
    for name in list(os.environ):
        if name.startswith("THREADLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)
    _safety.raise_internal_errors(True)
    yield
    _safety.raise_internal_errors(False)
    _reset_sdk()


@threadline.trace(span_type=SpanType.TOOL)
def lookup(item: str) -> str:
    raise ValueError(f"no such item: {item}")


@threadline.trace(span_type=SpanType.AGENT)
def agent(question: str) -> str:
    threadline.update_current_trace(tags={"team": "search"}, user="ada")
    try:
        lookup(question)
    except ValueError:
        pass
    with threadline.start_span("llm", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs({"messages": [{"role": "user", "content": question}]})
        span.set_attribute(
            "threadline.token_usage", {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
        )
        span.set_outputs("forty-two")
    return "forty-two"


@threadline.trace
def explode() -> None:
    raise RuntimeError("kaboom")


@threadline.trace
def hello(name: str) -> str:
    return f"hello {name}"


@pytest.fixture
def logged(tmp_path: Path) -> Logged:
    uri = f"sqlite:///{tmp_path}/t.db"
    threadline.set_tracking_uri(uri)
    hello("default")
    default_id = threadline.get_last_active_trace_id()
    experiment = threadline.set_experiment("cli-test")
    time.sleep(0.002)  # distinct request times keep "newest first" deterministic
    agent("What is the answer?")
    agent_id = threadline.get_last_active_trace_id()
    time.sleep(0.002)
    with pytest.raises(RuntimeError):
        explode()
    failed_id = threadline.get_last_active_trace_id()
    assert default_id and agent_id and failed_id
    return Logged(uri, experiment.experiment_id, agent_id, failed_id, default_id)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("threadline: error: ")
    assert err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err


# --- traces list -----------------------------------------------------------------------------
def test_list_shows_every_experiment_newest_first(capsys, logged: Logged):
    code, out, err = run(capsys, "traces", "list", "--tracking-uri", logged.uri)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["TRACE", "ID", "TIME", "STATE"]
    ids = [line.split()[0] for line in lines[1:]]
    assert ids == [logged.failed_id, logged.agent_id, logged.default_id]
    agent_line = lines[2]
    assert " OK " in agent_line and "agent" in agent_line
    assert "What is the answer?" in agent_line
    assert "forty-two" in agent_line and "team=search" in agent_line
    assert " ERROR " in lines[1]


def test_list_filters_by_experiment_filter_and_max_results(capsys, logged: Logged):
    uri = ["--tracking-uri", logged.uri]
    _, out, _ = run(capsys, "traces", "list", *uri, "--experiment-id", logged.experiment_id)
    assert logged.default_id not in out and logged.agent_id in out and logged.failed_id in out

    _, out, _ = run(capsys, "traces", "list", *uri, "--filter", "trace.status = 'ERROR'")
    assert logged.failed_id in out and logged.agent_id not in out

    _, out, _ = run(capsys, "traces", "list", *uri, "--max-results", "1")
    assert len(out.splitlines()) == 2 and logged.failed_id in out

    _, out, _ = run(capsys, "traces", "list", *uri, "--order-by", "timestamp_ms ASC")
    assert out.splitlines()[1].startswith(logged.default_id)


def test_list_json(capsys, logged: Logged):
    code, out, _ = run(
        capsys,
        "traces",
        "list",
        "--tracking-uri",
        logged.uri,
        "--filter",
        "tags.team = 'search'",
        "--output",
        "json",
    )
    assert code == 0
    [info] = json.loads(out)
    assert info["trace_id"] == logged.agent_id
    assert info["tags"] == {"team": "search"}
    assert info["state"] == "OK"


@pytest.mark.parametrize("columns", [100, 80])
def test_list_fits_the_terminal(capsys, monkeypatch, logged: Logged, columns: int):
    monkeypatch.setenv("COLUMNS", str(columns))
    _, out, _ = run(capsys, "traces", "list", "--tracking-uri", logged.uri)
    lines = out.splitlines()
    assert all(len(line) <= columns for line in lines)
    assert "…" in out  # long cells are clipped
    assert "TAGS" not in lines[0]  # the least important column goes first
    assert "REQUEST" in lines[0]
    assert logged.agent_id in out  # ids are never clipped


def test_list_with_no_match(capsys, logged: Logged):
    code, out, _ = run(
        capsys, "traces", "list", "--tracking-uri", logged.uri, "--filter", "tags.team = 'x'"
    )
    assert (code, out) == (0, "No traces found.\n")


def test_bad_filter_is_one_line_naming_the_token(capsys, logged: Logged):
    code, out, err = run(
        capsys, "traces", "list", "--tracking-uri", logged.uri, "--filter", "span.bogus = 'x'"
    )
    assert (code, out) == (1, "")
    assert_one_line_error(err, "span.bogus")


def test_a_huge_number_in_a_filter_is_a_syntax_error(capsys, logged: Logged, tmp_path: Path):
    """Issue 12: 5,000 digits were a ValueError (embedded) and a 500 (server), not the
    filter-syntax error; now both name the number and its position."""
    from tests.remote.conftest import server_on_sqlite

    huge = "trace.timestamp_ms > " + "9" * 5000
    code, out, err = run(capsys, "traces", "list", "--tracking-uri", logged.uri, "--filter", huge)
    assert (code, out) == (1, "")
    assert_one_line_error(err, "Invalid filter", "has 5000 characters", "at position 21")
    assert len(err) < 1000

    home = tmp_path / "server-home"
    home.mkdir()
    server = server_on_sqlite(home).start()
    try:
        args = ("traces", "list", "--tracking-uri", server.url, "--filter", huge)
        code, out, err = run(capsys, *args)
        assert (code, out) == (1, "")
        assert_one_line_error(err, "Invalid filter", "has 5000 characters", "at position 21")
    finally:
        server.stop()


def test_default_tracking_uri_is_the_sdk_one(capsys, monkeypatch, tmp_path: Path, logged: Logged):
    _reset_sdk()
    monkeypatch.setenv("THREADLINE_TRACKING_URI", logged.uri)
    monkeypatch.chdir(tmp_path / "..")
    code, out, _ = run(capsys, "traces", "list")
    assert code == 0 and logged.agent_id in out

    monkeypatch.delenv("THREADLINE_TRACKING_URI")
    (tmp_path / "t.db").rename(tmp_path / "threadline.db")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "traces", "list")
    assert code == 0 and logged.agent_id in out


def test_missing_sqlite_file_is_an_error_and_is_not_created(capsys, tmp_path: Path):
    missing = tmp_path / "nowhere.db"
    code, _, err = run(capsys, "traces", "list", "--tracking-uri", f"sqlite:///{missing}")
    assert code == 1
    assert_one_line_error(err, "No trace store", str(missing))
    assert not missing.exists()


# --- traces show -----------------------------------------------------------------------------
def test_show_prints_header_and_span_tree_with_the_error(capsys, logged: Logged):
    code, out, err = run(capsys, "traces", "show", logged.agent_id, "--tracking-uri", logged.uri)
    assert (code, err) == (0, "")
    header, tree = out.split("\nSpans (3):\n")
    assert logged.agent_id in header
    assert f"{logged.experiment_id} (cli-test)" in header
    assert "team=search" in header and "user=ada" in header
    assert "in=7 out=3 total=10" in header
    lines = tree.splitlines()
    assert lines[0].startswith("agent  [AGENT]  ") and lines[0].endswith("  OK")
    assert lines[1].startswith("├── lookup  [TOOL]  ") and lines[1].endswith("  ERROR")
    assert "error: ValueError: no such item: What is the answer?" in lines[2]
    assert 'raise ValueError(f"no such item: {item}")' in tree  # the stack trace's last line
    assert "_decorator.py" not in tree  # threadline's own frames are left out
    assert lines[-1].startswith("└── llm  [CHAT_MODEL]  ")
    assert lines[-1].endswith("tokens: in=7 out=3 total=10")


def test_show_failed_trace(capsys, logged: Logged):
    _, out, _ = run(capsys, "traces", "show", logged.failed_id, "--tracking-uri", logged.uri)
    assert "State      ERROR" in out
    assert "error: RuntimeError: kaboom" in out


def test_show_json_round_trips(capsys, logged: Logged):
    code, out, _ = run(
        capsys, "traces", "show", logged.agent_id, "--tracking-uri", logged.uri, "--output", "json"
    )
    assert code == 0
    trace = Trace.from_json(out)
    assert trace.info.trace_id == logged.agent_id
    assert sorted(s.span_type for s in trace.data.spans) == ["AGENT", "CHAT_MODEL", "TOOL"]


def test_show_unknown_trace(capsys, logged: Logged):
    code, out, err = run(capsys, "traces", "show", "tr-" + "0" * 32, "--tracking-uri", logged.uri)
    assert (code, out) == (1, "")
    assert_one_line_error(err, "tr-" + "0" * 32, "not found")


# --- traces delete / tag / untag ---------------------------------------------------------------
def test_delete_by_id(capsys, logged: Logged):
    code, out, _ = run(
        capsys,
        "traces",
        "delete",
        "--tracking-uri",
        logged.uri,
        "--experiment-id",
        logged.experiment_id,
        "--trace-id",
        logged.agent_id,
    )
    assert (code, out) == (0, "Deleted 1 traces\n")
    client = ThreadlineClient(logged.uri)
    assert client.get_trace(logged.agent_id) is None
    assert client.get_trace(logged.failed_id) is not None


def test_delete_older_than(capsys, logged: Logged):
    now_ms = int(time.time() * 1000) + 1000
    code, out, _ = run(
        capsys,
        "traces",
        "delete",
        "--tracking-uri",
        logged.uri,
        "--experiment-id",
        logged.experiment_id,
        "--older-than-ms",
        str(now_ms),
        "--max-traces",
        "1",
    )
    assert (code, out) == (0, "Deleted 1 traces\n")
    client = ThreadlineClient(logged.uri)
    assert client.get_trace(logged.agent_id) is None  # the oldest of the experiment
    assert client.get_trace(logged.failed_id) is not None
    assert client.get_trace(logged.default_id) is not None  # another experiment


def test_tag_and_untag(capsys, logged: Logged):
    uri = ["--tracking-uri", logged.uri]
    code, out, _ = run(capsys, "traces", "tag", logged.agent_id, "reviewed", "yes", *uri)
    assert code == 0 and "reviewed=yes" in out
    client = ThreadlineClient(logged.uri)
    assert client.get_trace(logged.agent_id).info.tags == {"team": "search", "reviewed": "yes"}

    code, _, _ = run(capsys, "traces", "untag", logged.agent_id, "reviewed", *uri)
    assert code == 0
    assert client.get_trace(logged.agent_id).info.tags == {"team": "search"}

    code, _, err = run(capsys, "traces", "untag", logged.agent_id, "reviewed", *uri)
    assert code == 1
    assert_one_line_error(err, "reviewed")


def test_tag_unknown_trace(capsys, logged: Logged):
    code, _, err = run(
        capsys, "traces", "tag", "tr-" + "f" * 32, "k", "v", "--tracking-uri", logged.uri
    )
    assert code == 1
    assert_one_line_error(err, "not found")


# --- experiments -------------------------------------------------------------------------------
def test_experiments_list_and_create(capsys, logged: Logged):
    uri = ["--tracking-uri", logged.uri]
    code, out, _ = run(capsys, "experiments", "list", *uri)
    assert code == 0
    names = {line.split()[1] for line in out.splitlines()[1:]}
    assert names == {"Default", "cli-test"}

    code, out, _ = run(capsys, "experiments", "create", "second", *uri)
    assert code == 0 and "'second'" in out
    code, _, err = run(capsys, "experiments", "create", "second", *uri)
    assert code == 1
    assert_one_line_error(err, "second")

    ThreadlineClient(logged.uri).delete_experiment(logged.experiment_id)
    _, out, _ = run(capsys, "experiments", "list", *uri, "--output", "json")
    assert {e["name"] for e in json.loads(out)} == {"Default", "second"}
    _, out, _ = run(capsys, "experiments", "list", *uri, "--all", "--output", "json")
    stages = {e["name"]: e["lifecycle_stage"] for e in json.loads(out)}
    assert stages == {"Default": "active", "second": "active", "cli-test": "deleted"}


def test_experiments_create_makes_a_new_store(capsys, tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/new.db"
    code, out, _ = run(capsys, "experiments", "create", "fresh", "--tracking-uri", uri)
    assert code == 0 and "fresh" in out
    assert ThreadlineClient(uri).get_experiment_by_name("fresh") is not None


# --- usage -------------------------------------------------------------------------------------
def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, f"threadline {threadline.__version__}\n")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["traces"],
        ["traces", "frobnicate"],
        ["traces", "list", "--max-results", "0"],
        ["traces", "list", "--max-results", "many"],
        ["traces", "list", "--output", "yaml"],
        ["traces", "list", "--tracking-uri", "threadline.db"],
        ["traces", "show"],
        ["traces", "delete", "--experiment-id", "1"],
        ["traces", "delete", "--experiment-id", "1", "--older-than-ms", "5", "--trace-id", "x"],
        ["traces", "delete", "--experiment-id", "1", "--trace-id", "x", "--max-traces", "2"],
        ["traces", "tag", "tr-1", "key"],
        ["experiments", "create", " "],
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv: list[str]):
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert_one_line_error(err, "--help")


def test_help_exits_0(capsys):
    code, out, _ = run(capsys, "traces", "list", "--help")
    assert code == 0 and "--experiment-id" in out and "--tracking-uri" in out


def test_bad_tracking_uri_setting_is_a_runtime_error(capsys, monkeypatch):
    monkeypatch.setenv("THREADLINE_TRACKING_URI", "mysql://nope")
    code, _, err = run(capsys, "traces", "list")
    assert code == 1
    assert_one_line_error(err, "mysql://nope")


# --- the installed console script ---------------------------------------------------------------
def test_console_script(logged: Logged):
    script = Path(sys.executable).with_name("threadline")
    command = str(script) if script.exists() else shutil.which("threadline")
    assert command, "the threadline console script is not installed (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    ok = subprocess.run(
        [command, "traces", "list", "--tracking-uri", logged.uri],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert logged.agent_id in ok.stdout and ok.stderr == ""

    bad = subprocess.run(
        [command, "traces", "list", "--tracking-uri", logged.uri, "--filter", "nonsense ="],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert "Traceback" not in bad.stderr
    assert_one_line_error(bad.stderr, "nonsense")


def test_delete_older_than_days_is_retention_by_age(tmp_path, capsys):
    import time as _time

    from threadline.client import ThreadlineClient

    uri = f"sqlite:///{tmp_path}/retention.db"
    threadline.set_tracking_uri(uri)
    client = ThreadlineClient()
    old = client.start_trace("old")
    client.end_trace(old.trace_id)
    threadline.flush_trace_async_logging()
    # make the first trace 3 days old, directly in the store
    import sqlite3

    with sqlite3.connect(tmp_path / "retention.db") as conn:
        conn.execute(
            "update traces set request_time = ? where trace_id = ?",
            (int(_time.time() * 1000) - 3 * 86_400_000, old.trace_id),
        )
    fresh = client.start_trace("fresh")
    client.end_trace(fresh.trace_id)
    threadline.flush_trace_async_logging()
    code = main(
        [
            "traces",
            "delete",
            "--tracking-uri",
            uri,
            "--experiment-id",
            "0",
            "--older-than-days",
            "2",
        ]
    )
    assert code == 0 and "Deleted 1 traces" in capsys.readouterr().out
    assert client.get_trace(old.trace_id) is None
    assert client.get_trace(fresh.trace_id) is not None
