"""The one wrapper every integration puts around an LLM call, sync or async.

Provider specifics are small functions on an ``LLMCall``: ``bind`` (optional) turns
positional arguments into keywords, ``start`` records the request (inputs, model, tools,
normalised messages) and may adjust the arguments sent, ``record`` reads the response
dict (made by ``dump``, by default pydantic's ``model_dump()``; usage, finish reason,
the reply), ``is_stream`` and ``accumulator`` handle streamed
responses, which are returned wrapped in a proxy whose span ends when the stream is
exhausted, closed or garbage-collected.

The span is a child of the current span (or a new trace) and is the current span while
the request runs. API errors end it with status ERROR and are re-raised unchanged; a
failure of tracing itself never reaches the caller (``_safety``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol

from threadline.integrations._chat_format import CHAT_MESSAGES
from threadline.tracing import _safety
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import MISSING, begin_span, end_span
from threadline.tracing._noop import NoOpSpan
from threadline.tracing._runtime import RT
from threadline.tracing._span import LiveSpan

Span = LiveSpan | NoOpSpan

# The integration whose wrapped call is running: a library method that calls another
# patched method of the same library (``beta.chat.completions.parse`` calling ``create``
# in older openai) is recorded once, by the outer call, so tokens are not counted twice.
_calling: ContextVar[Config | None] = ContextVar("threadline_llm_call", default=None)


class Config:
    """The switches of one integration, read by its wrappers on every call.

    ``hides_inner_calls``: while a call of this integration runs, calls that the library
    makes through another traced library (litellm calling the openai SDK) are not recorded
    apart: the outer span already holds the request, the reply and the tokens.
    """

    __slots__ = ("active", "hides_inner_calls", "name", "silent")

    def __init__(self, name: str, hides_inner_calls: bool = False) -> None:
        self.name = name
        self.active = False
        self.silent = False
        self.hides_inner_calls = hides_inner_calls


def report(config: Config, kind: str, exc: BaseException) -> None:
    """An internal failure while tracing a call: logged (unless silent), never raised."""
    if config.silent and not _safety.should_raise():
        return
    _safety.internal_error(f"{config.name}-{kind}", exc)


class Request:
    """One call as the provider functions see it; ``kwargs`` is what is sent."""

    __slots__ = ("hide_usage", "kwargs", "messages", "model")

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.messages: list[dict[str, Any]] | None = None  # normalised input messages
        self.model: Any = None
        self.hide_usage = False  # we asked for a usage-only chunk the caller must not see


class Accumulator(Protocol):
    """Builds a streamed call's output from its items."""

    def add(self, item: Any) -> bool:
        """Take one item; False hides it from the caller (a chunk only tracing asked for)."""
        ...

    def finish(self, span: LiveSpan) -> Any:
        """Set the response attributes on ``span``; return the assembled output."""
        ...


