"""Span and trace ids for the bridge's tracer provider, from threadline's own generator.

OpenTelemetry's default ``RandomIdGenerator`` draws from the ``random`` module, so a
program calling ``random.seed()`` makes it repeat ids; threadline's generator
(``tracing/_span.py``) is a private ``Random`` seeded from ``os.urandom`` and reseeded
after ``fork``, which user code never touches.
"""

from __future__ import annotations

from opentelemetry.sdk.trace.id_generator import IdGenerator

from threadline.tracing._span import getrandbits


class ThreadlineIdGenerator(IdGenerator):
    """Ids from threadline's generator: what the bridged spans are stored under."""

    def generate_span_id(self) -> int:
        return getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True
