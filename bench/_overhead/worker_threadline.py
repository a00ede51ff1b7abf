"""Worker for threadline: ``@threadline.trace`` into the embedded SQLite store.

``--mode sync`` is the store's default; ``--mode async`` turns on async logging before
the loop and flushes with ``threadline.flush_trace_async_logging()`` inside the CPU
measurement (the flush is also called in sync mode, where it should cost nothing).
``async-processor`` adds one span processor that redacts a field of every span's outputs;
``async-destination`` calls ``threadline.tracing.set_destination(..., context_local=True)``
before every trace, as a request handler would.
"""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path
from typing import Any

import threadline
from _overhead.harness import Contender, Root, build_workload, main
from threadline.entities.trace_location import ExperimentLocation


def _redact(span: Any) -> None:
    """A typical masking processor: hide one field of dict outputs."""
    outputs = span.outputs
    if isinstance(outputs, dict) and "answer" in outputs:
        span.set_outputs({**outputs, "answer": "***"})


def _with_destination(root: Root) -> Root:
    """Route every trace with a context-local destination, as a request handler would."""
    location = ExperimentLocation("0")
    set_destination = threadline.tracing.set_destination

    def handler(i: int) -> dict[str, Any]:
        set_destination(location, context_local=True)
        return root(i)

    return handler


def _count_stored() -> tuple[int, int]:
    """Stored traces and their spans, loading a trace whose search result has no spans."""
    traces = threadline.search_traces(return_type="list", max_results=1_000_000)
    spans = 0
    for trace in traces:
        found = len(trace.data.spans)
        if not found:
            full = threadline.get_trace(trace.info.trace_id)
            found = len(full.data.spans) if full is not None else 0
        spans += found
    return len(traces), spans


def build(args: argparse.Namespace) -> Contender:
    """threadline tracing into ``<workdir>/bench.db`` in the requested mode."""
    threadline.set_tracking_uri(f"sqlite:///{Path(args.workdir) / 'bench.db'}")
    if args.mode.startswith("async"):
        threadline.config.enable_async_logging()
    if args.mode == "async-processor":
        threadline.tracing.configure(span_processors=[_redact])
    traced = build_workload(threadline.trace)
    if args.mode == "async-destination":
        traced = _with_destination(traced)
    return Contender(
        traced=traced,
        flush=threadline.flush_trace_async_logging,
        disable=threadline.tracing.disable,
        count_stored=_count_stored,
        versions={"threadline": version("threadline")},
    )


if __name__ == "__main__":
    main(build)
