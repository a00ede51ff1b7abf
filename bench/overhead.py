"""Overhead of threadline's tracing next to MLflow Tracing and the raw OpenTelemetry SDK.

Run by hand, never as a test::

    .venv/bin/python bench/overhead.py [--traces N] [--quick] [--only KEY,...]

Each contender runs in its own worker process (the peer's venv under ``bench/.venvs``,
created on first use); the parent prints a Markdown table and writes it to
``bench/results/overhead-<timestamp>.md``. See ``bench/README.md`` for what each figure
means.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _overhead import report, runner, venvs

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
VENVS_DIR = BENCH_DIR / ".venvs"
RSS_TRACES = 10_000
MLFLOW_MAX_TRACES = 500
MLFLOW_WARMUP = 50
THREADLINE_PROBE = "import threadline; threadline.trace; threadline.search_traces"


@dataclass(frozen=True)
class Spec:
    """One contender: where it runs, its worker, and how much work it gets."""

    key: str
    label: str
    venv: str | None  # None: the interpreter that has threadline
    module: str
    import_module: str
    mode: str = "async"
    max_traces: int | None = None
    warmup: int | None = None
    rss_in_quick: bool = True
    rss: bool = True


SPECS = (
    Spec(
        key="threadline-sync",
        label="threadline sync",
        venv=None,
        module="_overhead.worker_threadline",
        import_module="threadline",
        mode="sync",
    ),
    Spec(
        key="threadline-async",
        label="threadline async",
        venv=None,
        module="_overhead.worker_threadline",
        import_module="threadline",
    ),
    Spec(
        key="threadline-async-processor",
        label="threadline async + 1 span processor",
        venv=None,
        module="_overhead.worker_threadline",
        import_module="threadline",
        mode="async-processor",
        rss=False,
    ),
    Spec(
        key="threadline-async-destination",
        label="threadline async + set_destination per trace",
        venv=None,
        module="_overhead.worker_threadline",
        import_module="threadline",
        mode="async-destination",
        rss=False,
    ),
    Spec(
        key="otel",
        label="OpenTelemetry SDK (OTLP/HTTP)",
        venv="otel",
        module="_overhead.worker_otel",
        import_module="opentelemetry.sdk.trace",
        rss_in_quick=False,
    ),
    Spec(
        key="mlflow",
        label="MLflow (SQLite, async)",
        venv="mlflow",
        module="_overhead.worker_mlflow",
        import_module="mlflow",
        max_traces=MLFLOW_MAX_TRACES,
        warmup=MLFLOW_WARMUP,
        rss=False,
    ),
)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _threadline_python() -> Path:
    """This interpreter if it imports threadline, else the repository's ``.venv``."""
    candidates = [Path(sys.executable), REPO / ".venv" / "bin" / "python"]
    errors = []
    for python in candidates:
        if not python.exists():
            continue
        proc = subprocess.run(
            [str(python), "-c", THREADLINE_PROBE], capture_output=True, text=True, timeout=300
        )
        if proc.returncode == 0:
            return python
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        errors.append(f"{python}: {last}")
    raise venvs.PeerUnavailable(
        "threadline does not import (" + "; ".join(errors) + "); install it with "
        f"`cd {REPO} && .venv/bin/pip install -e . --no-deps`"
    )


def _python_for(spec: Spec, cache: dict[str, Path | Exception]) -> Path:
    """The interpreter of ``spec``, creating its venv once; raises PeerUnavailable."""
    name = spec.venv or "threadline"
    if name not in cache:
        try:
            if spec.venv is None:
                cache[name] = _threadline_python()
            else:
                cache[name] = venvs.ensure_venv(venvs.PEERS[spec.venv], VENVS_DIR)
        except venvs.PeerUnavailable as exc:
            cache[name] = exc
        except (OSError, subprocess.SubprocessError) as exc:
            cache[name] = venvs.PeerUnavailable(f"{type(exc).__name__}: {exc}")
    found = cache[name]
    if isinstance(found, Exception):
        raise found
    return found


