"""Load client: the threadline SDK sending to a server (``THREADLINE_TRACKING_URI=http://…``).

``python -m _ingest.client_threadline_sdk --seconds S --max-traces N`` traces ten
``@threadline.trace`` functions per trace with async logging for ``S`` seconds, flushes
and prints one JSON line. Latency per request is not visible from here (the SDK's export
thread does the POSTs), so only counts and times are reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def main() -> int:
    """Trace for the given time, flush, print the JSON line."""
    import threadline

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--max-traces", type=int, default=1_000_000)
    args = parser.parse_args()
    threadline.config.enable_async_logging()

    @threadline.trace
    def step(x: dict[str, Any]) -> dict[str, Any]:
        return {"answer": x["q"], "ok": True}

    @threadline.trace
    def agent(n: int) -> dict[str, Any]:
        total = sum(step({"q": i, "tag": "a"})["answer"] for i in range(9))
        return {"total": total, "ok": True, "n": n}

    start = time.perf_counter()
    deadline = start + args.seconds
    traces = 0
    while traces < args.max_traces and time.perf_counter() < deadline:
        agent(traces)
        traces += 1
    produced_s = time.perf_counter() - start
    threadline.flush_trace_async_logging()
    elapsed = time.perf_counter() - start
    result = {
        "requests": 0,
        "spans_sent": traces * 10,
        "spans_accepted": None,
        "errors": 0,
        "elapsed_s": elapsed,
        "produce_s": produced_s,
        "latencies_ms": [],
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
