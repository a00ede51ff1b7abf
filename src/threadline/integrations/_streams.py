"""Proxies for streamed LLM responses and for the libraries' stream context managers.

A proxy stands in for the library's stream object: iteration, ``with``, ``close()`` and
every other attribute (``response``, helper methods) behave as the library's, and
``isinstance`` sees the library's class. It feeds each item to the call's accumulator
and ends the call's span once: when the stream is exhausted, raises, is closed, leaves
its ``with`` block, or is garbage-collected before any of these (abandoned).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.integrations._llm_call import (
    Accumulator,
    Config,
    LLMCall,
    begin,
    complete,
    fail,
    report,
)
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import MISSING, end_span
from threadline.tracing._runtime import RT
from threadline.tracing._span import LiveSpan

_OWN_PREFIX = "_tl_"


def finish_stream(
    span: LiveSpan, acc: Accumulator, config: Config, exc: BaseException | None, early: bool
) -> None:
    """End a streamed call's span with what the accumulator assembled so far."""
    outputs: Any = MISSING
    try:
        outputs = acc.finish(span)
        if early:
            span.set_attribute(SpanAttributeKey.GENERATOR_CLOSED_EARLY, True)
    except Exception as error:
        report(config, "stream-output", error)
    end_span(span, outputs, exc=exc)


def _keep(item: Any) -> bool:
    return True


