"""The OpenTelemetry bridge (``pip install 'threadline[otel]'``): spans of any
OpenTelemetry instrumentation become threadline spans, in one tree with threadline's own.

- ``get_tracer_provider()``: a ``TracerProvider`` to hand to an instrumentation
  (``OpenAIInstrumentor().instrument(tracer_provider=...)``, a framework's built-in
  OpenTelemetry); its spans go through threadline's export pipeline.
- ``autolog(disable=False)``: the same for instrumentations that use the global provider.

An OpenTelemetry span started inside a threadline span is its child, and a threadline span
(``@trace``, ``start_span``, autolog) started inside a bridged OpenTelemetry span is that
span's child, also across ``contextvars.copy_context()`` threads and asyncio tasks. The
OpenInference, GenAI and OpenLLMetry conventions give span types, inputs, outputs,
messages, model and tokens (``threadline.semconv``). Spans of HTTP, database and other
non-LLM instrumentations are dropped (``THREADLINE_OTEL_DENY_SCOPES`` /
``THREADLINE_OTEL_ALLOW_SCOPES``), and so are spans of an instrumentation of a library
that threadline's own autolog records at the time.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from threadline.errors import InvalidArgumentError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["autolog", "get_tracer_provider"]

_INSTALL = "pip install 'threadline[otel]'"
_lock = threading.Lock()
_shared: TracerProvider | None = None  # not ``_provider``: that is a submodule's name


def _require_sdk() -> None:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        raise InvalidArgumentError(
            f"threadline.otel needs the OpenTelemetry SDK ({exc}). Install it with: {_INSTALL}"
        ) from exc


def get_tracer_provider() -> TracerProvider:
    """threadline's ``TracerProvider`` (one per process): pass it to instrumentations."""
    global _shared
    _require_sdk()
    with _lock:
        if _shared is None:
            from threadline.otel._provider import BridgeTracerProvider

            _shared = BridgeTracerProvider()
        return _shared


def autolog(disable: bool = False) -> None:
    """Record the spans of instrumentations using OpenTelemetry's global provider.

    Sets threadline's provider as the global one when none is set, else adds threadline's
    span processor to the one set (never replacing it). ``disable=True`` undoes it.
    """
    if not isinstance(disable, bool):
        raise InvalidArgumentError(
            f"threadline.otel.autolog(disable=...) must be True or False, got {disable!r}."
        )
    _require_sdk()
    from threadline.otel import _autolog

    if disable:
        _autolog.disable()
    else:
        _autolog.enable()
