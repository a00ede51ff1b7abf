"""What threadline's autologging adds to one agent-framework call, beside MLflow's autolog.

Run by hand from the repository root::

    .venv/bin/python bench/frameworks.py                  # every workload, 400 calls per mode
    .venv/bin/python bench/frameworks.py --quick          # 100 calls per mode
    .venv/bin/python bench/frameworks.py --only langchain --contenders threadline

Workloads are the modules in ``bench/_frameworks/`` (discovered; see its ``__init__`` for
the interface): each builds one framework call, against a fake model or the test suite's
fake OpenAI server (``tests/integrations/_fake_openai.py``, in its own process). Each
contender runs each workload in its own worker process: threadline
(``threadline.<NAME>.autolog()``) in this venv, MLflow (``mlflow.<MLFLOW_FLAVOR>.autolog()``)
in ``bench/.venvs/mlflow``, which is created on first use (as the overhead benchmark does)
and given the workload's packages at this venv's versions. Both trace to a SQLite file
with async logging on.

As in ``autolog.py``, blocks of calls alternate between autolog off and on after a
warm-up, every call is timed on its own, and a figure is a quantile of the traced calls'
times minus the same quantile of the untraced calls' (``_autolog/timing.py``). The target
is threadline's added CPU time on the calling thread at most 0.2x MLflow's, per workload.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _frameworks
from _autolog import timing, tracking
from _autolog.mlflow_venv import MLFLOW_PYTHON, create_venv, ensure_packages
from _autolog.server import start_server, stop_server
from _autolog.timing import CLOCKS, alternate, quantile, us

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.2
QUANTILES: tuple[float | str, ...] = (0.25, 0.5, "mean")
CONTENDERS = ("threadline", "mlflow")


# --- the worker (runs in the contender's interpreter) -------------------------------------


def _switches(contender: str, module: Any) -> tuple[Any, Any, dict[str, str]]:
    """(enable, disable, versions) of ``contender``'s autologging for the workload."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    versions = {contender: version(contender)}
    for package in module.PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "?"
    if contender == "threadline":
        import threadline

        integration = getattr(threadline, module.NAME)
        return (
            lambda: integration.autolog(silent=True),
            lambda: integration.autolog(disable=True, silent=True),
            versions,
        )
    flavor = importlib.import_module(f"mlflow.{module.MLFLOW_FLAVOR}")
    return (
        lambda: flavor.autolog(silent=True),
        lambda: flavor.autolog(disable=True, silent=True),
        versions,
    )


def worker(args: argparse.Namespace) -> None:
    """Measure one contender on one workload; print the results as JSON on the last line."""
    module = _frameworks.load(args.workload)
    workdir = Path(tempfile.mkdtemp(prefix=f"frameworks-{args.worker}-"))
    count = tracking.setup(args.worker, workdir)
    enable, disable, versions = _switches(args.worker, module)
    call = module.setup(args.url + "/v1")
    samples, traced = alternate(call, enable, disable, args.calls)
    results = {
        "versions": versions,
        "clocks": timing.by_clock(samples),
        "stored": count(),
        "traced_calls": traced,
    }
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results))


# --- the driver ------------------------------------------------------------------------------


def _mlflow_python(module: Any, url: str) -> tuple[str | None, str | None]:
    """(MLflow's python, None) when the workload can run under MLflow, else (None, why)."""
    reason = create_venv()
    if reason is not None:
        return None, reason
    probe = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); "
        f"import mlflow.{module.MLFLOW_FLAVOR}; import _frameworks; "
        f"_frameworks.load({module.NAME!r}).setup({url + '/v1'!r})"
    )
    reason = ensure_packages(list(module.PACKAGES), probe, f"the {module.NAME} workload")
    return (None, reason) if reason is not None else (str(MLFLOW_PYTHON), None)


