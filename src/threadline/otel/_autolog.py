"""``threadline.otel.autolog()``: bridge the instrumentations that use the global provider.

With no global provider set, threadline's provider becomes the global one; with an SDK
provider of the user's set, threadline's span processor is added to it (the user's
processors and exporters keep receiving every span). ``disable=True`` undoes exactly what
was done: the processor added to the user's provider stops recording (the SDK cannot
remove a processor, so it stays as a no-op, and is reused if autolog is turned on again);
a global provider that threadline set is unset again, so the program can set its own.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from opentelemetry import trace as trace_api

from threadline.otel._processor import ThreadlineSpanProcessor
from threadline.otel._provider import BridgeTracerProvider

_lock = threading.Lock()
_global: BridgeTracerProvider | None = None  # the provider autolog made global, while it is
_added: weakref.WeakKeyDictionary[Any, ThreadlineSpanProcessor] = weakref.WeakKeyDictionary()
_active_on: Any = None  # the user's provider our processor records for, while it does


def enable() -> None:
    global _global, _active_on
    with _lock:
        if _global is not None or _active_on is not None:
            return
        current = trace_api.get_tracer_provider()
        if isinstance(current, BridgeTracerProvider):
            return  # the program made a threadline provider global itself
        if isinstance(current, trace_api.ProxyTracerProvider):
            provider = BridgeTracerProvider()
            trace_api.set_tracer_provider(provider)
            if trace_api.get_tracer_provider() is provider:
                _global = provider
            return
        if not hasattr(current, "add_span_processor"):
            logging.getLogger("threadline").warning(
                "threadline.otel.autolog(): the global OpenTelemetry provider %s is not an "
                "SDK TracerProvider, so threadline cannot add its span processor to it; pass "
                "threadline.otel.get_tracer_provider() to your instrumentations instead.",
                type(current).__name__,
            )
            return
        processor = _added.get(current)
        if processor is None:
            processor = _added[current] = ThreadlineSpanProcessor(own=False)
            current.add_span_processor(processor)
        processor.active = True
        _active_on = current


def disable() -> None:
    global _global, _active_on
    with _lock:
        if _active_on is not None:
            processor = _added.get(_active_on)
            if processor is not None:
                processor.active = False
            _active_on = None
        if _global is not None:
            _global.active = False
            _global.processor.active = False
            _unset_global(_global)
            _global = None


def _unset_global(provider: BridgeTracerProvider) -> None:
    """Give the global provider back to "not set" (OpenTelemetry sets it only once and has
    no public way back; without this the program could not set its own provider later).
    Tracers handed out meanwhile stay bound to ``provider``, now inactive: they make
    non-recording spans, as the unset global's tracers did before."""
    if getattr(trace_api, "_TRACER_PROVIDER", None) is not provider:
        return
    once = getattr(trace_api, "_TRACER_PROVIDER_SET_ONCE", None)
    if once is None or not hasattr(once, "_done"):
        return
    with once._lock:
        trace_api._TRACER_PROVIDER = None
        once._done = False


def is_enabled() -> bool:
    return _global is not None or _active_on is not None
