"""Server ingest: threadline's tracking server under load, next to MLflow's (and Phoenix's).

Run by hand, never as a test::

    .venv/bin/python bench/ingest.py [--seconds 30] [--clients 4] [--quick]

Each server gets a fresh SQLite store in a temporary directory and N concurrent client
processes for ``--seconds``; afterwards the store is counted until every accepted span
is there. Then stores of 10k (and 100k) traces are filled directly and the REST queries
the UI makes are timed. The parent prints a Markdown table and writes it to
``bench/results/ingest-<timestamp>.md``. See ``bench/README.md`` ("Ingest").
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _ingest import report
from _ingest.jsonhttp import HttpError, JsonClient
from _ingest.load import LoadResult, count_rows, median_ms, run_load
from _ingest.servers import Server, ServerFailed, free_port, start_command, start_threadline

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
VENVS_DIR = BENCH_DIR / ".venvs"
PYTHON = REPO / ".venv" / "bin" / "python"
MLFLOW = VENVS_DIR / "mlflow" / "bin" / "mlflow"
PHOENIX = VENVS_DIR / "phoenix" / "bin" / "phoenix"
TRACES_PER_REQUEST = 100
MAX_REQUESTS_PER_CLIENT = 2_000  # 2M spans per client: a bound the time box hits first


def _log(message: str) -> None:
    print(f"[ingest {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _otlp_clients(url: str, n: int, seconds: float, headers: list[str]) -> list[list[str]]:
    extra = [a for h in headers for a in ("--header", h)]
    cmd = [str(PYTHON), "-m", "_ingest.client_otlp", "--url", url, "--seconds", str(seconds)]
    cmd += ["--max-requests", str(MAX_REQUESTS_PER_CLIENT)]
    cmd += ["--traces-per-request", str(TRACES_PER_REQUEST), *extra]
    return [[*cmd, "--id", str(i)] for i in range(n)]


def _otel_sdk_clients(url: str, n: int, seconds: float, headers: list[str]) -> list[list[str]]:
    extra = [a for h in headers for a in ("--header", h)]
    cmd = [str(PYTHON), "-m", "_ingest.client_otel_sdk", "--url", url, "--seconds", str(seconds)]
    return [[*cmd, *extra] for _ in range(n)]


def _sdk_probe(url: str) -> str | None:
    """None when ``threadline.store.get_store(url)`` writes and reads a trace; else why not."""
    code = (
        "import sys, time\n"
        "from threadline.store import SpanRow, TraceRow, get_store\n"
        "s = get_store(sys.argv[1])\n"
        "t = 'tr-' + 'ab' * 16\n"
        "s.log_batch([TraceRow(t, '0', int(time.time()*1000), 'OK', 1, 'probe')],"
        " [SpanRow(t, '0'*15+'1', None, 'probe', 'UNKNOWN', 1, 2, 'OK', '', 'null', 'null',"
        " '{}', '[]')])\n"
        "assert s.get_trace(t) is not None, 'trace not found after log_batch'\n"
    )
    proc = subprocess.run(
        [str(PYTHON), "-c", code, url], capture_output=True, text=True, timeout=120
    )
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


def _threadline_run(label: str, kind: str, args: argparse.Namespace, workdir: Path) -> LoadResult:
    """A fresh threadline server + store, loaded by ``kind`` clients."""
    db = workdir / f"{kind}.db"
    try:
        server = start_threadline(PYTHON, f"sqlite:///{db}", workdir / f"{kind}.log")
    except ServerFailed as exc:
        return LoadResult(label=label, problems=[str(exc)])
    try:
        url = server.url + "/v1/traces"
        env: dict[str, str] = {}
        if kind == "otlp":
            cmds = _otlp_clients(url, args.clients, args.seconds, [])
        elif kind == "otel-sdk":
            cmds = _otel_sdk_clients(url, args.clients, args.seconds, [])
        else:
            why = _sdk_probe(server.url)
            if why is not None:
                return LoadResult(label=label, problems=[f"skipped: get_store(http://…) {why}"])
            cmd = [str(PYTHON), "-m", "_ingest.client_threadline_sdk"]
            cmds = [[*cmd, "--seconds", str(args.seconds)] for _ in range(args.clients)]
            env = {"THREADLINE_TRACKING_URI": server.url}
        _log(f"{label}: {args.clients} clients for {args.seconds:g} s")
        result = run_load(label, server, cmds, args.seconds, lambda: count_rows(db, "spans"), env)
        if kind == "sdk" and result.stored_spans is not None:
            result.stored_spans -= 1  # the probe's span
        return result
    finally:
        server.stop()


def _mlflow_run(args: argparse.Namespace, workdir: Path) -> tuple[LoadResult, dict[str, Any]]:
    """MLflow's server on SQLite, fed through its OTLP endpoint by the same client."""
    label = "MLflow server (OTLP protobuf)"
    extra: dict[str, Any] = {}
    if not MLFLOW.exists():
        return LoadResult(label=label, problems=[f"{MLFLOW} does not exist"]), extra
    db = workdir / "mlflow.db"
    port = free_port()
    cmd = [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{db}"]
    cmd += ["--default-artifact-root", str(workdir / "mlartifacts")]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    _log(f"{label}: starting (first start migrates the database; up to 3 minutes)")
    try:
        server = start_command(
            "mlflow", cmd, f"http://127.0.0.1:{port}", "/health", workdir / "mlflow.log"
        )
    except ServerFailed as exc:
        return LoadResult(label=label, problems=[str(exc)]), extra
    try:
        cmds = _otlp_clients(
            server.url + "/v1/traces", args.clients, args.seconds, ["x-mlflow-experiment-id=0"]
        )
        _log(f"{label}: {args.clients} clients for {args.seconds:g} s")
        result = run_load(label, server, cmds, args.seconds, lambda: count_rows(db, "spans"))
        extra = _mlflow_search(server, db)
        return result, extra
    finally:
        server.stop()


def _mlflow_search(server: Server, db: Path) -> dict[str, Any]:
    """Median time of MLflow's search_traces (first page of 100) at its store's size."""
    client = JsonClient(server.url)
    body = {
        "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "0"}}],
        "max_results": 100,
    }
    try:
        found = client.call("POST", "/api/3.0/mlflow/traces/search", body)
        ms = median_ms(lambda: client.call("POST", "/api/3.0/mlflow/traces/search", body))
        return {
            "search_ms": ms,
            "returned": len(found.get("traces", [])),
            "stored_traces": count_rows(db, "trace_info"),
        }
    except (HttpError, OSError, ValueError) as exc:
        return {"error": str(exc)[:300]}
    finally:
        client.close()


def _phoenix_run(args: argparse.Namespace, workdir: Path) -> LoadResult:
    """Phoenix on SQLite, fed through its OTLP/HTTP endpoint, if its venv works."""
    label = "Phoenix (OTLP protobuf)"
    if not PHOENIX.exists():
        return LoadResult(label=label, problems=[_phoenix_missing()])
    port = free_port()
    env = {
        "PHOENIX_WORKING_DIR": str(workdir / "phoenix"),
        "PHOENIX_PORT": str(port),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{workdir / 'phoenix.db'}",
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    _log(f"{label}: starting")
    try:
        server = start_command(
            "phoenix",
            [str(PHOENIX), "serve"],
            f"http://127.0.0.1:{port}",
            "/healthz",
            workdir / "phoenix.log",
            env=env,
        )
    except ServerFailed as exc:
        return LoadResult(label=label, problems=[str(exc)])
    try:
        cmds = _otlp_clients(server.url + "/v1/traces", args.clients, args.seconds, [])
        _log(f"{label}: {args.clients} clients for {args.seconds:g} s")
        db = workdir / "phoenix.db"
        return run_load(label, server, cmds, args.seconds, lambda: count_rows(db, "spans"))
    finally:
        server.stop()


def _phoenix_missing() -> str:
    log = VENVS_DIR / "phoenix-install.log"
    if not log.exists():
        return "not installed (bench/.venvs/phoenix has no `phoenix` command)"
    tail = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if line.strip() and not line.startswith("WARNING")
    ][-2:]
    return "not installed: `pip install arize-phoenix` did not finish: " + (
        " | ".join(tail) or "no output"
    )


def _query_figures(n_traces: int, workdir: Path) -> dict[str, Any]:
    """Fill a store with ``n_traces`` traces, serve it, time the UI's queries (median of 5)."""
    db = workdir / f"query-{n_traces}.db"
    _log(f"query figures: filling a store with {n_traces:,} traces of 10 spans + one of 5,000")
    proc = subprocess.run(
        [str(PYTHON), "-m", "_ingest.fill", "--uri", f"sqlite:///{db}", "--traces", str(n_traces)],
        cwd=BENCH_DIR,
        env={"PYTHONPATH": str(BENCH_DIR), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        return {"error": "fill failed: " + " | ".join(proc.stderr.strip().splitlines()[-3:])}
    fill = json.loads(proc.stdout.strip().splitlines()[-1])
    server = start_threadline(PYTHON, f"sqlite:///{db}", workdir / f"query-{n_traces}.log")
    client = JsonClient(server.url)
    figures: dict[str, Any] = {"traces": n_traces, "fill_s": fill["seconds"]}
    try:

        def search(filter_string: str, spans: bool) -> Callable[[], Any]:
            body = {
                "experiment_ids": ["0"],
                "filter_string": filter_string,
                "max_results": 100,
                "include_spans": spans,
            }
            return lambda: client.call("POST", "/api/v1/traces/search", body)

        calls = {
            "list_ms": search("tags.env = 'prod'", False),
            "page_spans_ms": search("tags.env = 'prod'", True),
            "trace10_ms": lambda: client.call("GET", f"/api/v1/traces/{fill['small_trace_id']}"),
            "trace5000_ms": lambda: client.call("GET", f"/api/v1/traces/{fill['big_trace_id']}"),
            "span_attr_ms": search("span.attributes.model = 'm7'", False),
        }
        checks = {
            "list_ms": lambda r: len(r["traces"]) == 100,
            "page_spans_ms": lambda r: all(len(t["data"]["spans"]) == 10 for t in r["traces"]),
            "trace10_ms": lambda r: len(r["trace"]["data"]["spans"]) == 10,
            "trace5000_ms": lambda r: len(r["trace"]["data"]["spans"]) == 5000,
            "span_attr_ms": lambda r: len(r["traces"]) == min(100, n_traces // 100),
        }
        for key, fn in calls.items():
            try:
                if not checks[key](fn()):
                    figures.setdefault("warnings", []).append(f"{key}: unexpected result size")
                figures[key] = median_ms(fn)
            except (HttpError, OSError, ValueError, KeyError) as exc:
                figures.setdefault("warnings", []).append(f"{key}: {str(exc)[:200]}")
        server.sample_rss()
        figures["rss_mb"] = server.rss_samples[-1] if server.rss_samples else None
    finally:
        client.close()
        server.stop()
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="load time per contender (30; quick 10)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (4)")
    parser.add_argument("--quick", action="store_true", help="10 s, query figures at 10k only")
    parser.add_argument(
        "--query-sizes", help="comma-separated stored-trace counts (10000,100000; quick 10000)"
    )
    parser.add_argument("--no-peers", action="store_true", help="threadline only")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 10.0 if args.quick else 30.0
    sizes = args.query_sizes or ("10000" if args.quick else "10000,100000")
    args.query_sizes = [int(s) for s in sizes.split(",") if s.strip()]
    if args.seconds <= 0 or args.clients < 1 or any(s < 100 for s in args.query_sizes):
        parser.error("--seconds and --clients must be positive, query sizes at least 100")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every contender and the query figures; print and save the report."""
    args = parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    busy_before = report.busy_cores()
    loads: list[LoadResult] = []
    queries: list[dict[str, Any]] = []
    mlflow_search: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        for label, kind in (
            ("threadline (OTLP protobuf, 100 traces/request)", "otlp"),
            ("threadline (OpenTelemetry SDK exporter)", "otel-sdk"),
            ("threadline (threadline SDK, THREADLINE_TRACKING_URI=http://…)", "sdk"),
        ):
            loads.append(_threadline_run(label, kind, args, workdir))
        if not args.no_peers:
            result, mlflow_search = _mlflow_run(args, workdir)
            loads.append(result)
            loads.append(_phoenix_run(args, workdir))
        for size in args.query_sizes:
            try:
                queries.append(_query_figures(size, workdir))
            except (ServerFailed, OSError, subprocess.SubprocessError, ValueError) as exc:
                queries.append({"traces": size, "error": str(exc)[:300]})
    command = shlex.join(
        ["python", "bench/ingest.py", *(argv if argv is not None else sys.argv[1:])]
    )
    text = report.render(
        loads,
        queries,
        mlflow_search,
        started=started,
        command=command,
        busy_before=busy_before,
        args=args,
    )
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(text, encoding="utf-8")
    _log(f"report written to {path}")
    return 0 if any(r.stored_spans for r in loads) else 1


if __name__ == "__main__":
    sys.exit(main())
