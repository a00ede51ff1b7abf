"""``@threadline.trace``: four explicit wrappers (function, coroutine, generator, async gen).

The disabled path is one attribute check. Inputs are the call's arguments bound to their
parameter names (snapshotted when the call starts); the output is the return value, or for
generators the yielded items (reduced by ``output_reducer`` if given).
"""

from __future__ import annotations

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.entities.trace_location import ExperimentLocation
from threadline.errors import InvalidArgumentError
from threadline.tracing import _safety
from threadline.tracing._binding import make_binder
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import begin_span, end_span
from threadline.tracing._noop import NoOpSpan
from threadline.tracing._runtime import RT
from threadline.tracing._serialize import snapshot
from threadline.tracing._span import LiveSpan

TYPE_CHECKING = False  # typing/inspect/functools stay unimported at runtime: SDK import time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from threadline.tracing._binding import Binder

    Reducer = Callable[[list[Any]], Any]

_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80
_CO_ASYNC_GENERATOR = 0x200


def trace(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    span_type: str = SpanType.UNKNOWN,
    attributes: dict[str, Any] | None = None,
    output_reducer: Reducer | None = None,
    trace_destination: ExperimentLocation | None = None,
    sampling_ratio_override: float | None = None,
) -> Any:
    """Record each call of the decorated function as a span.

    Works bare (``@trace``) or with options (``@trace(name=..., span_type=...)``) on
    functions, methods, ``async def``, generators and async generators.
    """
    _validate_options(name, span_type, attributes, output_reducer, trace_destination)
    if sampling_ratio_override is not None and not (
        isinstance(sampling_ratio_override, (int, float)) and 0 <= sampling_ratio_override <= 1
    ):
        raise InvalidArgumentError(
            f"trace(sampling_ratio_override=...) must be a number from 0 to 1, got "
            f"{sampling_ratio_override!r}."
        )
    options: dict[str, Any] = {
        "name": name,
        "span_type": span_type,
        "attributes": attributes,
        "output_reducer": output_reducer,
        "trace_destination": trace_destination,
        "sampling_ratio_override": sampling_ratio_override,
    }
    if func is None:
        return lambda f: trace(f, **options)
    if isinstance(func, (staticmethod, classmethod)):
        inner = trace(func.__func__, **options)
        return type(func)(inner)
    if not callable(func):
        raise InvalidArgumentError(f"@trace decorates functions; got {func!r}.")

    spec = _Spec(
        name or getattr(func, "__name__", None) or type(func).__name__,
        span_type,
        attributes,
        output_reducer,
        trace_destination,
        make_binder(func),
        None if sampling_ratio_override is None else float(sampling_ratio_override),
    )
    kind = _kind(func)
    if kind == "async_generator":
        wrapper = _wrap_async_generator(func, spec)
    elif kind == "coroutine":
        wrapper = _wrap_coroutine(func, spec)
    elif kind == "generator":
        wrapper = _wrap_generator(func, spec)
    else:
        wrapper = _wrap_function(func, spec)
    _copy_metadata(wrapper, func)
    return wrapper


def _kind(func: Callable[..., Any]) -> str:
    """function, coroutine, generator or async_generator (code flags; inspect if unusual)."""
    code = getattr(func, "__code__", None)
    if code is not None and type(func).__name__ == "function":
        flags = code.co_flags
        if flags & _CO_ASYNC_GENERATOR:
            return "async_generator"
        if flags & _CO_COROUTINE or getattr(func, "_is_coroutine_marker", None) is not None:
            return "coroutine"
        if flags & _CO_GENERATOR:
            return "generator"
        return "function"
    import inspect

    if inspect.isasyncgenfunction(func):
        return "async_generator"
    if inspect.iscoroutinefunction(func):
        return "coroutine"
    if inspect.isgeneratorfunction(func):
        return "generator"
    return "function"


def _copy_metadata(wrapper: Any, func: Any) -> None:
    """What ``functools.update_wrapper`` does, without importing functools at import time."""
    for attr in ("__module__", "__name__", "__qualname__", "__doc__", "__annotations__"):
        try:
            setattr(wrapper, attr, getattr(func, attr))
        except (AttributeError, TypeError):
            pass
    try:
        wrapper.__dict__.update(getattr(func, "__dict__", {}))
    except (AttributeError, TypeError):
        pass
    wrapper.__wrapped__ = func
    wrapper.__threadline_traced__ = True


def _validate_options(
    name: Any, span_type: Any, attributes: Any, output_reducer: Any, destination: Any
) -> None:
    if name is not None and not isinstance(name, str):
        raise InvalidArgumentError(f"trace(name=...) must be a string, got {name!r}.")
    if not isinstance(span_type, str):
        raise InvalidArgumentError(f"trace(span_type=...) must be a string, got {span_type!r}.")
    if attributes is not None and not isinstance(attributes, dict):
        raise InvalidArgumentError(f"trace(attributes=...) must be a dict, got {attributes!r}.")
    if output_reducer is not None and not callable(output_reducer):
        raise InvalidArgumentError("trace(output_reducer=...) must be callable.")
    if destination is not None and not isinstance(destination, ExperimentLocation):
        raise InvalidArgumentError(
            "trace(trace_destination=...) takes an ExperimentLocation, "
            f"got {type(destination).__name__}."
        )


