"""Query engines' streamed responses: their spans end when the caller has read the stream.

A streaming query returns at once a ``StreamingResponse`` (``AsyncStreamingResponse``)
whose ``response_gen`` makes the LLM call while the caller reads it. Every span that
returned that response object (the synthesizer's, the query engine's) stays open; its
``response_gen`` is replaced by a generator that reads the original one with the innermost
of those spans current, so that the LLM call made while reading nests under it, and ends
them all, with the streamed text, when the stream is exhausted, fails, is closed or is
dropped unread.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from threadline.integrations._framework import SpanTable
from threadline.integrations._llm_call import Config, report
from threadline.integrations.llama_index._record import Record
from threadline.integrations.llama_index._values import text_of
from threadline.tracing._context import current_span

_STREAMING = frozenset({"StreamingResponse", "AsyncStreamingResponse"})
_lock = threading.Lock()
# id(response) -> its group, while the group's reader is alive.
_groups: weakref.WeakValueDictionary[int, _Group] = weakref.WeakValueDictionary()


def is_streaming_response(result: Any) -> bool:
    return type(result).__name__ in _STREAMING and getattr(result, "response_gen", None) is not None


class _Group:
    """The open spans waiting for one streamed response, innermost first."""

    __slots__ = ("__weakref__", "config", "done", "parts", "records", "response", "table")

    def __init__(self, table: SpanTable[Record], config: Config, response: Any) -> None:
        self.table = table
        self.config = config
        self.response = weakref.ref(response)
        self.records: list[Record] = []
        self.parts: list[str] = []
        self.done = False

    def add(self, item: Any) -> None:
        text = text_of(item)
        if text is not None:
            self.parts.append(text)

    def finish(self, exc: BaseException | None = None, early: bool = False) -> None:
        with _lock:
            if self.done:
                return
            self.done = True
        text = "".join(self.parts)
        for record in self.records:
            try:
                if early and hasattr(record.span, "set_attribute"):
                    from threadline.entities.keys import SpanAttributeKey

                    record.span.set_attribute(SpanAttributeKey.GENERATOR_CLOSED_EARLY, True)
                self.table.close(record, text, exc=exc)
            except Exception as error:
                report(self.config, "stream-end", error)


def follow(table: SpanTable[Record], config: Config, record: Record, response: Any) -> None:
    """Keep ``record`` open until ``response``'s stream ends (see the module docstring)."""
    with _lock:
        group = _groups.get(id(response))
        if group is not None and group.response() is response and not group.done:
            group.records.append(record)
            return
        group = _Group(table, config, response)
        group.records.append(record)
        _groups[id(response)] = group
    inner = response.response_gen
    if type(response).__name__ == "AsyncStreamingResponse":
        reader: Any = _read_async(inner, group)
    else:
        reader = _read(iter(inner), group)
    weakref.finalize(reader, group.finish, None, True)  # dropped before it was read
    response.response_gen = reader


def _read(inner: Iterator[Any], group: _Group) -> Iterator[Any]:
    exc: BaseException | None = None
    early = True
    try:
        while True:
            token = current_span.set(group.records[0].span)
            try:
                item = next(inner)
            except StopIteration:
                early = False
                return
            finally:
                current_span.reset(token)
            group.add(item)
            yield item
    except GeneratorExit:
        close = getattr(inner, "close", None)
        if close is not None:
            close()
        raise
    except BaseException as error:
        exc, early = error, False
        raise
    finally:
        group.finish(exc, early)


async def _read_async(inner: Any, group: _Group) -> AsyncIterator[Any]:
    exc: BaseException | None = None
    early = True
    iterator = inner.__aiter__()
    try:
        while True:
            token = current_span.set(group.records[0].span)
            try:
                item = await iterator.__anext__()
            except StopAsyncIteration:
                early = False
                return
            finally:
                current_span.reset(token)
            group.add(item)
            yield item
    except GeneratorExit:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    except BaseException as error:
        exc, early = error, False
        raise
    finally:
        group.finish(exc, early)
