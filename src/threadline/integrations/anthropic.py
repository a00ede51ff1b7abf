"""``threadline.anthropic.autolog()``: trace every Anthropic Messages API call.

Patched on the public resource classes (so ``Anthropic`` and ``AsyncAnthropic`` are both
covered): ``messages.create`` (plain and ``stream=True``), ``messages.parse`` and the
``messages.stream()`` helper, whose ``MessageStream`` is proxied: its span ends when the
stream is read to the end (by iteration, ``text_stream``, ``until_done()`` or
``get_final_message()``), at the end of the ``with`` block, or when it is abandoned.
The beta resource (``client.beta.messages``: ``create``, ``parse``, ``stream()``) is
patched the same way; its spans are named ``anthropic.beta.messages.*``.

Token usage: ``input_tokens`` in ``threadline.token_usage`` counts every prompt token,
cache reads and writes included (Anthropic reports them apart; OpenAI counts them in);
the cached and cache-creation counts are also recorded on their own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.integrations import _chat_format as cf
from threadline.integrations._base import Integration, Target
from threadline.integrations._llm_call import (
    LLMCall,
    Request,
    given,
    materialize,
    put_attributes,
    request_inputs,
    to_dict,
)
from threadline.integrations._streams import AsyncStreamProxy, StreamProxy
from threadline.tracing._serialize import snapshot
from threadline.tracing._span import LiveSpan

PROVIDER = "anthropic"

__all__ = ["INTEGRATION", "autolog"]


# --- the request --------------------------------------------------------------------------


def _start(request: Request, span: LiveSpan) -> None:
    kwargs = request.kwargs
    materialize(kwargs, ("messages", "tools", "system"))
    span.set_inputs(request_inputs(kwargs))
    model = kwargs.get("model")
    request.model = model if given(model) and isinstance(model, str) else None
    attributes: dict[str, Any] = {SpanAttributeKey.PROVIDER: PROVIDER}
    if request.model is not None:
        attributes[SpanAttributeKey.MODEL] = request.model
    put_attributes(span, attributes)
    tools = _tools(kwargs.get("tools"))
    if tools:
        span.set_attribute(cf.CHAT_TOOLS, tools)  # holds the caller's schemas: snapshot
    request.messages = _messages(kwargs.get("system"), kwargs.get("messages"))


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for raw in tools if isinstance(tools, (list, tuple)) else ():
        t = _as_dict(raw)
        out.append(
            cf.tool(t.get("name") or t.get("type"), t.get("description"), t.get("input_schema"))
        )
    return out


def _messages(system: Any, messages: Any) -> list[dict[str, Any]]:
    out = []
    if given(system) and system:
        if isinstance(system, (list, tuple)):  # text blocks
            system = [_as_dict(block) for block in system]
        out.append(cf.message("system", cf.text_content(system)))
    for raw in messages if isinstance(messages, (list, tuple)) else ():
        m = _as_dict(raw)
        out.extend(_message(m.get("role"), m.get("content")))
    return out


def _message(role: Any, content: Any) -> list[dict[str, Any]]:
    """One Anthropic message as normalised messages: tool results become ``tool`` messages."""
    if not isinstance(content, (list, tuple)):
        return [cf.message(role, cf.text_content(content))]
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    others: list[Any] = []
    out: list[dict[str, Any]] = []
    for raw in content:
        block = _as_dict(raw)
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind in ("tool_use", "server_tool_use"):
            calls.append(cf.tool_call(block.get("id"), block.get("name"), block.get("input")))
        elif kind == "tool_result":
            result = _tool_result_content(block.get("content"))
            out.append(cf.message("tool", result, tool_call_id=block.get("tool_use_id")))
        elif kind not in ("thinking", "redacted_thinking"):
            others.append(block)
    if texts or calls or others or not out:
        text = "\n".join(texts) if texts else None
        body: Any = text
        if others:  # images, documents…: kept whole, as a snapshot
            body = snapshot([*([{"type": "text", "text": text}] if text else []), *others])
        out.append(cf.message(role, body, calls))
    return out


def _tool_result_content(content: Any) -> Any:
    if isinstance(content, (list, tuple)):
        content = [_as_dict(b) for b in content]
    return cf.text_content(content)


def _as_dict(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else (to_dict(raw) or {})


# --- the response -------------------------------------------------------------------------


def _record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    usage = out.get("usage") or {}
    cache_read = usage.get("cache_read_input_tokens")
    cache_creation = usage.get("cache_creation_input_tokens")
    prompt = None
    if usage.get("input_tokens") is not None:
        prompt = usage["input_tokens"] + (cache_read or 0) + (cache_creation or 0)
    attributes = cf.token_usage(
        prompt,
        usage.get("output_tokens"),
        cached_input_tokens=cache_read,
        cache_creation_input_tokens=cache_creation,
        reasoning_tokens=cf.get(usage, "output_tokens_details", "thinking_tokens"),
    )
    attributes[cf.FINISH_REASON] = out.get("stop_reason")
    if request.messages is not None:
        reply = _message("assistant", out.get("content") or [])
        attributes[cf.CHAT_MESSAGES] = [*request.messages, *reply]
    if request.model is None and isinstance(out.get("model"), str):
        attributes[SpanAttributeKey.MODEL] = out["model"]
    put_attributes(span, attributes)  # built from ``out``, a fresh dict: no snapshot needed


class _EventStream:
    """A ``create(stream=True)`` stream: the message reassembled from its raw events."""

    __slots__ = ("blocks", "json_parts", "message", "request", "texts")

    def __init__(self, request: Request, inner: Any) -> None:
        self.request = request
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.texts: dict[int, list[str]] = {}
        self.json_parts: dict[int, list[str]] = {}

    def add(self, event: Any) -> bool:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            dtype = delta.type
            if dtype == "text_delta":
                self.texts.setdefault(event.index, []).append(delta.text)
            elif dtype == "input_json_delta":
                self.json_parts.setdefault(event.index, []).append(delta.partial_json)
            elif dtype == "thinking_delta":
                self.texts.setdefault(event.index, []).append(delta.thinking)
            elif dtype == "signature_delta":
                self.blocks.setdefault(event.index, {})["signature"] = delta.signature
        elif kind == "content_block_start":
            self.blocks[event.index] = to_dict(event.content_block) or {}
            self.texts[event.index] = []
            self.json_parts[event.index] = []
        elif kind == "message_start":
            self.message = to_dict(event.message)
        elif kind == "message_delta" and self.message is not None:
            self.message.update(to_dict(event.delta) or {})
            usage = self.message.setdefault("usage", {})
            for key, value in (to_dict(event.usage) or {}).items():
                if value is not None:
                    usage[key] = value
        return True

    def finish(self, span: LiveSpan) -> Any:
        out = dict(self.message or {"type": "message", "role": "assistant"})
        out["content"] = [self._block(i) for i in sorted(self.blocks)]
        _record(span, self.request, out)
        return out

    def _block(self, index: int) -> dict[str, Any]:
        block = dict(self.blocks[index])
        kind = block.get("type")
        text = "".join(self.texts.get(index) or ())
        if kind == "text":
            block["text"] = block.get("text", "") + text
        elif kind == "thinking":
            block["thinking"] = block.get("thinking", "") + text
        elif self.json_parts.get(index):
            raw = "".join(self.json_parts[index])
            try:
                block["input"] = json.loads(raw)
            except ValueError:
                block["input"] = raw  # cut off mid-stream
        return block


class _HelperStream:
    """A ``messages.stream()`` helper: its own accumulated snapshot is the output."""

    __slots__ = ("inner", "request")

    def __init__(self, request: Request, inner: Any) -> None:
        self.request = request
        self.inner = inner

    def add(self, event: Any) -> bool:
        return True

    def finish(self, span: LiveSpan) -> Any:
        try:
            snapshot = self.inner.current_message_snapshot
        except AssertionError:  # no message_start received yet
            return None
        out = to_dict(snapshot)
        if out is not None:
            _record(span, self.request, out)
        return out


class MessageStreamProxy(StreamProxy):
    """``MessageStream``, traced: its helpers that read the stream to the end end the span."""

    __slots__ = ()

    def _tl_run(self, method: str) -> Any:
        try:
            result = getattr(self._tl_inner, method)()
        except BaseException as exc:
            self._tl_end(exc)
            raise
        self._tl_end(None)
        return result

    def until_done(self) -> Any:
        return self._tl_run("until_done")

    def get_final_message(self) -> Any:
        return self._tl_run("get_final_message")

    def get_final_text(self) -> Any:
        return self._tl_run("get_final_text")

    @property
    def text_stream(self) -> Iterator[str]:
        return self._tl_texts()

    def _tl_texts(self) -> Iterator[str]:
        try:
            # Not ``yield from``: closing this generator must not close the library's.
            for text in self._tl_inner.text_stream:  # noqa: UP028
                yield text
        except GeneratorExit:
            raise  # the caller stopped reading; the span ends at close, exit or collection
        except BaseException as exc:
            self._tl_end(exc)
            raise
        self._tl_end(None)


class AsyncMessageStreamProxy(AsyncStreamProxy):
    """``AsyncMessageStream``, traced (see ``MessageStreamProxy``)."""

    __slots__ = ()

    async def _tl_run(self, method: str) -> Any:
        try:
            result = await getattr(self._tl_inner, method)()
        except BaseException as exc:
            self._tl_end(exc)
            raise
        self._tl_end(None)
        return result

    async def until_done(self) -> Any:
        return await self._tl_run("until_done")

    async def get_final_message(self) -> Any:
        return await self._tl_run("get_final_message")

    async def get_final_text(self) -> Any:
        return await self._tl_run("get_final_text")

    @property
    def text_stream(self) -> AsyncIterator[str]:
        return self._tl_texts()

    async def _tl_texts(self) -> AsyncIterator[str]:
        try:
            async for text in self._tl_inner.text_stream:
                yield text
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._tl_end(exc)
            raise
        self._tl_end(None)


# --- what is patched ----------------------------------------------------------------------


def _always(result: Any) -> bool:
    return True


def _targets(anthropic: ModuleType) -> list[Target]:
    from anthropic.resources.messages import AsyncMessages, Messages

    targets = _resource_targets(anthropic, "anthropic.messages", Messages, AsyncMessages)
    try:  # the beta resource (``client.beta.messages``) exists from 0.18 on, but check
        from anthropic.resources.beta.messages import AsyncMessages as AsyncBeta
        from anthropic.resources.beta.messages import Messages as Beta
    except ImportError:
        return targets
    return targets + _resource_targets(anthropic, "anthropic.beta.messages", Beta, AsyncBeta)


def _resource_targets(anthropic: ModuleType, name: str, sync: type, async_: type) -> list[Target]:
    """``create`` / ``parse`` / ``stream()`` of one pair of Messages resource classes."""
    stream_types = (anthropic.Stream, anthropic.AsyncStream)

    def is_stream(result: Any) -> bool:
        return isinstance(result, stream_types)

    span_type = SpanType.CHAT_MODEL
    targets = []
    for owner, kind, proxy in ((sync, "sync", StreamProxy), (async_, "async", AsyncStreamProxy)):
        create = LLMCall(
            f"{name}.create", span_type, _start, _record, is_stream, _EventStream, proxy
        )
        targets.append(Target(owner, "create", kind, create))
        if hasattr(owner, "parse"):
            parse = LLMCall(f"{name}.parse", span_type, _start, _record)
            targets.append(Target(owner, "parse", kind, parse))
    helper = (
        (sync, "manager", MessageStreamProxy),
        (async_, "async_manager", AsyncMessageStreamProxy),
    )
    for owner, kind, manager_proxy in helper:
        if not hasattr(owner, "stream"):
            continue
        call = LLMCall(
            f"{name}.stream", span_type, _start, _record, _always, _HelperStream, manager_proxy
        )
        targets.append(Target(owner, "stream", kind, call))
    return targets


INTEGRATION = Integration(
    name="anthropic", distribution="anthropic", minimum_version="0.40.0", targets=_targets
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every Anthropic Messages API call as a span.

    Args:
        disable: remove the tracing and restore the library's original methods.
        log_traces: False patches nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
