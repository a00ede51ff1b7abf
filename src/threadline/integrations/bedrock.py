"""``threadline.bedrock.autolog()``: trace boto3's Bedrock runtime client.

Traced: ``converse``, ``converse_stream``, ``invoke_model`` and
``invoke_model_with_response_stream`` of every ``boto3.client("bedrock-runtime")``, of any
session, created before or after ``autolog()``. boto3 has no async client (aiobotocore's
clients override the patched method, so they are left untraced, and unbroken).

How it hooks in: botocore builds each client's class at run time, and every method of it
calls ``BaseClient._make_api_call(operation_name, params)``. That one method of the one
fixed base class is replaced (restored, the identical object, by ``disable=True``); calls
of other services and operations pass straight through. The name is private, but it is
the choke point every tracer of botocore wraps (ddtrace, OpenTelemetry, AWS X-Ray). The
public hooks (a ``creating-client-class`` handler on each session, wrapping
``create_client``) would miss every client created before ``autolog()``.

Spans: ``CHAT_MODEL`` for the Converse API and for chat or text models called through
``invoke_model`` (Claude's Messages body, Amazon Nova and Titan Text, Meta Llama, Mistral,
Cohere …, recognised by the request body and ``modelId``), ``EMBEDDING`` for embedding
models, ``LLM`` with the raw JSON as inputs and outputs for any other body. Outputs leave
out ``ResponseMetadata`` (HTTP headers, request id); credentials live on the client and
never reach a span.

``invoke_model``'s response body is a ``StreamingBody`` that can be read only once: it is
read before the call returns and replaced by a new ``StreamingBody`` over the same bytes,
so the caller reads ``response["body"]`` as usual (and a connection error while reading it
is raised by ``invoke_model`` itself). A request body given as a file object is recorded
by its ``repr`` (reading it would move its position). Streamed responses
(``response["stream"]``, ``response["body"]``) are proxied: the caller iterates the same
events, and the span ends when the stream is exhausted, closed or abandoned.

Token usage: ``input_tokens`` counts every prompt token, cache reads and writes included
(Bedrock reports them apart, as Anthropic does); cache reads are also recorded as the
cached count. ``invoke_model`` bodies without usage take Bedrock's
``x-amzn-bedrock-*-token-count`` headers, streams their final invocation metrics.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf
from threadline.integrations import anthropic as _anthropic
from threadline.integrations._base import Integration, Target
from threadline.integrations._llm_call import (
    Accumulator,
    Config,
    Request,
    _calling,
    fail,
    put_attributes,
    report,
)
from threadline.integrations._streams import StreamProxy
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import MISSING, begin_span, end_span
from threadline.tracing._runtime import RT
from threadline.tracing._serialize import snapshot
from threadline.tracing._span import LiveSpan

PROVIDER = "bedrock"
_SERVICE = "bedrock-runtime"
_TOKEN_HEADERS = ("x-amzn-bedrock-input-token-count", "x-amzn-bedrock-output-token-count")
_METRICS = "amazon-bedrock-invocationMetrics"

__all__ = ["INTEGRATION", "autolog"]


class _Call(Request):
    """One Bedrock call: for ``invoke_model`` also its decoded body, its format, and the
    token counts Bedrock sent beside the body (headers or invocation metrics)."""

    __slots__ = ("body", "format", "usage")

    def __init__(self, kwargs: dict[str, Any], body: Any, fmt: _Format | None) -> None:
        super().__init__(kwargs)
        self.body = body
        self.format = fmt
        self.usage: tuple[Any, Any] | None = None


def _set_model(span: LiveSpan, request: _Call) -> None:
    model = request.kwargs.get("modelId")
    request.model = model if isinstance(model, str) else None
    attributes: dict[str, Any] = {SpanAttributeKey.PROVIDER: PROVIDER}
    if request.model is not None:
        attributes[SpanAttributeKey.MODEL] = request.model
    put_attributes(span, attributes)


# --- the Converse API ---------------------------------------------------------------------


def _converse_start(request: _Call, span: LiveSpan) -> None:
    kwargs = request.kwargs
    span.set_inputs(kwargs)
    _set_model(span, request)
    tools = _converse_tools(kwargs.get("toolConfig"))
    if tools:
        span.set_attribute(cf.CHAT_TOOLS, tools)  # holds the caller's schemas: snapshot
    request.messages = _converse_messages(kwargs.get("system"), kwargs.get("messages"))


def _converse_tools(config: Any) -> list[dict[str, Any]]:
    tools = config.get("tools") if isinstance(config, dict) else None
    out = []
    for entry in tools if isinstance(tools, (list, tuple)) else ():
        spec = entry.get("toolSpec") if isinstance(entry, dict) else None
        if isinstance(spec, dict):
            schema = cf.get(spec, "inputSchema", "json")
            out.append(cf.tool(spec.get("name"), spec.get("description"), schema))
    return out


def _converse_messages(system: Any, messages: Any) -> list[dict[str, Any]]:
    out = []
    if isinstance(system, (list, tuple)):
        texts = [
            b["text"] for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)
        ]
        if texts:
            out.append(cf.message("system", "\n".join(texts)))
    for m in messages if isinstance(messages, (list, tuple)) else ():
        if isinstance(m, dict):
            out.extend(_converse_message(m.get("role"), m.get("content")))
    return out


_UNSHOWN = ("reasoningContent", "cachePoint")  # blocks left out of the conversation


def _converse_message(role: Any, content: Any) -> list[dict[str, Any]]:
    """One Converse message as normalised messages: tool results become ``tool`` messages."""
    if not isinstance(content, (list, tuple)):
        return [cf.message(role, cf.text_content(content))]
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    others: list[Any] = []
    out: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            others.append(block)
        elif isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            calls.append(cf.tool_call(use.get("toolUseId"), use.get("name"), use.get("input")))
        elif isinstance(block.get("toolResult"), dict):
            result = block["toolResult"]
            text = _tool_result(result.get("content"))
            out.append(cf.message("tool", text, tool_call_id=result.get("toolUseId")))
        elif not any(key in block for key in _UNSHOWN):
            others.append(block)
    if texts or calls or others or not out:
        text = "\n".join(texts) if texts else None
        body: Any = text
        if others:  # images, documents…: kept whole, as a snapshot
            body = snapshot([*([{"text": text}] if text else []), *others])
        out.append(cf.message(role, body, calls))
    return out


def _tool_result(content: Any) -> Any:
    """A tool result as text when it is only text and JSON blocks (JSON as JSON text)."""
    if not isinstance(content, (list, tuple)):
        return cf.text_content(content)
    parts = []
    for block in content:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif isinstance(block, dict) and "json" in block:
            parts.append(json.dumps(block["json"], ensure_ascii=False, default=repr))
        else:
            return snapshot(list(content))
    return "\n".join(parts)


def _converse_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    usage = out.get("usage")
    attributes = _converse_usage(usage if isinstance(usage, dict) else {})
    attributes[cf.FINISH_REASON] = out.get("stopReason")
    if request.messages is not None:
        message = cf.get(out, "output", "message")
        message = message if isinstance(message, dict) else {}
        reply = _converse_message(message.get("role") or "assistant", message.get("content") or [])
        attributes[cf.CHAT_MESSAGES] = [*request.messages, *reply]
    put_attributes(span, attributes)  # built from ``out`` into fresh containers


def _converse_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Converse's counts (and Nova's ``…TokenCount`` spelling of the cache ones)."""
    read = usage.get("cacheReadInputTokens", usage.get("cacheReadInputTokenCount"))
    write = usage.get("cacheWriteInputTokens", usage.get("cacheWriteInputTokenCount"))
    prompt = usage.get("inputTokens")
    if isinstance(prompt, int):
        prompt += (read if isinstance(read, int) else 0) + (write if isinstance(write, int) else 0)
    return cf.token_usage(
        prompt,
        usage.get("outputTokens"),
        cached_input_tokens=read,
        cache_creation_input_tokens=write,
    )


