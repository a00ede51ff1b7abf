"""What ``threadline.openai.autolog()`` adds to an OpenAI chat call, beside MLflow's autolog.

Run by hand from the repository root::

    .venv/bin/python bench/autolog.py            # ~5 minutes here
    .venv/bin/python bench/autolog.py --quick    # fewer calls, ~1-2 minutes
    .venv/bin/python bench/autolog.py --only threadline

The fake OpenAI server of the test suite (``tests/integrations/_fake_openai.py``) runs in
its own process; each contender runs in its own worker process with the real ``openai``
client: threadline in this venv, MLflow (``mlflow.openai.autolog()``) in
``bench/.venvs/mlflow`` if that venv exists (``openai`` is installed into it, at this
venv's version, when missing). Both trace to a SQLite file with async logging on.

Each workload alternates short blocks of calls with autolog off and on (``autolog(disable=
True)`` / ``autolog()``) after a warm-up; every call is timed on its own, and a figure is
a quantile (p25, median) of the traced calls' times minus the same quantile of the
untraced calls'. Quantiles of per-call times, rather than means, keep the figures usable
on a shared machine, where other work adds milliseconds to random calls. Three clocks:
CPU time of the calling thread (what the traced program pays on its own thread: the
targets apply to it), wall time (the same plus waiting; noisy), and process CPU (also the
export thread's work).

Workloads: a non-streaming chat completion; a streamed one of 20 and of 200 content
chunks with ``stream_options={"include_usage": True}`` set by the caller, so that traced
and untraced runs receive the same chunks (the per-chunk figure is the slope between the
two); and a streamed one of 20 chunks without ``stream_options``, where threadline asks
for usage itself and so the client parses one more chunk (threadline's default path).

Targets: ≤ 50 µs added per call, ≤ 2 µs per streamed chunk.
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

from _autolog import timing, tracking
from _autolog.mlflow_venv import MLFLOW_PYTHON, ensure_packages
from _autolog.server import start_server, stop_server
from _autolog.timing import CLOCKS, alternate
from _autolog.timing import quantile as _quantile
from _autolog.timing import us as _us

ROOT = Path(__file__).resolve().parent.parent
TARGET_CALL_US = 50.0
TARGET_CHUNK_US = 2.0
MESSAGES = [{"role": "user", "content": "Hello!"}]
QUANTILES: tuple[float | str, ...] = (0.25, 0.5, "mean")
# name -> (stream, chunks, caller sets stream_options)
WORKLOADS = {
    "chat": (False, 0, False),
    "stream20": (True, 20, True),
    "stream200": (True, 200, True),
    "stream20-default": (True, 20, False),
}


# --- the worker (runs in the contender's interpreter) -------------------------------------


def _tracer(name: str, workdir: Path) -> tuple[Any, Any, Any, dict[str, str]]:
    """(enable, disable, count_stored, versions) for one contender."""
    from importlib.metadata import version

    count = tracking.setup(name, workdir)
    if name == "threadline":
        import threadline

        return (
            lambda: threadline.openai.autolog(silent=True),
            lambda: threadline.openai.autolog(disable=True, silent=True),
            count,
            {"threadline": version("threadline"), "openai": version("openai")},
        )
    import mlflow

    return (
        lambda: mlflow.openai.autolog(silent=True),
        lambda: mlflow.openai.autolog(disable=True, silent=True),
        count,
        {"mlflow": version("mlflow"), "openai": version("openai")},
    )


def _call(client: Any, workload: str) -> None:
    stream, chunks, with_options = WORKLOADS[workload]
    if not stream:
        response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert response.choices[0].message.content
        return
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if with_options else {}
    received = 0
    for _chunk in client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, max_tokens=chunks, **extra
    ):
        received += 1
    assert received >= chunks


def worker(args: argparse.Namespace) -> None:
    """Measure one contender; print its results as JSON on the last line of stdout.

    Calls alternate in short blocks between autolog off and on, so both modes see the
    same machine; every call is timed on its own, and the figures compare quantiles of
    the two samples (low quantiles are what the code costs when nothing else interferes).
    """
    import openai

    workdir = Path(tempfile.mkdtemp(prefix=f"autolog-{args.worker}-"))
    enable, disable, count, versions = _tracer(args.worker, workdir)
    client = openai.OpenAI(base_url=args.url + "/v1", api_key="sk-bench", max_retries=0)
    traced_calls = 0
    results: dict[str, Any] = {"versions": versions, "workloads": {}}
    for workload in args.workloads.split(","):
        calls = args.calls if WORKLOADS[workload][1] < 100 else max(20, args.calls // 6)
        samples, traced = alternate(
            lambda workload=workload: _call(client, workload), enable, disable, calls
        )
        traced_calls += traced
        results["workloads"][workload] = timing.by_clock(samples)
        print(f"{args.worker}: {workload} done", file=sys.stderr, flush=True)
    if args.worker == "threadline":
        results["isolated"] = _isolated(client)
        traced_calls += results["isolated"].pop("traced_calls")
    client.close()
    results["stored"] = count()
    results["traced_calls"] = traced_calls
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results))


def _isolated(client: Any) -> dict[str, Any]:
    """threadline's own work per call and per chunk, without the client's and the
    network's noise: the integration's wrapper (the one ``autolog()`` installs) around a
    stand-in for ``create`` that returns a response or replays chunks the real client
    parsed from the fake server. Best of several repetitions of many calls."""
    import openai
    from openai.resources.chat.completions import Completions

    from threadline.integrations import openai as integration
    from threadline.integrations._llm_call import Config, wrap_sync

    class Replay(openai.Stream):  # type: ignore[type-arg]
        def __init__(self, chunks: list[Any]) -> None:
            self._iterator = iter(chunks)

    call = next(
        t.call
        for t in integration._targets(openai)
        if t.owner is Completions and t.method == "create"
    )
    config = Config("openai")
    config.active = True
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    options = {"stream_options": {"include_usage": True}}
    recorded = {
        n: list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, max_tokens=n, **options
            )
        )
        for n in (20, 200)
    }

    def create(**kwargs: Any) -> Any:
        return Replay(recorded[kwargs["max_tokens"]]) if kwargs.get("stream") else response

    traced = wrap_sync(create, call, config)
    repetitions = 7

    def best_of(run: Any, calls: int) -> float:
        best = float("inf")
        for _ in range(repetitions):
            start = time.thread_time()
            for _ in range(calls):
                run()
            best = min(best, (time.thread_time() - start) / calls)
        return best

    def chat(fn: Any) -> Any:
        return lambda: fn(model="gpt-4o-mini", messages=MESSAGES)

    def streamed(fn: Any, n: int) -> Any:
        def run() -> None:
            for _chunk in fn(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, max_tokens=n, **options
            ):
                pass

        return run

    added_chat = best_of(chat(traced), 2000) - best_of(chat(create), 2000)
    stream = {
        n: best_of(streamed(traced, n), 200) - best_of(streamed(create, n), 200) for n in (20, 200)
    }
    chunks = len(recorded[200]) - len(recorded[20])
    from threadline.tracing._lifecycle import begin_span, end_span

    bare = best_of(lambda: end_span(begin_span("yardstick", "LLM", None)), 2000)
    return {
        "bare_span": bare,
        "chat": added_chat,
        "stream20": stream[20],
        "per_chunk": (stream[200] - stream[20]) / chunks,
        "traced_calls": repetitions * (2 * 2000 + 2 * 200),
    }


# --- the driver ------------------------------------------------------------------------------


def _ensure_openai_in_mlflow_venv() -> str | None:
    """None when MLflow can be measured, else the reason it cannot."""
    return ensure_packages(["openai"], "import openai, mlflow.openai", "mlflow.openai")


def _run_worker(python: str, name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        python,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--url",
        url,
        "--calls",
        str(args.calls),
        "--workloads",
        ",".join(WORKLOADS),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")} if name == "threadline" else None
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise RuntimeError(f"{name} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _added(result: dict[str, Any], clock: str, q: float | str) -> dict[str, float]:
    """Added seconds per call at quantile ``q`` (or the mean) for each workload, and the
    per-chunk slope."""
    row = {}
    for workload, by_clock in result["workloads"].items():
        on, off = by_clock[clock]["on"], by_clock[clock]["off"]
        if q == "mean":
            row[workload] = sum(on) / len(on) - sum(off) / len(off)
        else:
            row[workload] = _quantile(on, float(q)) - _quantile(off, float(q))
    chunks = WORKLOADS["stream200"][1] - WORKLOADS["stream20"][1]
    row["per_chunk"] = (row["stream200"] - row["stream20"]) / chunks
    return row


LABELS = {
    "chat": "chat, non-streaming",
    "stream20": "stream, 20 chunks (caller's stream_options)",
    "stream200": "stream, 200 chunks (caller's stream_options)",
    "stream20-default": "stream, 20 chunks (no stream_options)",
    "per_chunk": "per streamed chunk (slope 20→200)",
}


def _table(results: dict[str, dict[str, Any]], clock: str) -> list[str]:
    names = list(results)
    head = "| workload | untraced µs/call (median) |"
    rule = "|---|--:|"
    for name in names:
        for q in QUANTILES:
            head += f" {name} {q if isinstance(q, str) else f'p{round(q * 100)}'} |"
            rule += "--:|"
    if len(names) > 1:
        head += f" {names[1]} ÷ {names[0]} (median) |"
        rule += "--:|"
    lines = [head, rule]
    added = {(n, q): _added(results[n], clock, q) for n in names for q in QUANTILES}
    first = results[names[0]]["workloads"]
    for key, label in LABELS.items():
        base = _us(_quantile(first[key][clock]["off"], 0.5)) if key in first else "-"
        cells = [_us(added[(n, q)][key]) for n in names for q in QUANTILES]
        if len(names) > 1:
            mine, theirs = added[(names[0], 0.5)][key], added[(names[1], 0.5)][key]
            cells.append(f"{theirs / mine:.1f}x" if mine > 0 else "-")
        lines.append(f"| {label} | {base} | " + " | ".join(cells) + " |")
    return lines


def _report(results: dict[str, dict[str, Any]], skipped: dict[str, str], load: float) -> str:
    lines = [
        f"# autolog overhead — {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "",
        "Added µs per call: a quantile of the traced calls' times minus the same quantile of "
        "the untraced calls' (p25, median), each call timed on its own; and the difference "
        "of the means, which alone catches periodic work such as the export thread's batches "
        "(process CPU) but also every spike of the machine's other load.",
        f"Load average before the run: {load:.2f} on {os.cpu_count()} cores "
        "(other work on the machine inflates every figure).",
    ]
    titles = {
        "thread": "CPU time of the calling thread (what the traced program pays; the targets)",
        "wall": "Wall time (the same plus waiting for the server; noisy on a shared machine)",
        "process": "CPU time of the whole process (includes the export thread's work)",
    }
    for clock in CLOCKS:
        lines += ["", f"## {titles[clock]}", "", *_table(results, clock)]
    lines.append("")
    if "threadline" in results:
        t = _added(results["threadline"], "thread", 0.5)
        ok_call = t["chat"] <= TARGET_CALL_US * 1e-6
        ok_chunk = t["per_chunk"] <= TARGET_CHUNK_US * 1e-6
        lines.append(
            f"- threadline: {_us(t['chat'])} µs added per non-streaming call, calling "
            f"thread, median (target ≤ {TARGET_CALL_US:.0f}): {'PASS' if ok_call else 'MISS'}"
        )
        lines.append(
            f"- threadline: {t['per_chunk'] * 1e6:.2f} µs per streamed chunk (target ≤ "
            f"{TARGET_CHUNK_US:.0f}): {'PASS' if ok_chunk else 'MISS'}"
        )
    if "threadline" in results and "isolated" in results["threadline"]:
        iso = results["threadline"]["isolated"]
        lines += [
            "",
            "## threadline's own work, isolated (CPU of the calling thread, best of 7)",
            "",
            "The wrapper ``autolog()`` installs, around a stand-in for ``create`` that returns "
            "a response, or replays chunks, that the real client parsed from the fake server:",
            "",
            f"- per non-streaming call: {_us(iso['chat'])} µs "
            f"(target ≤ {TARGET_CALL_US:.0f}): {'PASS' if iso['chat'] <= TARGET_CALL_US * 1e-6 else 'MISS'}",
            f"- per streamed call of 20 chunks: {_us(iso['stream20'])} µs",
            f"- per streamed chunk: {iso['per_chunk'] * 1e6:.2f} µs "
            f"(target ≤ {TARGET_CHUNK_US:.0f}): "
            f"{'PASS' if iso['per_chunk'] <= TARGET_CHUNK_US * 1e-6 else 'MISS'}",
            f"- yardstick: a bare root span (``begin_span`` + ``end_span``, nothing recorded) "
            f"costs {_us(iso['bare_span'])} µs on this machine now",
            "",
        ]
    for name, r in results.items():
        lines.append(
            f"- {name}: {r['stored']} traces stored of {r['traced_calls']} traced calls; "
            + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        )
    for name, reason in skipped.items():
        lines.append(f"- {name} skipped: {reason}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    parser.add_argument(
        "--calls", type=int, default=None, help="timed calls per mode and workload (default 400)"
    )
    parser.add_argument("--only", default="threadline,mlflow", help="contenders to run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.calls = args.calls or (100 if args.quick else 400)
    if args.worker:
        worker(args)
        return
    load = os.getloadavg()[0]
    server, url = start_server()
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    try:
        for name in args.only.split(","):
            python = sys.executable
            if name == "mlflow":
                reason = _ensure_openai_in_mlflow_venv()
                if reason is not None:
                    skipped[name] = reason
                    print(f"mlflow skipped: {reason}", file=sys.stderr)
                    continue
                python = str(MLFLOW_PYTHON)
            print(f"running {name}…", file=sys.stderr, flush=True)
            results[name] = _run_worker(python, name, url, args)
    finally:
        stop_server(server)
    print(_report(results, skipped, load))


if __name__ == "__main__":
    main()
