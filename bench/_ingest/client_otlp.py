"""Load client: POST pre-encoded OTLP protobuf batches for a time, timing each request.

``python -m _ingest.client_otlp --url URL --seconds S --max-requests N --id K [--header k=v]``
prints one JSON line: requests, spans accepted (2xx), errors (anything else; after a 503
the client waits 0.2 s), elapsed seconds and the latency in ms of every accepted request.
Standard library plus ``opentelemetry-proto`` (to encode once).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from urllib.parse import urlsplit

from _ingest.payload import SPANS_PER_TRACE, encode_batch, rekey


def main() -> int:
    """Send batches until the time or the request count is used up; print the JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--traces-per-request", type=int, default=100)
    parser.add_argument("--id", type=int, default=0)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    template = encode_batch(args.traces_per_request)
    spans_per_request = args.traces_per_request * SPANS_PER_TRACE
    url = urlsplit(args.url)
    headers = {"Content-Type": "application/x-protobuf"}
    headers.update(h.split("=", 1) for h in args.header)  # type: ignore[misc]
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    latencies: list[float] = []
    accepted = errors = 0
    statuses: dict[str, int] = {}
    start = time.perf_counter()
    deadline = start + args.seconds
    n = 0
    while n < args.max_requests and time.perf_counter() < deadline:
        body = rekey(template, args.id + 1, n)
        n += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", url.path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException) as exc:
            status = type(exc).__name__
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if isinstance(status, int) and 200 <= status < 300:
            latencies.append((time.perf_counter() - t0) * 1000)  # accepted requests only
            accepted += spans_per_request
        else:
            errors += 1
            if status == 503:
                time.sleep(0.2)
    elapsed = time.perf_counter() - start
    conn.close()
    result = {
        "requests": n,
        "spans_sent": n * spans_per_request,
        "spans_accepted": accepted,
        "errors": errors,
        "statuses": statuses,
        "elapsed_s": elapsed,
        "latencies_ms": latencies,
        "bytes_per_request": len(template),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
