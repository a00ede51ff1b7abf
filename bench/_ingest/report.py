"""The Markdown report of ``bench/ingest.py``: load table, query table, targets.

The targets are stated for SQLite: rows and query figures on another store (PostgreSQL)
are printed beside them as a reference, without PASS/MISS.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from _overhead.report import busy_cores, cpu_model

from _ingest.load import LoadResult

__all__ = ["busy_cores", "render"]

TARGET_SPANS_PER_S = 20_000
TARGET_RSS_MB = 300
TARGET_SIZE = 100_000
QUERY_TARGETS = {  # key: (label, limit in ms)
    "page_spans_ms": ("first page of 100 traces with their spans", 50.0),
    "list_ms": ("list call behind the UI (100 traces, no spans, tag filter)", 10.0),
    "trace10_ms": ("a 10-span trace fetched", 10.0),
    "trace5000_ms": ("a 5,000-span trace fetched", 150.0),
    "span_attr_ms": ("filter on a span attribute (first page of 100)", 100.0),
    "feedback_list_ms": ("list call with each trace's feedback (100 traces, no filter)", 20.0),
    "feedback_filter_ms": ("list call filtered on feedback.quality > 0.5 (100 traces)", 20.0),
    "sessions_ms": ("session list (first page of 100 sessions)", 50.0),
    "overview_ms": ("overview endpoint (24 hour buckets over every trace)", 100.0),
}
VERSIONS = {
    "threadline": (Path(".venv/bin/python"), "threadline"),
    "opentelemetry-sdk": (Path(".venv/bin/python"), "opentelemetry-sdk"),
    "mlflow": (Path("bench/.venvs/mlflow/bin/python"), "mlflow"),
    "arize-phoenix": (Path("bench/.venvs/phoenix/bin/python"), "arize-phoenix"),
}
REPO = Path(__file__).resolve().parent.parent.parent


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}" if abs(value) < 100 else f"{value:,.0f}"


def _version(python: Path, dist: str) -> str:
    exe = REPO / python
    if not exe.exists():
        return "not installed"
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    proc = subprocess.run([str(exe), "-c", code], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or "not installed"


def _stored(r: LoadResult) -> str:
    if r.stored_spans is None:
        return "—"
    expected = r.spans_accepted if r.spans_accepted is not None else r.spans_sent
    verdict = "ok" if r.stored_spans >= expected else "**MISSING**"
    return f"{r.stored_spans:,}/{expected:,} {verdict}"


def _load_table(loads: list[LoadResult]) -> list[str]:
    lines = [
        "| contender | spans/s accepted | spans/s queryable | stored/accepted spans "
        "| drain s | requests | p50 ms | p99 ms | errors | RSS peak MB | RSS end MB |",
        "|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in loads:
        if r.stored_spans is None and r.problems:
            skipped = r.problems[0] if r.problems[0].startswith("skipped") else None
            lines.append(f"| {r.label} | {skipped or 'not measured (see below)'} ||||||||||")
            continue
        lines.append(
            f"| {r.label} | {_num(r.accepted_per_s, 0)} | {_num(r.queryable_per_s, 0)} "
            f"| {_stored(r)} | {_num(r.drain_s)} | {r.requests:,} | {_num(r.p50_ms)} "
            f"| {_num(r.p99_ms)} | {r.errors:,} | {_num(r.rss_peak_mb, 0)} "
            f"| {_num(r.rss_end_mb, 0)} |"
        )
    return lines


def _served_by(q: dict[str, Any]) -> str:
    workers = q.get("workers", 1)
    return f"{q.get('backend', 'SQLite')}, {workers} worker{'s' if workers > 1 else ''}"


def _query_table(queries: list[dict[str, Any]], mlflow: dict[str, Any]) -> list[str]:
    lines = [
        "| store, server processes | stored traces | fill s | list (no spans) ms "
        "| page with spans ms | 10-span trace ms | 5,000-span trace ms "
        "| span-attribute filter ms | server RSS MB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for q in queries:
        if "error" in q:
            error = (
                q["error"] if q["error"].startswith("skipped") else f"not measured: {q['error']}"
            )
            lines.append(f"| {_served_by(q)} | {q['traces']:,} | {error} |||||||")
            continue
        lines.append(
            f"| {_served_by(q)} | {q['traces']:,} | {_num(q.get('fill_s'))} "
            f"| {_num(q.get('list_ms'), 2)} "
            f"| {_num(q.get('page_spans_ms'), 2)} | {_num(q.get('trace10_ms'), 2)} "
            f"| {_num(q.get('trace5000_ms'), 2)} | {_num(q.get('span_attr_ms'), 2)} "
            f"| {_num(q.get('rss_mb'), 0)} |"
        )
    lines += ["", *_feedback_table(queries)]
    if mlflow.get("search_ms") is not None:
        lines += [
            "",
            f"MLflow `search_traces` (`POST /api/3.0/mlflow/traces/search`, experiment 0, first "
            f"page of 100, no filter; spans are not part of MLflow's search response) at the "
            f"size its load run left, {mlflow.get('stored_traces') or 0:,} traces: "
            f"{mlflow['search_ms']:,.1f} ms (median of 5; {mlflow['returned']} returned).",
        ]
    elif mlflow.get("error"):
        lines += ["", f"MLflow search_traces not measured: {mlflow['error']}"]
    return lines


def _feedback_table(queries: list[dict[str, Any]]) -> list[str]:
    """Feedback, sessions and overview figures (issue 15): one feedback per trace, ten
    traces per session."""
    lines = [
        "| store, server processes | stored traces | assessments | sessions "
        "| list with feedback ms | feedback filter ms | session list ms | overview ms "
        "| overview, first call ms | overview with a feedback filter ms |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for q in queries:
        if "error" in q:
            continue
        lines.append(
            f"| {_served_by(q)} | {q['traces']:,} | {q.get('assessments', 0):,} "
            f"| {q.get('sessions', 0):,} | {_num(q.get('feedback_list_ms'), 2)} "
            f"| {_num(q.get('feedback_filter_ms'), 2)} | {_num(q.get('sessions_ms'), 2)} "
            f"| {_num(q.get('overview_ms'), 2)} | {_num(q.get('overview_cold_ms'), 0)} "
            f"| {_num(q.get('overview_filter_ms'), 1)} |"
        )
    return lines if len(lines) > 2 else []


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "**MISS**"


def _ingest_targets(loads: list[LoadResult]) -> list[str]:
    lines = []
    for r in loads:
        if not r.label.startswith("threadline") or r.queryable_per_s is None:
            continue
        rate = min(r.accepted_per_s or r.queryable_per_s, r.queryable_per_s)
        rss = r.rss_peak_mb or 0.0
        complete = r.stored_spans is not None and r.stored_spans >= (
            r.spans_accepted if r.spans_accepted is not None else r.spans_sent
        )
        ok = rate >= TARGET_SPANS_PER_S and rss <= TARGET_RSS_MB and complete
        verdict = _verdict(ok) if r.backend == "SQLite" else "reference (targets are for SQLite)"
        lines.append(
            f"- {r.label}: ≥ {TARGET_SPANS_PER_S:,} spans/s ingested and queryable with RSS ≤ "
            f"{TARGET_RSS_MB} MB: {rate:,.0f} spans/s, peak {rss:,.0f} MB, "
            f"{'all' if complete else 'not all'} accepted spans stored → {verdict}"
        )
    return lines


def _ack_comparison(loads: list[LoadResult]) -> list[str]:
    """Each configuration's ack-after-commit row against its ack-when-queued row: the cost
    of durability, with the target (committed ≥ 90% of queued, queryable spans/s)."""
    queued = {r.config: r for r in loads if r.ack == "queued"}
    lines = [
        "| configuration | queryable/s after commit | queryable/s when queued (lossy) "
        "| ratio | p99 ms after commit | p99 ms when queued | ≥ 90% |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for r in loads:
        other = queued.get(r.config)
        if r.ack != "committed" or other is None:
            continue
        if not r.queryable_per_s or not other.queryable_per_s:
            lines.append(f"| {r.config} | not measured (see below) ||||||")
            continue
        ratio = r.queryable_per_s / other.queryable_per_s
        lines.append(
            f"| {r.config} | {_num(r.queryable_per_s, 0)} | {_num(other.queryable_per_s, 0)} "
            f"| {ratio:.2f} | {_num(r.p99_ms)} | {_num(other.p99_ms)} | {_verdict(ratio >= 0.9)} |"
        )
    return lines if len(lines) > 2 else []


def _query_targets(queries: list[dict[str, Any]]) -> list[str]:
    """PASS/MISS for the SQLite figures at 100k (else the largest size measured), with the
    other stores' figures at the same size beside them as a reference."""
    measured = [q for q in queries if "error" not in q]
    sqlite = [q for q in measured if q.get("backend", "SQLite") == "SQLite"]
    at_target = [q for q in sqlite if q["traces"] == TARGET_SIZE]
    lines = []
    for q in at_target or sqlite[-1:]:
        note = "" if q["traces"] == TARGET_SIZE else f" (at {q['traces']:,}, not 100k)"
        others = [o for o in measured if o["traces"] == q["traces"] and o is not q]
        others = [o for o in others if o.get("backend", "SQLite") != "SQLite"]
        for key, (label, limit) in QUERY_TARGETS.items():
            value = q.get(key)
            shown = "not measured" if value is None else f"{value:,.1f} ms"
            ok = value is not None and value <= limit
            beside = "".join(f"; {_served_by(o)}: {_ms(o.get(key))} (reference)" for o in others)
            lines.append(f"- {label} ≤ {limit:g} ms{note}: {shown} → {_verdict(ok)}{beside}")
    return lines


