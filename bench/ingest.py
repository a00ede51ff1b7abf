"""Server ingest: threadline's tracking server under load, next to MLflow's (and Phoenix's).

Run by hand, never as a test::

    .venv/bin/python bench/ingest.py [--seconds 30] [--clients 4] [--quick] [--no-peers]
        [--postgres-uri postgresql://127.0.0.1:5432/test | --no-postgres]
        [--ack-repeat N] [--ack-only]

Every OTLP configuration (SQLite 1 process, SQLite and PostgreSQL with 2 workers) runs
twice: acknowledged after the commit (the default) and when queued (``x-threadline-ack:
queued``, lossy), with their ratio; ``--ack-repeat N`` alternates each pair N times and
keeps each mode's median run, which steadies the ratio on a shared machine.

Each server gets a fresh store — a SQLite file in a temporary directory, or for the
PostgreSQL rows a new database on ``--postgres-uri``'s server, dropped afterwards — and N
concurrent client processes for ``--seconds``; afterwards the store is counted until
every accepted span is there. Then stores of 10k (and 100k) traces are filled directly
(SQLite, and PostgreSQL) and the REST queries the UI makes are timed. The parent prints
a Markdown table and writes it to ``bench/results/ingest-<timestamp>.md``. See
``bench/README.md`` ("Ingest").
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _ingest import pg, report
from _ingest.jsonhttp import HttpError, JsonClient
from _ingest.load import LoadResult, count_rows, median_ms, run_load
from _ingest.queries import query_figures
from _ingest.servers import (
    Server,
    ServerFailed,
    free_port,
    start_command,
    start_threadline,
    worker_cpu_s,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
VENVS_DIR = BENCH_DIR / ".venvs"
PYTHON = REPO / ".venv" / "bin" / "python"
MLFLOW = VENVS_DIR / "mlflow" / "bin" / "mlflow"
PHOENIX = VENVS_DIR / "phoenix" / "bin" / "phoenix"
TRACES_PER_REQUEST = 100
MAX_REQUESTS_PER_CLIENT = 2_000  # 2M spans per client: a bound the time box hits first
SQLITE, POSTGRES = "SQLite", "PostgreSQL"
QUERY_WORKERS = {SQLITE: 1, POSTGRES: 2}  # server processes behind the query figures
DEFAULT_POSTGRES_URI = "postgresql://127.0.0.1:5432/test"


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
        "now = time.time_ns()\n"
        "s.log_batch([TraceRow(t, '0', now // 10**6, 'OK', 1, 'probe')],"
        " [SpanRow(t, '0'*15+'1', None, 'probe', 'UNKNOWN', now, now + 1000, 'OK', '', 'null',"
        " 'null', '{}', '[]')])\n"
        "assert s.get_trace(t) is not None, 'trace not found after log_batch'\n"
    )
    proc = subprocess.run(
        [str(PYTHON), "-c", code, url], capture_output=True, text=True, timeout=120
    )
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


@contextmanager
def _fresh_store(
    backend: str, workdir: Path, tag: str, args: argparse.Namespace
) -> Iterator[tuple[str, Callable[[], int | None]]]:
    """An empty store: its URI and a counter of its spans. A PostgreSQL database is new
    on ``--postgres-uri``'s server and dropped afterwards (``pg.PostgresFailed`` if not)."""
    if backend == SQLITE:
        db = workdir / f"{tag}.db"
        yield f"sqlite:///{db}", lambda: count_rows(db, "spans")
        return
    with pg.fresh_database(args.postgres_uri) as uri:
        yield uri, lambda: pg.count_rows(uri, "spans")


