"""Child processes of the benchmark: workers, import timings and the OTLP sink.

Every child runs in its own process group, and is killed with it on timeout or exit, so
the benchmark leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH_RESULT "  # as in harness.py, which the parent does not import
WORKER_TIMEOUT_S = 45 * 60
_LOSS = re.compile(r"dropp|discard|queue (is )?full", re.IGNORECASE)
_TIMESTAMP = re.compile(r"^\d{4}[/-]\d\d[/-]\d\d[ T][\d:.,]+\s*")


class WorkerFailed(Exception):
    """A worker exited badly or printed no result; the message carries its stderr tail."""


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` and everything it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(text: str, lines: int = 8) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _loss_warnings(stderr: str, keep: int = 2) -> list[str]:
    """The library's own warnings about dropping data, deduplicated, as report notes."""
    found: dict[str, int] = {}
    for line in stderr.splitlines():
        if _LOSS.search(line):
            text = _TIMESTAMP.sub("", line.strip())
            found[text] = found.get(text, 0) + 1
    return [f"worker stderr, {n} line(s): {text}" for text, n in list(found.items())[:keep]]


def run_worker(python: Path, module: str, args: list[str], *, cwd: str) -> dict[str, Any]:
    """Run ``python -m <module> <args>`` and return its JSON result line.

    The worker runs in ``cwd`` (a scratch directory: libraries that write relative paths,
    such as MLflow's ``./mlruns``, write there) with ``bench/`` on ``PYTHONPATH``.
    """
    env = {**os.environ, "PYTHONPATH": str(BENCH_DIR)}
    proc = subprocess.Popen(
        [str(python), "-m", module, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise WorkerFailed(f"timed out after {WORKER_TIMEOUT_S} s") from exc
    finally:
        _kill_group(proc)
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
            result.setdefault("notes", []).extend(_loss_warnings(stderr))
            return result
    raise WorkerFailed(f"exit status {proc.returncode}, no result:\n{_tail(stderr or stdout)}")


def import_time_ms(python: Path, module: str, runs: int = 5) -> float:
    """Best of ``runs`` fresh interpreters timing ``import <module>``, in milliseconds.

    Bytecode is cached under ``bench/.venvs/pycache`` (an untimed first run writes it) so
    every package is timed as an installed one, even where the environment sets
    ``PYTHONDONTWRITEBYTECODE`` and threadline's ``src/`` has no ``.pyc`` files.
    """
    code = (
        f"import time\nt0 = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - t0)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(BENCH_DIR / ".venvs" / "pycache")
    best = float("inf")
    with tempfile.TemporaryDirectory() as cwd:  # nothing in the cwd can shadow the module
        for attempt in range(runs + 1):
            proc = subprocess.run(
                [str(python), "-c", code],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if proc.returncode != 0:
                raise WorkerFailed(f"`import {module}` failed:\n{_tail(proc.stderr)}")
            if attempt:  # the first run only fills the bytecode cache
                best = min(best, float(proc.stdout.strip().splitlines()[-1]) * 1000)
    return best


@contextlib.contextmanager
def otlp_sink(python: Path) -> Iterator[str]:
    """Run ``_overhead.otlp_sink`` in its own process; yield its ``/v1/traces`` URL."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        proc = subprocess.Popen(
            [str(python), "-m", "_overhead.otlp_sink"],
            cwd=BENCH_DIR,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # blocks until the port is printed or the sink dies
            if not first.startswith("PORT "):
                _kill_group(proc)
                errors.seek(0)
                raise WorkerFailed(f"OTLP sink did not start:\n{_tail(errors.read())}")
            yield f"http://127.0.0.1:{int(first.split()[1])}/v1/traces"
        finally:
            _kill_group(proc)
            if proc.stdout is not None:
                proc.stdout.close()