class _Block:
    """One content block of a streamed message, from its deltas."""

    __slots__ = ("json", "reasoning", "signature", "text", "tool")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.json: list[str] = []
        self.reasoning: list[str] = []
        self.signature: Any = None
        self.tool: dict[str, Any] | None = None

    def add(self, delta: dict[str, Any]) -> None:
        text = delta.get("text")
        if text is not None:
            self.text.append(text)
        elif isinstance(delta.get("toolUse"), dict):
            self.json.append(delta["toolUse"].get("input") or "")
        elif isinstance(delta.get("reasoningContent"), dict):
            reasoning = delta["reasoningContent"]
            if reasoning.get("text") is not None:
                self.reasoning.append(reasoning["text"])
            if reasoning.get("signature") is not None:
                self.signature = reasoning["signature"]

    def content(self) -> dict[str, Any]:
        if self.tool is not None:
            raw = "".join(self.json)
            try:
                arguments: Any = json.loads(raw) if raw else {}
            except ValueError:
                arguments = raw  # cut off mid-stream
            return {"toolUse": {**self.tool, "input": arguments}}
        if self.reasoning and not self.text:
            text = {"text": "".join(self.reasoning), "signature": self.signature}
            return {"reasoningContent": {"reasoningText": text}}
        return {"text": "".join(self.text)}