class _Spec:
    """What a decorated function's spans are made of, fixed at decoration time."""

    __slots__ = ("attributes", "bind", "destination", "name", "ratio", "reducer", "span_type")

    def __init__(
        self,
        name: str,
        span_type: str,
        attributes: dict[str, Any] | None,
        reducer: Reducer | None,
        destination: ExperimentLocation | None,
        bind: Binder,
        ratio: float | None,
    ) -> None:
        self.name = name
        self.span_type = span_type
        self.attributes = attributes
        self.reducer = reducer
        self.destination = destination
        self.bind = bind
        self.ratio = ratio


def _open(spec: _Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LiveSpan | NoOpSpan | None:
    span = begin_span(
        spec.name, spec.span_type, spec.attributes, spec.destination, sampling_ratio=spec.ratio
    )
    if isinstance(span, LiveSpan):
        try:
            span._inputs = spec.bind(args, kwargs)
        except Exception as exc:
            _safety.internal_error("bind-inputs", exc)
    return span


def _wrap_function(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    def traced(*args: Any, **kwargs: Any) -> Any:
        if not RT.enabled:
            return func(*args, **kwargs)
        span = _open(spec, args, kwargs)
        if span is None:
            return func(*args, **kwargs)
        token = current_span.set(span)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            current_span.reset(token)
            end_span(span, exc=exc)
            raise
        current_span.reset(token)
        end_span(span, result)
        return result

    return traced


def _wrap_coroutine(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    async def traced(*args: Any, **kwargs: Any) -> Any:
        if not RT.enabled:
            return await func(*args, **kwargs)
        span = _open(spec, args, kwargs)
        if span is None:
            return await func(*args, **kwargs)
        token = current_span.set(span)
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            current_span.reset(token)
            end_span(span, exc=exc)
            raise
        current_span.reset(token)
        end_span(span, result)
        return result

    return traced


class _Collector:
    """Yielded items of a traced generator: raw when a reducer will see them, else snapshots."""

    __slots__ = ("items", "reducer")

    def __init__(self, reducer: Reducer | None) -> None:
        self.reducer = reducer
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        self.items.append(item if self.reducer is not None else snapshot(item))

    def output(self) -> Any:
        if self.reducer is None:
            return self.items
        try:
            return self.reducer(self.items)
        except Exception as exc:
            _safety.log_once(
                "output-reducer",
                f"threadline: output_reducer raised {type(exc).__name__}: {exc}; "
                "the span keeps the list of yielded items instead.",
            )
            return [snapshot(i) for i in self.items]


def _wrap_generator(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    def traced(*args: Any, **kwargs: Any) -> Any:
        if not RT.enabled:
            return (yield from func(*args, **kwargs))
        span = _open(spec, args, kwargs)
        if span is None:
            return (yield from func(*args, **kwargs))
        collected = _Collector(spec.reducer)
        token = current_span.set(span)
        try:
            gen = func(*args, **kwargs)
        except BaseException as exc:
            current_span.reset(token)
            end_span(span, exc=exc)
            raise
        current_span.reset(token)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = current_span.set(span)
            try:
                if thrown is not None:
                    item = gen.throw(thrown)
                else:
                    item = gen.send(sent)
            except StopIteration as stop:
                current_span.reset(token)
                end_span(span, collected.output())
                return stop.value
            except BaseException as exc:
                current_span.reset(token)
                end_span(span, exc=exc)
                raise
            current_span.reset(token)
            collected.add(item)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                _close_generator(gen, span, collected)
                raise
            except BaseException as exc:
                thrown = exc

    return traced


def _close_generator(gen: Any, span: LiveSpan | NoOpSpan, collected: _Collector) -> None:
    """The consumer stopped early: close the inner generator inside the span, then end it."""
    token = current_span.set(span)
    try:
        gen.close()
    except BaseException as exc:
        current_span.reset(token)
        end_span(span, exc=exc)
        raise
    current_span.reset(token)
    span.set_attribute(SpanAttributeKey.GENERATOR_CLOSED_EARLY, True)
    end_span(span, collected.output())


def _wrap_async_generator(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    async def traced(*args: Any, **kwargs: Any) -> Any:
        if not RT.enabled:
            async for item in func(*args, **kwargs):
                yield item
            return
        span = _open(spec, args, kwargs)
        if span is None:
            async for item in func(*args, **kwargs):
                yield item
            return
        collected = _Collector(spec.reducer)
        gen = func(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = current_span.set(span)
            try:
                if thrown is not None:
                    item = await gen.athrow(thrown)
                else:
                    item = await gen.asend(sent)
            except StopAsyncIteration:
                current_span.reset(token)
                end_span(span, collected.output())
                return
            except BaseException as exc:
                current_span.reset(token)
                end_span(span, exc=exc)
                raise
            current_span.reset(token)
            collected.add(item)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                await _aclose_generator(gen, span, collected)
                raise
            except BaseException as exc:
                thrown = exc

    return traced


async def _aclose_generator(gen: Any, span: LiveSpan | NoOpSpan, collected: _Collector) -> None:
    token = current_span.set(span)
    try:
        await gen.aclose()
    except BaseException as exc:
        current_span.reset(token)
        end_span(span, exc=exc)
        raise
    current_span.reset(token)
    span.set_attribute(SpanAttributeKey.GENERATOR_CLOSED_EARLY, True)
    end_span(span, collected.output())
