"""A minimal OTLP/HTTP traces receiver that counts what it is sent (runs in the OTel venv).

``python -m _overhead.otlp_sink`` listens on 127.0.0.1 (a free port), prints
``PORT <n>`` on stdout, answers 200 to ``POST /v1/traces`` after decoding the protobuf
body, and reports ``{"traces": .., "spans": .., "requests": ..}`` on ``GET /stats``.
It runs as its own process so its CPU is not charged to the exporter being measured.
"""

from __future__ import annotations

import gzip
import json
import sys
import zlib
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_trace_ids: set[bytes] = set()
_counts = {"spans": 0, "requests": 0}
_EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class _Handler(BaseHTTPRequestHandler):
    """Counts spans and distinct trace ids of every export request."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = _decompress(self.rfile.read(length), self.headers.get("Content-Encoding", ""))
        if self.path != "/v1/traces":
            self._reply(404, b"", "text/plain")
            return
        request = ExportTraceServiceRequest.FromString(body)
        _counts["requests"] += 1
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    _counts["spans"] += 1
                    _trace_ids.add(span.trace_id)
        self._reply(200, _EMPTY_RESPONSE, "application/x-protobuf")

    def do_GET(self) -> None:
        if self.path != "/stats":
            self._reply(404, b"", "text/plain")
            return
        stats = {"traces": len(_trace_ids), **_counts}
        self._reply(200, json.dumps(stats).encode(), "application/json")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request log line."""


def main() -> None:
    """Serve until terminated."""
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