class _ConverseStream:
    """A ConverseStream's events (or Amazon Nova's native stream chunks, the same events)
    reassembled as a Converse response."""

    __slots__ = ("blocks", "metadata", "request", "role", "stop")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.role = "assistant"
        self.blocks: dict[int, _Block] = {}
        self.stop: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}

    def add(self, event: dict[str, Any]) -> bool:
        for kind, body in event.items():  # one key per event (Nova's last chunk: two)
            if not isinstance(body, dict):
                continue
            if kind == "contentBlockDelta":
                self._block(body).add(body.get("delta") or {})
            elif kind == "contentBlockStart":
                tool = cf.get(body, "start", "toolUse")
                if isinstance(tool, dict):
                    self._block(body).tool = {
                        "toolUseId": tool.get("toolUseId"),
                        "name": tool.get("name"),
                    }
            elif kind == "messageStart":
                self.role = body.get("role") or self.role
            elif kind == "messageStop":
                self.stop = body
            elif kind == "metadata":
                self.metadata = body
        return True

    def _block(self, body: dict[str, Any]) -> _Block:
        index = body.get("contentBlockIndex") or 0
        block = self.blocks.get(index)
        if block is None:
            block = self.blocks[index] = _Block()
        return block

    def finish(self, span: LiveSpan) -> Any:
        content = [self.blocks[i].content() for i in sorted(self.blocks)]
        out: dict[str, Any] = {
            "output": {"message": {"role": self.role, "content": content}},
            "stopReason": self.stop.get("stopReason"),
        }
        if self.stop.get("additionalModelResponseFields") is not None:
            out["additionalModelResponseFields"] = self.stop["additionalModelResponseFields"]
        for key in ("usage", "metrics", "trace"):
            if key in self.metadata:
                out[key] = self.metadata[key]
        _converse_record(span, self.request, out)
        return out


# --- invoke_model: the model families' native bodies --------------------------------------


