"""``BridgeTracerProvider``: an OpenTelemetry SDK ``TracerProvider`` whose spans are
threadline spans.

Its tracers start each span under the innermost of the current OpenTelemetry and
threadline spans (``_tree.bridge_context``), with threadline's ids (``_ids``) and
threadline's sampling (``ThreadlineSampler``: tracing on/off, the sampling ratio at the
root, children follow their parent). ``start_as_current_span`` also makes the span
threadline's current span, so ``@trace`` code inside it nests under it (and, for a model
call, keeps threadline's own LLM integrations from recording the same call again). The provider is
a real SDK provider: span processors and exporters added to it get every span as usual.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from threadline.integrations._llm_call import Config, _calling
from threadline.otel._ids import ThreadlineIdGenerator
from threadline.otel._processor import ThreadlineSpanProcessor
from threadline.otel._tree import OPEN, bridge_context, key_of
from threadline.tracing._context import current_span
from threadline.tracing._runtime import RT
from threadline.tracing._span import LiveSpan, random


class ThreadlineSampler(Sampler):
    """Record a span when threadline would: tracing enabled, a root sampled with
    ``THREADLINE_TRACE_SAMPLING_RATIO``, a child when its parent is."""

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        RT.ensure_initialized()
        parent = trace_api.get_current_span(parent_context).get_span_context()
        if not RT.enabled:
            decision = Decision.DROP
        elif parent.is_valid:
            sampled = parent.trace_flags.sampled
            decision = Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP
        else:
            ratio = RT.sampling_ratio
            sampled = ratio >= 1.0 or random() < ratio
            decision = Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP
        return SamplingResult(decision, attributes, parent.trace_state if parent.is_valid else None)

    def get_description(self) -> str:
        return "ThreadlineSampler"


class BridgeTracer(trace_api.Tracer):
    """An SDK tracer that starts spans in threadline's tree."""

    def __init__(self, tracer: trace_api.Tracer, provider: BridgeTracerProvider) -> None:
        self._tracer = tracer
        self._provider = provider

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        if not self._provider.active:
            return trace_api.INVALID_SPAN
        return self._tracer.start_span(
            name,
            bridge_context(context),
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )

    @contextmanager  # a plain context manager: OpenTelemetry's agnostic one is private
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            bridged = OPEN.get(key_of(span))
            if bridged is None or not bridged.kept or bridged.live is None:
                yield current
                return
            token = current_span.set(bridged.live)
            hiding = _hide_inner_calls(bridged.live)
            try:
                yield current
            finally:
                try:
                    if hiding is not None:
                        _calling.reset(hiding)
                except ValueError:  # left in another context than entered
                    _calling.set(None)
                try:
                    current_span.reset(token)
                except ValueError:
                    current_span.set(bridged.outer)


# While a bridged model call is current, threadline's own LLM integrations do not record the
# client call it makes (a framework's ``chat`` span around the openai SDK): the bridged span
# holds the request, the reply and the tokens, which would otherwise count twice.
_BRIDGED_CALL = Config("otel", hides_inner_calls=True)
_MODEL_CALLS = frozenset({"LLM", "CHAT_MODEL", "EMBEDDING"})


def _hide_inner_calls(live: object) -> Token[Config | None] | None:
    if isinstance(live, LiveSpan) and live._span_type in _MODEL_CALLS:
        return _calling.set(_BRIDGED_CALL)
    return None


class BridgeTracerProvider(TracerProvider):
    """A ``TracerProvider`` (OpenTelemetry SDK) that records its spans in threadline."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("sampler", ThreadlineSampler())
        kwargs.setdefault("id_generator", ThreadlineIdGenerator())
        super().__init__(**kwargs)
        self.active = True
        self.processor = ThreadlineSpanProcessor(own=True)
        self.add_span_processor(self.processor)
        self._bridge_tracers: dict[int, BridgeTracer] = {}
        self._bridge_lock = threading.Lock()

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace_api.Tracer:
        tracer = super().get_tracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )
        if isinstance(tracer, trace_api.NoOpTracer):  # OTEL_SDK_DISABLED
            return tracer
        with self._bridge_lock:
            bridge = self._bridge_tracers.get(id(tracer))
            if bridge is None:
                bridge = self._bridge_tracers[id(tracer)] = BridgeTracer(tracer, self)
        return bridge