def _worker(
    spec: Spec, python: Path, sink_python: Path | None, phase_args: list[str]
) -> dict[str, Any]:
    """One worker run in a fresh scratch directory, with an OTLP sink when asked."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{spec.key}-") as workdir:
        args = [*phase_args, "--workdir", workdir, "--mode", spec.mode]
        if sink_python is None:
            return runner.run_worker(python, spec.module, args, cwd=workdir)
        with runner.otlp_sink(sink_python) as endpoint:
            args += ["--endpoint", endpoint]
            return runner.run_worker(python, spec.module, args, cwd=workdir)


def _measure(
    spec: Spec, args: argparse.Namespace, cache: dict[str, Path | Exception]
) -> report.Outcome:
    """Import time, the overhead run and (when asked) the RSS run of one contender."""
    outcome = report.Outcome(spec.key, spec.label, import_module=spec.import_module)
    try:
        python = _python_for(spec, cache)
    except venvs.PeerUnavailable as exc:
        outcome.problems.append(f"not measured: {exc}")
        return outcome
    sink = python if spec.venv == "otel" else None
    traces = min(args.traces, spec.max_traces or args.traces)
    warmup = min(args.warmup, spec.warmup or args.warmup)
    if traces < args.traces:
        outcome.notes.append(f"{traces} traces per repetition instead of {args.traces} (slow).")

    _log(f"{spec.label}: import time of {spec.import_module} ({python})")
    try:
        outcome.import_ms = runner.import_time_ms(python, spec.import_module)
    except (runner.WorkerFailed, OSError, ValueError, subprocess.SubprocessError) as exc:
        outcome.problems.append(f"import time: {exc}")

    _log(f"{spec.label}: {warmup} warm-up + {args.reps} x {traces} traces")
    phase = ["--phase", "overhead", "--traces", str(traces), "--reps", str(args.reps)]
    try:
        outcome.overhead = _worker(spec, python, sink, [*phase, "--warmup", str(warmup)])
        outcome.notes += outcome.overhead.get("notes", [])
    except (runner.WorkerFailed, OSError, ValueError) as exc:
        outcome.problems.append(f"overhead run failed: {exc}")

    if spec.rss and (spec.rss_in_quick or not args.quick):
        _log(f"{spec.label}: RSS over {RSS_TRACES:,} traces")
        phase = ["--phase", "rss", "--traces", str(RSS_TRACES), "--warmup", str(warmup)]
        try:
            outcome.rss = _worker(spec, python, sink, phase)
            outcome.notes += [f"RSS run: {note}" for note in outcome.rss.get("notes", [])]
        except (runner.WorkerFailed, OSError, ValueError) as exc:
            outcome.problems.append(f"RSS run failed: {exc}")
    elif not spec.rss:
        outcome.notes.append("RSS not measured (10,000 traces would take too long).")
    return outcome


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    keys = ", ".join(s.key for s in SPECS)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, help="measured traces per repetition (2,000)")
    parser.add_argument("--quick", action="store_true", help="300 traces; no peer RSS runs")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the loop (3)")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up traces (200)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {keys}")
    args = parser.parse_args(argv)
    if args.traces is None:
        args.traces = 300 if args.quick else 2000
    args.only = {k.strip() for k in args.only.split(",") if k.strip()}
    unknown = args.only - {s.key for s in SPECS}
    if unknown:
        parser.error(f"--only: unknown contender(s) {sorted(unknown)}; choose from {keys}")
    if args.traces < 1 or args.reps < 1 or args.warmup < 0:
        parser.error("--traces and --reps must be positive and --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure every contender, print the report and save it under bench/results/."""
    args = parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    busy_before = report.busy_cores()
    cache: dict[str, Path | Exception] = {}
    outcomes = [
        _measure(spec, args, cache) for spec in SPECS if not args.only or spec.key in args.only
    ]
    command = shlex.join(
        ["python", "bench/overhead.py", *(argv if argv is not None else sys.argv[1:])]
    )
    text = report.render(outcomes, started=started, command=command, busy_before=busy_before)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"overhead-{time.strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(text, encoding="utf-8")
    _log(f"report written to {path}")
    return 0 if any(o.overhead for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