class _Format:
    """How one family of ``invoke_model`` bodies is read: the span type, the request's
    normalised messages and tools, the response's attributes, the stream accumulator."""

    __slots__ = ("messages", "record", "span_type", "stream", "tools")

    def __init__(
        self,
        span_type: str,
        record: Callable[[LiveSpan, Request, dict[str, Any]], None],
        stream: Callable[[Request], Accumulator],
        messages: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None,
        tools: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.span_type = span_type
        self.record = record
        self.stream = stream
        self.messages = messages
        self.tools = tools


def _invoke_start(request: _Call, span: LiveSpan) -> None:
    inputs = dict(request.kwargs)
    body = request.body
    if body is not None:
        inputs["body"] = body
    span.set_inputs(inputs)
    _set_model(span, request)
    fmt = request.format
    if fmt is None or not isinstance(body, dict):
        return
    if fmt.messages is not None:
        request.messages = fmt.messages(body)
    tools = fmt.tools(body) if fmt.tools is not None else None
    if tools:
        span.set_attribute(cf.CHAT_TOOLS, tools)


def _request_body(raw: Any) -> Any:
    """The JSON request body decoded; None for a file object or a body that is not JSON."""
    if not isinstance(raw, (bytes, bytearray, str)):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _format(model_id: Any, body: Any) -> _Format:
    """The family of an ``invoke_model`` body, by its shape and the ``modelId``."""
    if not isinstance(body, dict):
        return _RAW
    model = model_id.lower().rsplit("/", 1)[-1] if isinstance(model_id, str) else ""
    if "embed" in model:  # amazon.titan-embed-…, cohere.embed-…, …-multimodal-embeddings
        return _EMBEDDING
    messages = body.get("messages")
    if isinstance(messages, list):
        if "anthropic_version" in body or "anthropic." in model:
            return _ANTHROPIC
        if "schemaVersion" in body or "amazon.nova" in model or _converse_shaped(messages):
            return _NOVA
        return _CHAT
    if any(isinstance(body.get(key), str) for key in _PROMPT_KEYS):
        return _PROMPT
    return _RAW


def _converse_shaped(messages: list[Any]) -> bool:
    """Content blocks as ``{"text": …}`` (no ``type``): the Converse / Nova shape."""
    first = messages[0] if messages else None
    content = first.get("content") if isinstance(first, dict) else None
    block = content[0] if isinstance(content, list) and content else None
    return isinstance(block, dict) and "type" not in block


_PROMPT_KEYS = ("prompt", "inputText", "message")  # Llama, Mistral…; Titan Text; Cohere chat


def _prompt_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    for key in _PROMPT_KEYS:
        if isinstance(body.get(key), str):
            return [cf.message("user", body[key])]
    return []


def _chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAI-shaped messages (Mistral Large, gpt-oss, Jamba …)."""
    return [_chat_message(m) for m in body.get("messages") or () if isinstance(m, dict)]


def _chat_message(m: dict[str, Any]) -> dict[str, Any]:
    calls = [
        cf.tool_call(c.get("id"), cf.get(c, "function", "name"), cf.get(c, "function", "arguments"))
        for c in m.get("tool_calls") or ()
        if isinstance(c, dict)
    ]
    return cf.message(
        m.get("role"), cf.text_content(m.get("content")), calls, m.get("tool_call_id")
    )


def _chat_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in body.get("tools") or ():
        spec = entry.get("function") if isinstance(entry, dict) else None
        if isinstance(spec, dict):
            out.append(cf.tool(spec.get("name"), spec.get("description"), spec.get("parameters")))
    return out


# Where the families put their text: a list of results first, then the text in it.
_LIST_KEYS = ("results", "outputs", "generations", "choices")  # Titan; Mistral; Cohere; chat
_TEXT_KEYS = ("generation", "outputText", "completion", "text")  # Llama; Titan; Claude 2; …
_REASON_KEYS = ("stop_reason", "completionReason", "finish_reason")


def _reply_text(out: dict[str, Any]) -> tuple[str | None, Any]:
    """The generated text and finish reason of a response or stream chunk of any family."""
    item = out
    for key in _LIST_KEYS:
        items = out.get(key)
        if isinstance(items, list) and items and isinstance(items[0], dict):
            item = items[0]
            break
    text = next((item[k] for k in _TEXT_KEYS if isinstance(item.get(k), str)), None)
    if text is None:  # OpenAI-shaped choices: a message, or a stream chunk's delta
        content = cf.get(item, "message", "content") or cf.get(item, "delta", "content")
        text = content if isinstance(content, str) else None
    reason = next((item[k] for k in _REASON_KEYS if item.get(k) is not None), None)
    return text, reason


def _text_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    text, reason = _reply_text(out)
    attributes: dict[str, Any] = {}
    if reason is not None:
        attributes[cf.FINISH_REASON] = reason
    if request.messages is not None:
        choices = out.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, dict) else None
        reply = _chat_message(message) if isinstance(message, dict) else None
        reply = reply or cf.message("assistant", text)
        attributes[cf.CHAT_MESSAGES] = [*request.messages, reply]
    put_attributes(span, attributes)


def _no_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    """Embeddings and unknown bodies: the output is the body; usage comes from Bedrock."""


def _header_usage(result: dict[str, Any]) -> tuple[Any, Any] | None:
    """The token counts Bedrock puts in ``invoke_model``'s response headers."""
    headers = cf.get(result, "ResponseMetadata", "HTTPHeaders")
    if not isinstance(headers, dict):
        return None
    inp, out = (headers.get(name) for name in _TOKEN_HEADERS)
    if inp is None and out is None:
        return None
    return _header_count(inp), _header_count(out)


def _header_count(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _usage_fallback(span: LiveSpan, request: _Call) -> None:
    """Bedrock's own token counts, when the body did not carry usage."""
    if request.usage is not None and SpanAttributeKey.TOKEN_USAGE not in span.attributes:
        put_attributes(span, cf.token_usage(*request.usage))


class _AnthropicChunks:
    """Claude's native stream events (dicts) reassembled as a Messages API response."""

    __slots__ = ("blocks", "message", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def add(self, chunk: dict[str, Any]) -> bool:
        kind = chunk.get("type")
        if kind == "content_block_delta":
            block = self.blocks.get(chunk.get("index") or 0)
            delta = chunk.get("delta")
            if block is not None and isinstance(delta, dict):
                for key in ("text", "partial_json", "thinking"):
                    if isinstance(delta.get(key), str):
                        block[1].append(delta[key])
                        break
        elif kind == "content_block_start":
            start = chunk.get("content_block")
            self.blocks[chunk.get("index") or 0] = (dict(start or {}), [])
        elif kind == "message_start":
            message = chunk.get("message")
            self.message = dict(message) if isinstance(message, dict) else {}
            self.message["usage"] = dict(self.message.get("usage") or {})
        elif kind == "message_delta" and self.message is not None:
            self.message.update(chunk.get("delta") or {})
            usage = chunk.get("usage") or {}
            self.message["usage"].update({k: v for k, v in usage.items() if v is not None})
        return True

    def finish(self, span: LiveSpan) -> Any:
        out = dict(self.message or {"type": "message", "role": "assistant"})
        out["content"] = [self._block(*self.blocks[i]) for i in sorted(self.blocks)]
        _anthropic._record(span, self.request, out)
        return out

    @staticmethod
    def _block(block: dict[str, Any], parts: list[str]) -> dict[str, Any]:
        kind, text = block.get("type"), "".join(parts)
        if kind in ("text", "thinking"):
            block[kind] = (block.get(kind) or "") + text
        elif parts:  # tool_use: the input arrives as JSON text
            try:
                block["input"] = json.loads(text)
            except ValueError:
                block["input"] = text
        return block


class _TextChunks:
    """The stream chunks of the other families: their text joined; chunks of unknown shape
    are kept as they came."""

    __slots__ = ("chunks", "reason", "request", "texts")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.texts: list[str] = []
        self.chunks: list[dict[str, Any]] = []
        self.reason: Any = None

    def add(self, chunk: dict[str, Any]) -> bool:
        text, reason = _reply_text(chunk)
        if text is not None:
            self.texts.append(text)
        elif reason is None:
            self.chunks.append(chunk)
        if reason is not None:
            self.reason = reason
        return True

    def finish(self, span: LiveSpan) -> Any:
        if self.chunks and not self.texts:
            return {"chunks": self.chunks}
        out = {"text": "".join(self.texts), "stop_reason": self.reason}
        _text_record(span, self.request, out)
        return out


class _Chunks:
    """``invoke_model_with_response_stream``: each event's ``chunk`` bytes decoded as JSON
    for the family's accumulator; the last one's invocation metrics give the token counts."""

    __slots__ = ("inner", "request")

    def __init__(self, request: _Call, inner: Accumulator) -> None:
        self.request = request
        self.inner = inner

    def add(self, event: dict[str, Any]) -> bool:
        data = cf.get(event, "chunk", "bytes")
        if isinstance(data, (bytes, bytearray)):
            payload = json.loads(data)  # our own object: popping from it changes nothing
            if isinstance(payload, dict):
                metrics = payload.pop(_METRICS, None)
                if isinstance(metrics, dict):
                    counts = (metrics.get("inputTokenCount"), metrics.get("outputTokenCount"))
                    self.request.usage = counts
                self.inner.add(payload)
        return True

    def finish(self, span: LiveSpan) -> Any:
        out = self.inner.finish(span)
        _usage_fallback(span, self.request)
        return out


_ANTHROPIC = _Format(
    SpanType.CHAT_MODEL,
    _anthropic._record,
    _AnthropicChunks,
    lambda body: _anthropic._messages(body.get("system"), body.get("messages")),
    lambda body: _anthropic._tools(body.get("tools")),
)
_NOVA = _Format(
    SpanType.CHAT_MODEL,
    _converse_record,
    _ConverseStream,
    lambda body: _converse_messages(body.get("system"), body.get("messages")),
    lambda body: _converse_tools(body.get("toolConfig")),
)
_CHAT = _Format(SpanType.CHAT_MODEL, _text_record, _TextChunks, _chat_messages, _chat_tools)
_PROMPT = _Format(SpanType.CHAT_MODEL, _text_record, _TextChunks, _prompt_messages)
_EMBEDDING = _Format(SpanType.EMBEDDING, _no_record, _TextChunks)
_RAW = _Format(SpanType.LLM, _no_record, _TextChunks)


def _read_body(span: LiveSpan, request: _Call, result: dict[str, Any]) -> bytes | None:
    """Read ``invoke_model``'s one-shot body and put an equivalent one in its place."""
    from botocore.response import StreamingBody

    body = result.get("body")
    if not isinstance(body, StreamingBody):
        return None
    try:
        data = body.read()
    except BaseException as exc:  # the connection failed: the caller would have seen it
        fail(span, request, exc)
        raise
    result["body"] = StreamingBody(io.BytesIO(data), len(data))
    return data


def _response_body(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(data)} bytes>"


# --- the patched method -------------------------------------------------------------------


class _Operation:
    """One traced Bedrock operation: its span name, request recorder, streamed member."""

    __slots__ = ("invoke", "name", "start", "stream_key")

    def __init__(
        self,
        name: str,
        start: Callable[[_Call, LiveSpan], None],
        invoke: bool,
        stream_key: str | None,
    ) -> None:
        self.name = name
        self.start = start
        self.invoke = invoke
        self.stream_key = stream_key


_OPERATIONS = {
    "Converse": _Operation("bedrock.converse", _converse_start, False, None),
    "ConverseStream": _Operation("bedrock.converse_stream", _converse_start, False, "stream"),
    "InvokeModel": _Operation("bedrock.invoke_model", _invoke_start, True, None),
    "InvokeModelWithResponseStream": _Operation(
        "bedrock.invoke_model_with_response_stream", _invoke_start, True, "body"
    ),
}


def _is_runtime(client: Any) -> bool:
    try:
        return bool(client.meta.service_model.service_name == _SERVICE)
    except AttributeError:
        return False


def _begin(op: _Operation, config: Config, kwargs: dict[str, Any]) -> tuple[Any, _Call] | None:
    """Open the call's span (its type from the body for ``invoke_model``); None when off."""
    span_type, body, fmt = SpanType.CHAT_MODEL, None, None
    if op.invoke:
        try:
            body = _request_body(kwargs.get("body"))
            fmt = _format(kwargs.get("modelId"), body)
        except Exception as exc:
            report(config, "request", exc)
            fmt = _RAW
        span_type = fmt.span_type
    span = begin_span(op.name, span_type, None)
    if span is None:
        return None
    request = _Call(kwargs, body, fmt)
    if isinstance(span, LiveSpan):
        try:
            op.start(request, span)
        except Exception as exc:
            report(config, "request", exc)
    return span, request


def _complete(op: _Operation, config: Config, span: Any, request: _Call, result: Any) -> Any:
    """Record the response; a stream is proxied and its span ends with it."""
    if not isinstance(span, LiveSpan) or not isinstance(result, dict):
        end_span(span)
        return result
    if op.stream_key is not None and result.get(op.stream_key) is not None:
        try:
            fmt = request.format
            acc: Accumulator
            if fmt is None:
                acc = _ConverseStream(request)
            else:
                acc = _Chunks(request, fmt.stream(request))
            result[op.stream_key] = StreamProxy(result[op.stream_key], span, acc, config)
        except Exception as exc:
            report(config, "stream", exc)
            end_span(span)
        return result
    data = _read_body(span, request, result) if op.invoke else None
    outputs: Any = MISSING
    try:
        if op.invoke:
            outputs = None if data is None else _response_body(data)
            request.usage = _header_usage(result)
            if isinstance(outputs, dict) and request.format is not None:
                request.format.record(span, request, outputs)
            _usage_fallback(span, request)
        else:
            outputs = {k: v for k, v in result.items() if k != "ResponseMetadata"}
            _converse_record(span, request, outputs)
    except Exception as exc:
        report(config, "response", exc)
    end_span(span, outputs)
    return result


def _inside_traced_call(config: Config) -> bool:
    """A call made by another traced library that records it itself (litellm), as the
    shared wrapper (``_llm_call``) decides it."""
    outer = _calling.get()
    return outer is not None and (outer is config or getattr(outer, "hides_inner_calls", False))


def _wrap(original: Callable[..., Any], config: Config) -> Callable[..., Any]:
    """The traced ``BaseClient._make_api_call``: Bedrock runtime's model calls get a span."""
    operations = _OPERATIONS

    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        op = operations.get(operation_name)
        if (
            op is None
            or not config.active
            or not RT.enabled
            or type(api_params) is not dict
            or _inside_traced_call(config)
            or not _is_runtime(self)
        ):
            return original(self, operation_name, api_params)
        started = _begin(op, config, api_params)
        if started is None:
            return original(self, operation_name, api_params)
        span, request = started
        token = current_span.set(span)
        calling = _calling.set(config)
        try:
            result = original(self, operation_name, request.kwargs)
        except BaseException as exc:
            _calling.reset(calling)
            current_span.reset(token)
            fail(span, request, exc)
            raise
        _calling.reset(calling)
        current_span.reset(token)
        return _complete(op, config, span, request, result)

    return functools.wraps(original)(_make_api_call)


def _targets(boto3: ModuleType) -> list[Target]:
    import botocore
    from botocore.client import BaseClient

    if not callable(vars(BaseClient).get("_make_api_call")):
        raise InvalidArgumentError(
            f"threadline.bedrock.autolog() cannot trace botocore {botocore.__version__}: "
            "its clients have no BaseClient._make_api_call. Install a supported version "
            f"with: {INTEGRATION.pip_command}"
        )
    return [Target(BaseClient, "_make_api_call", "sync", None, wrap=_wrap)]


INTEGRATION = Integration(
    name="bedrock",
    distribution="boto3",
    minimum_version="1.34.0",
    targets=_targets,
    import_name="boto3",
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every model call of boto3's Bedrock runtime client as a span.

    Args:
        disable: remove the tracing and restore botocore's original method.
        log_traces: False patches nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