# ``bind(args, kwargs) -> (args, kwargs)``: the same call with its positional arguments
# given as keywords, so that ``start`` sees them all.
Binder = Callable[[tuple[Any, ...], dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]


class LLMCall:
    """How one patched method is recorded: the provider's functions for the shared wrapper."""

    __slots__ = (
        "accumulator",
        "bind",
        "dump",
        "is_stream",
        "name",
        "proxy",
        "record",
        "span_type",
        "start",
    )

    def __init__(
        self,
        name: str,
        span_type: str,
        start: Callable[[Request, LiveSpan], None],
        record: Callable[[LiveSpan, Request, dict[str, Any]], None],
        is_stream: Callable[[Any], bool] | None = None,
        accumulator: Callable[[Request, Any], Accumulator] | None = None,
        proxy: Callable[[Any, LiveSpan, Accumulator, Config], Any] | None = None,
        bind: Binder | None = None,
        dump: Callable[[Any], dict[str, Any] | None] | None = None,
    ) -> None:
        self.name = name
        self.span_type = span_type
        self.start = start
        self.record = record
        self.is_stream = is_stream
        self.accumulator = accumulator
        self.proxy = proxy
        self.bind = bind
        self.dump = dump  # response -> dict; None: ``to_dict`` (pydantic ``model_dump()``)


def bind_arguments(
    call: LLMCall, config: Config, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``call.bind(args, kwargs)``; the arguments unchanged if it fails (a tracing bug)."""
    try:
        return call.bind(args, kwargs) if call.bind is not None else (args, kwargs)
    except Exception as exc:
        report(config, "arguments", exc)
        return args, kwargs


def begin(call: LLMCall, config: Config, kwargs: dict[str, Any]) -> tuple[Span, Request] | None:
    """Open the call's span and record the request; None when tracing is off."""
    span = begin_span(call.name, call.span_type, None)
    if span is None:
        return None
    request = Request(kwargs)
    if isinstance(span, LiveSpan):
        try:
            call.start(request, span)
        except Exception as exc:
            request.kwargs = kwargs
            report(config, "request", exc)
    return span, request


def fail(span: Span, request: Request, exc: BaseException) -> None:
    """End the span of a call that raised: status ERROR, the exception as an event."""
    if request.messages is not None and isinstance(span, LiveSpan):
        span.set_attribute(CHAT_MESSAGES, request.messages)
    end_span(span, exc=exc)


def complete(call: LLMCall, config: Config, span: Span, request: Request, result: Any) -> Any:
    """Record a call's result: a response ends the span, a stream is returned proxied."""
    if not isinstance(span, LiveSpan):
        return result
    if call.is_stream is not None and call.is_stream(result):
        try:
            assert call.accumulator is not None and call.proxy is not None
            return call.proxy(result, span, call.accumulator(request, result), config)
        except Exception as exc:
            report(config, "stream", exc)
            end_span(span)
            return result
    outputs: Any = MISSING
    try:
        dump = (call.dump or to_dict)(result)
        if dump is not None:
            call.record(span, request, dump)
            outputs = dump
    except Exception as exc:
        report(config, "response", exc)
    # A ``model_dump()`` is a fresh tree nobody else holds: no snapshot copy is needed. A
    # custom ``dump`` may return what the caller also receives, so it is copied.
    end_span(span, outputs, owned=call.dump is None)
    return result


# Per-request options that may carry credentials (Azure's ``api-key`` header or query
# parameter, an ``Authorization`` header): never recorded.
_UNRECORDED = frozenset({"extra_headers", "extra_query"})
_SENTINELS = frozenset({"NotGiven", "Omit"})  # the generated clients' "argument not given"


def given(value: Any) -> bool:
    """False for the ``NOT_GIVEN`` / ``omit`` sentinels of the generated client libraries."""
    return type(value).__name__ not in _SENTINELS


def request_inputs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The span inputs of a call: the arguments given, without headers and query options."""
    sentinels, unrecorded = _SENTINELS, _UNRECORDED
    return {
        k: v for k, v in kwargs.items() if k not in unrecorded and type(v).__name__ not in sentinels
    }


def materialize(kwargs: dict[str, Any], names: tuple[str, ...]) -> None:
    """Turn one-shot iterables among the arguments into lists (in place: ``kwargs`` is the
    wrapper's own dict), so reading them for the trace does not consume what is sent."""
    for name in names:
        value = kwargs.get(name)
        if value is None or isinstance(value, (list, tuple, str, dict, bytes)) or not given(value):
            continue
        if hasattr(value, "__iter__") and not hasattr(value, "model_dump"):
            kwargs[name] = list(value)


def put_attributes(span: LiveSpan, attributes: dict[str, Any]) -> None:
    """Store attributes the integration built itself from scalars and fresh containers
    (no caller holds a reference), so they need no snapshot: the hot path skips one."""
    span.attributes.update(attributes)


def to_dict(obj: Any) -> dict[str, Any] | None:
    """A pydantic response as a dict (``model_dump()``); None for anything else."""
    dump = getattr(obj, "model_dump", None)
    if dump is None or isinstance(obj, type):
        return None
    try:
        return dump(warnings=False)
    except TypeError:  # pydantic v1-style models
        return dump()


def wrap_sync(original: Callable[..., Any], call: LLMCall, config: Config) -> Callable[..., Any]:
    """The traced version of a library method that returns its result."""

    def traced(*args: Any, **kwargs: Any) -> Any:
        outer = _calling.get()
        nested = outer is not None and (outer is config or outer.hides_inner_calls)
        if not config.active or not RT.enabled or nested:
            return original(*args, **kwargs)
        if call.bind is not None:
            args, kwargs = bind_arguments(call, config, args, kwargs)
        started = begin(call, config, kwargs)
        if started is None:
            return original(*args, **kwargs)
        span, request = started
        token = current_span.set(span)
        calling = _calling.set(config)
        try:
            result = original(*args, **request.kwargs)
        except BaseException as exc:
            _calling.reset(calling)
            current_span.reset(token)
            fail(span, request, exc)
            raise
        _calling.reset(calling)
        current_span.reset(token)
        return complete(call, config, span, request, result)

    return functools.wraps(original)(traced)


def wrap_async(original: Callable[..., Any], call: LLMCall, config: Config) -> Callable[..., Any]:
    """The traced version of a library method whose result is awaited."""

    async def traced(*args: Any, **kwargs: Any) -> Any:
        outer = _calling.get()
        nested = outer is not None and (outer is config or outer.hides_inner_calls)
        if not config.active or not RT.enabled or nested:
            return await original(*args, **kwargs)
        if call.bind is not None:
            args, kwargs = bind_arguments(call, config, args, kwargs)
        started = begin(call, config, kwargs)
        if started is None:
            return await original(*args, **kwargs)
        span, request = started
        token = current_span.set(span)
        calling = _calling.set(config)
        try:
            result = await original(*args, **request.kwargs)
        except BaseException as exc:
            _calling.reset(calling)
            current_span.reset(token)
            fail(span, request, exc)
            raise
        _calling.reset(calling)
        current_span.reset(token)
        return complete(call, config, span, request, result)

    return functools.wraps(original)(traced)