def _ms(value: float | None) -> str:
    return "not measured" if value is None else f"{value:,.1f} ms"


def render(
    loads: list[LoadResult],
    queries: list[dict[str, Any]],
    mlflow: dict[str, Any],
    *,
    started: str,
    command: str,
    busy_before: str,
    args: argparse.Namespace,
) -> str:
    """The whole report as Markdown."""
    versions = ", ".join(f"{name} {_version(*where)}" for name, where in VERSIONS.items())
    parts = [
        f"# threadline server ingest benchmark — {started}",
        "",
        f"`{command}`",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}. {versions}.",
        f"Cores kept busy by other processes in the second before the run: {busy_before}.",
        "",
        f"## Ingest: {args.clients} client processes x {args.seconds:g} s per row",
        "",
        "Each row has a fresh store: SQLite and one server process unless the row names "
        "another store or more worker processes. Traces of 10 spans. Accepted: spans in "
        "requests answered 2xx, per second of load. Queryable: spans counted in the store "
        "(SQLite file, PostgreSQL database) once it stopped growing, per second from the "
        "start of the load to that moment. Latency: each HTTP request, at the client. RSS: "
        "VmRSS of the server's process tree (with workers: supervisor and workers).",
        "",
        *_load_table(loads),
        "",
        "## Ack after commit vs ack when queued (the cost of durability)",
        "",
        "The default answers a request once its rows are committed; `x-threadline-ack: "
        "queued` answers once they are queued and loses them if the server dies first.",
        "",
        *(_ack_comparison(loads) or ["- not measured"]),
        "",
        "## Queries (threadline server; median of 5 after one untimed call, over HTTP with "
        "keep-alive)",
        "",
        *_query_table(queries, mlflow),
        "",
        "## threadline targets (stated for SQLite; PostgreSQL figures are a reference)",
        "",
        *(_ingest_targets(loads) + _query_targets(queries) or ["- nothing measured"]),
    ]
    problems = [
        f"- {r.label}: {p}"
        for r in loads
        for p in r.problems
        if not (p.startswith("skipped") and r.stored_spans is None)  # shown in the table
    ]
    problems += [
        f"- queries at {q['traces']:,} ({_served_by(q)}): {w}"
        for q in queries
        for w in q.get("warnings", [])
    ]
    if problems:
        parts += ["", "## Missing or incomplete", "", *problems]
    statuses = [
        f"- {r.label}: HTTP statuses {r.statuses}"
        for r in loads
        if r.statuses and set(r.statuses) != {"200"}
    ]
    statuses += [f"- {r.label}: {note}" for r in loads for note in r.notes]
    if statuses:
        parts += ["", "## Notes", "", *statuses]
    return "\n".join(parts) + "\n"
