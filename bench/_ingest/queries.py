"""The query figures of ``bench/ingest.py``: fill a store, serve it, time the UI's calls.

The store at ``uri`` (empty, SQLite or PostgreSQL) is filled by ``_ingest.fill`` in a
child process, then served by ``threadline server --workers N``; each call is made once
untimed, then 5 times, and its result size is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _ingest.jsonhttp import HttpError, JsonClient
from _ingest.load import median_ms
from _ingest.servers import start_threadline

BENCH_DIR = Path(__file__).resolve().parent.parent
FILL_TIMEOUT_S = 3600


def query_figures(
    python: Path, uri: str, n_traces: int, log: Path, workers: int = 1
) -> dict[str, Any]:
    """Fill the store at ``uri`` with ``n_traces`` traces; the medians in ms, by figure key.

    Raises ``ServerFailed`` when the server does not start; a failed fill or call is
    reported in the result (``error``, ``warnings``).
    """
    fill_env = {k: v for k, v in os.environ.items() if k.startswith("PG")}  # libpq settings
    proc = subprocess.run(
        [str(python), "-m", "_ingest.fill", "--uri", uri, "--traces", str(n_traces)],
        cwd=BENCH_DIR,
        env={**fill_env, "PYTHONPATH": str(BENCH_DIR), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=FILL_TIMEOUT_S,
    )
    if proc.returncode != 0:
        return {"error": "fill failed: " + " | ".join(proc.stderr.strip().splitlines()[-3:])}
    fill = json.loads(proc.stdout.strip().splitlines()[-1])
    server = start_threadline(python, uri, log, workers=workers)
    client = JsonClient(server.url)
    figures: dict[str, Any] = {
        "fill_s": fill["seconds"],
        "assessments": fill["assessments"],
        "sessions": n_traces // 10 + 1,
    }
    try:

        def search(filter_string: str, spans: bool) -> Callable[[], Any]:
            body = {
                "experiment_ids": ["0"],
                "filter_string": filter_string,
                "max_results": 100,
                "include_spans": spans,
            }
            return lambda: client.call("POST", "/api/v1/traces/search", body)

        def overview(filter_string: str | None = None) -> Callable[[], Any]:
            hour = 3_600_000
            start = fill["base_ms"] - fill["base_ms"] % hour - 12 * hour
            query = {"bucket": "hour", "start_time_ms": start, "end_time_ms": start + 24 * hour}
            if filter_string:
                query["filter_string"] = filter_string
            path = "/api/v1/experiments/0/overview?" + urllib.parse.urlencode(query)
            return lambda: client.call("GET", path)

        # The first overview recomputes every hour the fill left stale: timed apart.
        started = time.perf_counter()
        try:
            overview()()
            figures["overview_cold_ms"] = (time.perf_counter() - started) * 1000
        except (HttpError, OSError, ValueError, KeyError) as exc:
            figures.setdefault("warnings", []).append(f"overview_cold_ms: {str(exc)[:200]}")
        all_traces = n_traces + 1  # and the 5,000-span one
        calls = {
            "list_ms": search("tags.env = 'prod'", False),
            "feedback_list_ms": search("", False),
            "feedback_filter_ms": search("feedback.quality > 0.5", False),
            "sessions_ms": lambda: client.call(
                "GET", "/api/v1/sessions?experiment_id=0&max_results=100"
            ),
            "overview_ms": overview(),
            "overview_filter_ms": overview("feedback.quality > 0.5"),
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
            "feedback_list_ms": lambda r: (
                len(r["traces"]) == 100
                and sum(len(t["info"]["assessments"]) for t in r["traces"]) >= 99
            ),
            "feedback_filter_ms": lambda r: (
                len(r["traces"]) == 100
                and all(t["info"]["assessments"][0]["value"] > 0.5 for t in r["traces"])
            ),
            "sessions_ms": lambda r: (
                len(r["sessions"]) == 100 and all(s["turns"] >= 1 for s in r["sessions"])
            ),
            "overview_ms": lambda r: r["overview"]["totals"]["trace_count"] == all_traces,
            "overview_filter_ms": lambda r: 0 < r["overview"]["totals"]["trace_count"] < all_traces,
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