def _threadline_run(
    label: str,
    kind: str,
    args: argparse.Namespace,
    workdir: Path,
    *,
    backend: str = SQLITE,
    workers: int = 1,
    ack: str | None = None,
) -> LoadResult:
    """A fresh threadline server (``workers`` processes) and ``backend`` store, loaded by
    ``kind`` clients; with ``ack``, OTLP clients send ``x-threadline-ack: <ack>``."""
    if backend == POSTGRES and args.postgres_skip:
        return LoadResult(label=label, backend=backend, problems=[args.postgres_skip])
    result = LoadResult(label=label, backend=backend)
    tag = f"{kind}-{backend.lower()}-{workers}w-{ack or 'default'}"
    headers = [f"x-threadline-ack={ack}"] if ack else []
    try:
        with _fresh_store(backend, workdir, tag, args) as (uri, counter):
            result = _serve_and_load(
                label, kind, args, workdir / f"{tag}.log", uri, counter, workers, headers
            )
    except pg.PostgresFailed as exc:
        result.problems.append(str(exc)[:300])
    result.backend = backend
    if ack is not None:
        result.ack, result.config = (
            ack,
            f"{backend}, {workers} process{'es' if workers > 1 else ''}",
        )
    return result


def _serve_and_load(
    label: str,
    kind: str,
    args: argparse.Namespace,
    log: Path,
    uri: str,
    counter: Callable[[], int | None],
    workers: int,
    headers: list[str],
) -> LoadResult:
    """Start the server on ``uri``, run the clients, count with ``counter``, stop it."""
    try:
        server = start_threadline(PYTHON, uri, log, workers=workers)
    except ServerFailed as exc:
        return LoadResult(label=label, problems=[str(exc)])
    try:
        url = server.url + "/v1/traces"
        env: dict[str, str] = {}
        if kind == "otlp":
            cmds = _otlp_clients(url, args.clients, args.seconds, headers)
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
        cpu_before = worker_cpu_s(server.proc.pid)
        result = run_load(label, server, cmds, args.seconds, counter, env)
        if workers > 1:
            used = worker_cpu_s(server.proc.pid)
            shares = [used[p] - cpu_before.get(p, 0.0) for p in sorted(used)]
            result.notes.append(
                "CPU seconds per worker process during load and drain: "
                + " / ".join(f"{s:.1f}" for s in shares)
            )
        if kind == "sdk" and result.stored_spans is not None:
            result.stored_spans -= 1  # the probe's span
        return result
    finally:
        server.stop()


def _ack_pair(
    args: argparse.Namespace, workdir: Path, backend: str, workers: int
) -> tuple[LoadResult, LoadResult]:
    """The OTLP row acknowledged after commit and the same acknowledged when queued.

    With ``--ack-repeat N`` each is run N times, alternating (committed, queued, queued,
    committed, …) so that drift in the machine's load falls on both; each mode's row is its
    median run, and every run's figure is noted.
    """
    where = f"{backend}, {workers} workers" if workers > 1 else "1 process"
    runs: dict[str, list[LoadResult]] = {"committed": [], "queued": []}
    labels = {"committed": "ack after commit", "queued": "ack when queued: lossy"}
    for round_number in range(args.ack_repeat):
        order = ("committed", "queued") if round_number % 2 == 0 else ("queued", "committed")
        for ack in order:
            runs[ack].append(
                _threadline_run(
                    f"threadline OTLP, {where} ({labels[ack]})",
                    "otlp",
                    args,
                    workdir,
                    backend=backend,
                    workers=workers,
                    ack=ack,
                )
            )
    committed, queued = (_median_run(runs[ack]) for ack in ("committed", "queued"))
    if args.ack_repeat > 1:
        for row, ack in ((committed, "committed"), (queued, "queued")):
            figures = ", ".join(_num_or_dash(r.queryable_per_s) for r in runs[ack])
            row.notes.append(f"queryable spans/s of the {args.ack_repeat} runs: {figures}")
    return committed, queued