class _ProxyBase:
    """What the sync and async stream proxies share: forwarding and ending the span."""

    __slots__ = ("__weakref__", "_tl_acc", "_tl_add", "_tl_config", "_tl_inner", "_tl_span")

    def __init__(self, inner: Any, span: LiveSpan, acc: Accumulator, config: Config) -> None:
        setter = object.__setattr__
        setter(self, "_tl_inner", inner)
        setter(self, "_tl_span", span)
        setter(self, "_tl_acc", acc)
        setter(self, "_tl_add", acc.add)
        setter(self, "_tl_config", config)

    def _tl_end(self, exc: BaseException | None, early: bool = False) -> None:
        span = self._tl_span
        if span is None:
            return
        object.__setattr__(self, "_tl_span", None)
        finish_stream(span, self._tl_acc, self._tl_config, exc, early)

    def _tl_broken(self, error: Exception) -> None:
        """The accumulator failed: report it and stop feeding it (items pass through)."""
        object.__setattr__(self, "_tl_add", _keep)
        report(self._tl_config, "stream-item", error)

    def __getattr__(self, name: str) -> Any:
        if name.startswith(_OWN_PREFIX):
            raise AttributeError(name)
        return getattr(self._tl_inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith(_OWN_PREFIX):
            object.__setattr__(self, name, value)
        else:
            setattr(self._tl_inner, name, value)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(proxy, openai.Stream) stays true
        return type(self._tl_inner)

    def __repr__(self) -> str:
        return repr(self._tl_inner)

    def __del__(self) -> None:
        try:
            span = self._tl_span
        except AttributeError:  # __init__ did not finish
            return
        if span is not None:
            try:
                self._tl_end(None, early=True)
            except Exception as exc:
                report(self._tl_config, "stream-abandoned", exc)


class StreamProxy(_ProxyBase):
    """A library's synchronous stream, traced."""

    __slots__ = ("_tl_next",)

    def __init__(self, inner: Any, span: LiveSpan, acc: Accumulator, config: Config) -> None:
        super().__init__(inner, span, acc, config)
        nxt = getattr(inner, "__next__", None)
        object.__setattr__(self, "_tl_next", nxt if nxt is not None else iter(inner).__next__)

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                item = self._tl_next()
            except StopIteration:
                self._tl_end(None)
                raise
            except BaseException as exc:
                self._tl_end(exc)
                raise
            try:
                if self._tl_add(item):
                    return item
            except Exception as error:  # a bug in tracing: the item still reaches the caller
                self._tl_broken(error)
                return item

    def __enter__(self) -> StreamProxy:
        self._tl_inner.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._tl_inner.__exit__(*exc_info)
        finally:
            self._tl_end(None, early=True)

    def close(self) -> Any:
        try:
            return self._tl_inner.close()
        finally:
            self._tl_end(None, early=True)


class AsyncStreamProxy(_ProxyBase):
    """A library's asynchronous stream, traced."""

    __slots__ = ("_tl_anext",)

    def __init__(self, inner: Any, span: LiveSpan, acc: Accumulator, config: Config) -> None:
        super().__init__(inner, span, acc, config)
        nxt = getattr(inner, "__anext__", None)
        object.__setattr__(self, "_tl_anext", nxt if nxt is not None else aiter(inner).__anext__)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                item = await self._tl_anext()
            except StopAsyncIteration:
                self._tl_end(None)
                raise
            except BaseException as exc:
                self._tl_end(exc)
                raise
            try:
                if self._tl_add(item):
                    return item
            except Exception as error:  # a bug in tracing: the item still reaches the caller
                self._tl_broken(error)
                return item

    async def __aenter__(self) -> AsyncStreamProxy:
        await self._tl_inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._tl_inner.__aexit__(*exc_info)
        finally:
            self._tl_end(None, early=True)

    async def close(self) -> Any:
        try:
            return await self._tl_inner.close()
        finally:
            self._tl_end(None, early=True)

    async def aclose(self) -> Any:
        try:
            return await self._tl_inner.aclose()
        finally:
            self._tl_end(None, early=True)


class DualStreamProxy(_ProxyBase):
    """A stream that can be read either way, traced: ``for`` or ``async for``, ``with`` or
    ``async with``, a synchronous ``close()`` and ``await aclose()`` (litellm's streams).

    The methods are the sync and async proxies' own, which find ``_tl_next`` and
    ``_tl_anext`` on this class.
    """

    __slots__ = ("_tl_anext", "_tl_next")

    def __init__(self, inner: Any, span: LiveSpan, acc: Accumulator, config: Config) -> None:
        super().__init__(inner, span, acc, config)
        object.__setattr__(self, "_tl_next", inner.__next__)
        object.__setattr__(self, "_tl_anext", inner.__anext__)

    __iter__ = StreamProxy.__iter__
    __next__ = StreamProxy.__next__
    __enter__ = StreamProxy.__enter__
    __exit__ = StreamProxy.__exit__
    close = StreamProxy.close
    __aiter__ = AsyncStreamProxy.__aiter__
    __anext__ = AsyncStreamProxy.__anext__
    __aenter__ = AsyncStreamProxy.__aenter__
    __aexit__ = AsyncStreamProxy.__aexit__
    aclose = AsyncStreamProxy.aclose


class _ManagerBase:
    """A library's stream context manager (``messages.stream(...)``): the request is made,
    and the span opened, when the block is entered."""

    __slots__ = ("__weakref__", "_tl_call", "_tl_config", "_tl_inner", "_tl_kwargs", "_tl_stream")

    def __init__(self, inner: Any, call: LLMCall, config: Config, kwargs: dict[str, Any]) -> None:
        self._tl_inner = inner
        self._tl_call = call
        self._tl_config = config
        self._tl_kwargs = kwargs
        self._tl_stream: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith(_OWN_PREFIX):
            raise AttributeError(name)
        return getattr(self._tl_inner, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._tl_inner)

    def __repr__(self) -> str:
        return repr(self._tl_inner)

    def _tl_begin(self) -> Any:
        if not RT.enabled:
            return None
        return begin(self._tl_call, self._tl_config, self._tl_kwargs)

    def _tl_exit(self) -> None:
        stream = self._tl_stream
        if isinstance(stream, _ProxyBase):
            stream._tl_end(None, early=True)


class StreamManagerProxy(_ManagerBase):
    """A synchronous stream manager, traced."""

    __slots__ = ()

    def __enter__(self) -> Any:
        started = self._tl_begin()
        if started is None:
            return self._tl_inner.__enter__()
        span, request = started
        token = current_span.set(span)
        try:
            stream = self._tl_inner.__enter__()
        except BaseException as exc:
            current_span.reset(token)
            fail(span, request, exc)
            raise
        current_span.reset(token)
        self._tl_stream = complete(self._tl_call, self._tl_config, span, request, stream)
        return self._tl_stream

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._tl_inner.__exit__(*exc_info)
        finally:
            self._tl_exit()


class AsyncStreamManagerProxy(_ManagerBase):
    """An asynchronous stream manager, traced."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        started = self._tl_begin()
        if started is None:
            return await self._tl_inner.__aenter__()
        span, request = started
        token = current_span.set(span)
        try:
            stream = await self._tl_inner.__aenter__()
        except BaseException as exc:
            current_span.reset(token)
            fail(span, request, exc)
            raise
        current_span.reset(token)
        self._tl_stream = complete(self._tl_call, self._tl_config, span, request, stream)
        return self._tl_stream

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._tl_inner.__aexit__(*exc_info)
        finally:
            self._tl_exit()


def wrap_manager(
    original: Callable[..., Any], call: LLMCall, config: Config, proxy: type[_ManagerBase]
) -> Callable[..., Any]:
    """The traced version of a method returning a stream context manager."""

    def traced(*args: Any, **kwargs: Any) -> Any:
        manager = original(*args, **kwargs)
        if not config.active:
            return manager
        return proxy(manager, call, config, kwargs)

    return functools.wraps(original)(traced)