def _run_worker(python: str, contender: str, workload: str, url: str, calls: int) -> dict[str, Any]:
    cmd = [
        python,
        str(Path(__file__).resolve()),
        "--worker",
        contender,
        "--workload",
        workload,
        "--url",
        url,
        "--calls",
        str(calls),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")} if contender == "threadline" else None
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise RuntimeError(f"{contender} worker for {workload} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _added(result: dict[str, Any], clock: str, q: float | str) -> float:
    """Added seconds per call at quantile ``q`` (or the difference of the means)."""
    on, off = result["clocks"][clock]["on"], result["clocks"][clock]["off"]
    if q == "mean":
        return sum(on) / len(on) - sum(off) / len(off)
    return quantile(on, float(q)) - quantile(off, float(q))


def _label(q: float | str) -> str:
    return q if isinstance(q, str) else f"p{round(q * 100)}"


def _table(results: dict[str, dict[str, Any]], clock: str) -> list[str]:
    head = "| workload | untraced µs/call (median) |"
    rule = "|---|--:|"
    for contender in CONTENDERS:
        for q in QUANTILES:
            head += f" {contender} {_label(q)} |"
            rule += "--:|"
    head += " threadline ÷ mlflow (median) |"
    rule += "--:|"
    lines = [head, rule]
    for workload, by_contender in results.items():
        first = next(iter(by_contender.values()))
        base = us(quantile(first["clocks"][clock]["off"], 0.5))
        cells = []
        for contender in CONTENDERS:
            for q in QUANTILES:
                r = by_contender.get(contender)
                cells.append(us(_added(r, clock, q)) if r is not None else "-")
        cells.append(_ratio(by_contender, clock))
        lines.append(f"| {workload} | {base} | " + " | ".join(cells) + " |")
    return lines


def _ratio(by_contender: dict[str, Any], clock: str) -> str:
    mine, theirs = by_contender.get("threadline"), by_contender.get("mlflow")
    if mine is None or theirs is None:
        return "-"
    added_theirs = _added(theirs, clock, 0.5)
    if added_theirs <= 0:
        return "-"
    return f"{_added(mine, clock, 0.5) / added_theirs:.3f}x"


def _report(
    results: dict[str, dict[str, Any]], skipped: dict[str, str], load: float, calls: int
) -> str:
    lines = [
        f"# framework autolog overhead — {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "",
        "Added µs per framework call: a quantile of the traced calls' times minus the same "
        "quantile of the untraced calls' (p25, median), each call timed on its own, and the "
        f"difference of the means; {calls} timed calls per mode and contender.",
        f"Load average before the run: {load:.2f} on {os.cpu_count()} cores "
        "(other work on the machine inflates every figure).",
    ]
    titles = {
        "thread": "CPU time of the calling thread (what the traced program pays; the target)",
        "wall": "Wall time (the same plus waiting; noisy on a shared machine)",
        "process": "CPU time of the whole process (includes the export thread's work)",
    }
    for clock in CLOCKS:
        lines += ["", f"## {titles[clock]}", "", *_table(results, clock)]
    lines.append("")
    for workload, by_contender in results.items():
        mine, theirs = by_contender.get("threadline"), by_contender.get("mlflow")
        if mine is not None and theirs is not None:
            added_mine, added_theirs = _added(mine, "thread", 0.5), _added(theirs, "thread", 0.5)
            ratio = added_mine / added_theirs if added_theirs > 0 else float("inf")
            verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
            lines.append(
                f"- {workload}: threadline adds {us(added_mine)} µs per call, MLflow "
                f"{us(added_theirs)} µs (calling thread, median): {ratio:.3f}x "
                f"(target ≤ {TARGET_RATIO}x): {verdict}"
            )
        for contender, r in by_contender.items():
            lines.append(
                f"- {workload}, {contender}: {r['stored']} traces stored of "
                f"{r['traced_calls']} traced calls; "
                + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
            )
    for what, reason in skipped.items():
        lines.append(f"- {what} skipped: {reason}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    parser.add_argument(
        "--calls", type=int, default=None, help="timed calls per mode and contender (default 400)"
    )
    parser.add_argument("--only", default=None, help="workloads to run (default: all)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="who to measure")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.calls = args.calls or (100 if args.quick else 400)
    if args.worker:
        worker(args)
        return
    modules = _frameworks.discover()
    names = args.only.split(",") if args.only else list(modules)
    unknown = [n for n in names if n not in modules]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(modules)}")
    load = os.getloadavg()[0]
    server, url = start_server()
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    try:
        for name in names:
            module = modules[name]
            results[name] = {}
            for contender in args.contenders.split(","):
                python: str | None = sys.executable
                if contender == "mlflow":
                    python, reason = _mlflow_python(module, url)
                    if python is None:
                        skipped[f"{name} under mlflow"] = str(reason)
                        print(f"{name} under mlflow skipped: {reason}", file=sys.stderr)
                        continue
                print(f"running {name} under {contender}…", file=sys.stderr, flush=True)
                results[name][contender] = _run_worker(python, contender, name, url, args.calls)
            if not results[name]:
                del results[name]
    finally:
        stop_server(server)
    print(_report(results, skipped, load, args.calls))


if __name__ == "__main__":
    main()