def _median_run(runs: list[LoadResult]) -> LoadResult:
    """The run with the median queryable rate (runs that measured nothing sort first)."""
    ordered = sorted(runs, key=lambda r: r.queryable_per_s or 0.0)
    return ordered[len(ordered) // 2]


def _num_or_dash(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


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


def _query_figures(
    n_traces: int, backend: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Fill a fresh ``backend`` store with ``n_traces`` traces, serve it, time the UI's queries."""
    workers = QUERY_WORKERS[backend]
    figures: dict[str, Any] = {"traces": n_traces, "backend": backend, "workers": workers}
    if backend == POSTGRES and args.postgres_skip:
        return {**figures, "error": args.postgres_skip}
    _log(
        f"query figures ({backend}): filling a store with {n_traces:,} traces of 10 spans"
        " + one of 5,000"
    )
    tag = f"query-{backend.lower()}-{n_traces}"
    try:
        with _fresh_store(backend, workdir, tag, args) as (uri, _):
            figures.update(query_figures(PYTHON, uri, n_traces, workdir / f"{tag}.log", workers))
    except (
        pg.PostgresFailed,
        ServerFailed,
        OSError,
        subprocess.SubprocessError,
        ValueError,
    ) as exc:
        figures["error"] = str(exc)[:300]
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
    parser.add_argument(
        "--no-peers", action="store_true", help="threadline rows only (no MLflow, no Phoenix)"
    )
    parser.add_argument(
        "--postgres-uri",
        default=DEFAULT_POSTGRES_URI,
        metavar="URI",
        help="PostgreSQL server for the PostgreSQL rows: a fresh database is created next to "
        f"this one for each run and dropped after ({DEFAULT_POSTGRES_URI})",
    )
    parser.add_argument("--no-postgres", action="store_true", help="no PostgreSQL rows")
    parser.add_argument(
        "--ack-repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each ack-after-commit / ack-when-queued pair N times, alternating (1)",
    )
    parser.add_argument(
        "--ack-only",
        action="store_true",
        help="only the ack comparison rows (no SDK rows, no query figures, no peers)",
    )
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 10.0 if args.quick else 30.0
    sizes = args.query_sizes or ("10000" if args.quick else "10000,100000")
    args.query_sizes = [int(s) for s in sizes.split(",") if s.strip()]
    if args.ack_repeat < 1:
        parser.error("--ack-repeat must be at least 1")
    if args.seconds <= 0 or args.clients < 1 or any(s < 100 for s in args.query_sizes):
        parser.error("--seconds and --clients must be positive, query sizes at least 100")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every contender and the query figures; print and save the report."""
    args = parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    busy_before = report.busy_cores()
    backends = [SQLITE] if args.no_postgres else [SQLITE, POSTGRES]
    args.postgres_skip = None if args.no_postgres else pg.unreachable(args.postgres_uri)
    if args.postgres_skip:
        _log(args.postgres_skip)
    loads: list[LoadResult] = []
    queries: list[dict[str, Any]] = []
    mlflow_search: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        # Each OTLP configuration twice: acknowledged after the commit (the default), and
        # when queued (x-threadline-ack: queued, lossy) to show what durability costs.
        loads.extend(_ack_pair(args, workdir, SQLITE, 1))
        if not args.ack_only:
            for label, kind in (
                ("threadline (OpenTelemetry SDK exporter)", "otel-sdk"),
                ("threadline (threadline SDK, THREADLINE_TRACKING_URI=http://…)", "sdk"),
            ):
                loads.append(_threadline_run(label, kind, args, workdir))
        for backend in backends:
            loads.extend(_ack_pair(args, workdir, backend, 2))
        # The query figures come before the peers: stopping MLflow (2+ GB) and Phoenix
        # leaves the machine busy for a while, which doubled the query times measured after.
        for backend in [] if args.ack_only else backends:
            for size in args.query_sizes:
                queries.append(_query_figures(size, backend, args, workdir))
        if not args.no_peers and not args.ack_only:
            result, mlflow_search = _mlflow_run(args, workdir)
            loads.append(result)
            loads.append(_phoenix_run(args, workdir))
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
