"""``threadline.mistral.autolog()``: trace every Mistral chat completion and embedding call.

Patched on the SDK's public resource classes (``Chat`` and ``Embeddings``, which every
``Mistral`` client shares): ``chat.complete`` / ``complete_async`` (``chat.parse`` goes
through them), ``chat.stream`` / ``stream_async`` and ``embeddings.create`` /
``create_async``. mistralai 2.0 moved the SDK to ``mistralai.client``; both layouts work.

A stream is returned proxied: its span ends when the stream is read to the end, closed,
left in a ``with`` block or abandoned, with the reply reassembled from its chunks and the
token usage that the last chunk carries. Per-call ``http_headers`` (which may hold an
``Authorization`` header) and ``server_url`` are never recorded.
"""

from __future__ import annotations

import importlib
from types import AsyncGeneratorType, GeneratorType, ModuleType
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf
from threadline.integrations._base import Integration, Target
from threadline.integrations._llm_call import LLMCall, Request, materialize, put_attributes, to_dict
from threadline.integrations._streams import AsyncStreamProxy, StreamProxy
from threadline.tracing._serialize import snapshot
from threadline.tracing._span import LiveSpan

PROVIDER = "mistral"
# Per-call transport options, not part of the request: headers may carry credentials.
_UNRECORDED = frozenset({"http_headers", "server_url"})
_SENTINELS = frozenset({"Unset"})  # the SDK's "argument not given" (UNSET)

__all__ = ["INTEGRATION", "autolog"]


# --- the request --------------------------------------------------------------------------


def _given(value: Any) -> bool:
    return type(value).__name__ not in _SENTINELS


def _inputs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in _UNRECORDED and _given(v)}


def _set_model(span: LiveSpan, request: Request) -> None:
    model = request.kwargs.get("model")
    request.model = model if isinstance(model, str) else None
    attributes: dict[str, Any] = {SpanAttributeKey.PROVIDER: PROVIDER}
    if request.model is not None:
        attributes[SpanAttributeKey.MODEL] = request.model
    put_attributes(span, attributes)


def _chat_start(request: Request, span: LiveSpan) -> None:
    kwargs = request.kwargs
    materialize(kwargs, ("messages", "tools"))
    span.set_inputs(_inputs(kwargs))
    _set_model(span, request)
    tools = _tools(kwargs.get("tools"))
    if tools:
        span.set_attribute(cf.CHAT_TOOLS, tools)  # holds the caller's schemas: snapshot
    messages = kwargs.get("messages")
    items = messages if isinstance(messages, (list, tuple)) else ()
    request.messages = [_message(m) for m in items]


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for raw in tools if isinstance(tools, (list, tuple)) else ():
        spec = _as_dict(raw)
        spec = _as_dict(spec.get("function")) or spec
        out.append(cf.tool(spec.get("name"), spec.get("description"), spec.get("parameters")))
    return out


def _message(raw: Any) -> dict[str, Any]:
    m = _as_dict(raw)
    calls = [_tool_call(c) for c in m.get("tool_calls") or ()]
    call_id = m.get("tool_call_id")
    return cf.message(
        m.get("role"),
        _content(m.get("content")),
        calls,
        call_id if isinstance(call_id, str) else None,
    )


def _tool_call(raw: Any) -> dict[str, Any]:
    c = _as_dict(raw)
    fn = _as_dict(c.get("function"))
    call_id = c.get("id")
    return cf.tool_call(None if call_id == "null" else call_id, fn.get("name"), fn.get("arguments"))


def _content(content: Any) -> Any:
    """Text for text-only content; reasoning (``thinking``) parts left out; images and
    other parts kept whole, as a snapshot."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, (list, tuple)):
        return snapshot(content)
    texts: list[str] = []
    others: list[Any] = []
    for raw in content:
        part = _as_dict(raw) if not isinstance(raw, str) else {"type": "text", "text": raw}
        kind = part.get("type")
        if kind == "text":
            texts.append(part.get("text") or "")
        elif kind != "thinking":
            others.append(part)
    text = "".join(texts) if texts else None
    if not others:
        return text
    return snapshot([*([{"type": "text", "text": text}] if text else []), *others])


def _as_dict(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    return (to_dict(raw) or {}) if raw is not None else {}


# --- the response -------------------------------------------------------------------------


def _usage(usage: Any) -> dict[str, Any]:
    if not isinstance(usage, dict):
        return {}
    return cf.token_usage(
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        usage.get("total_tokens"),
        cached_input_tokens=cf.get(usage, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=cf.get(usage, "completion_tokens_details", "reasoning_tokens"),
    )


def _chat_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    attributes = _usage(out.get("usage"))
    choices = out.get("choices") or []
    reply: list[dict[str, Any]] = []
    if choices:
        first = choices[0]
        attributes[cf.FINISH_REASON] = first.get("finish_reason")
        reply = [_message(first.get("message") or {"role": "assistant"})]
    if request.messages is not None:
        attributes[cf.CHAT_MESSAGES] = [*request.messages, *reply]
    _set_response_model(request, out, attributes)
    put_attributes(span, attributes)  # built from ``out``, a fresh dict: no snapshot needed


def _set_response_model(request: Request, out: dict[str, Any], attributes: dict[str, Any]) -> None:
    if request.model is None and isinstance(out.get("model"), str):
        attributes[SpanAttributeKey.MODEL] = out["model"]


class _Choice:
    """The pieces of one choice of a streamed chat completion."""

    __slots__ = ("calls", "finish_reason", "role", "text", "thinking")

    def __init__(self) -> None:
        self.role = "assistant"
        self.text: list[str] = []
        self.thinking: list[Any] = []
        self.calls: list[dict[str, Any]] = []
        self.finish_reason: Any = None

    def add_content(self, content: Any) -> None:
        if isinstance(content, str):
            self.text.append(content)
            return
        for part in content:
            kind = getattr(part, "type", None)
            if kind == "text":
                self.text.append(part.text)
            elif kind == "thinking":
                self.thinking.extend(to_dict(p) or p for p in part.thinking)

    def add_tool_call(self, delta: Any) -> None:
        """Mistral sends each call whole, usually; pieces of one call share its index."""
        call_id = delta.id if delta.id not in (None, "null") else None
        fn = delta.function
        for call in self.calls:
            if call["index"] == delta.index and call_id in (None, call["id"]):
                args = fn.arguments
                if isinstance(args, str) and isinstance(call["function"]["arguments"], str):
                    call["function"]["arguments"] += args
                elif args:
                    call["function"]["arguments"] = args
                if fn.name:
                    call["function"]["name"] = fn.name
                return
        self.calls.append(
            {
                "id": call_id,
                "type": delta.type or "function",
                "function": {"name": fn.name, "arguments": fn.arguments},
                "index": delta.index,
            }
        )

    def message(self) -> dict[str, Any]:
        text = "".join(self.text)
        content: Any = text
        if self.thinking:
            content = [{"type": "thinking", "thinking": list(self.thinking)}]
            if text:
                content.append({"type": "text", "text": text})
        message: dict[str, Any] = {"role": self.role, "content": content}
        if self.calls:
            message["tool_calls"] = [dict(call) for call in self.calls]
        return message


class _ChatStream:
    """A streamed chat completion reassembled from its events (``event.data`` is a chunk)."""

    __slots__ = ("choices", "first", "request", "usage")

    def __init__(self, request: Request, inner: Any) -> None:
        self.request = request
        self.first: Any = None
        self.usage: Any = None
        self.choices: dict[int, _Choice] = {}

    def add(self, event: Any) -> bool:
        chunk = getattr(event, "data", event)
        if self.first is None:
            self.first = chunk
        states = self.choices
        for choice in chunk.choices:
            state = states.get(choice.index)
            if state is None:
                state = states[choice.index] = _Choice()
            delta = choice.delta
            content = delta.content
            if isinstance(content, str):
                if content:
                    state.text.append(content)
            elif content:
                state.add_content(content)
            if isinstance(delta.role, str):
                state.role = delta.role
            calls = delta.tool_calls
            if calls:
                for call in calls:
                    state.add_tool_call(call)
            if choice.finish_reason is not None:
                state.finish_reason = choice.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        return True

    def finish(self, span: LiveSpan) -> Any:
        first = self.first
        out = {
            "id": getattr(first, "id", None),
            "object": "chat.completion",
            "created": getattr(first, "created", None),
            "model": getattr(first, "model", None),
            "choices": [
                {"index": i, "message": s.message(), "finish_reason": s.finish_reason}
                for i, s in sorted(self.choices.items())
            ],
            "usage": to_dict(self.usage),
        }
        _chat_record(span, self.request, out)
        return out


# --- embeddings ---------------------------------------------------------------------------


def _embeddings_start(request: Request, span: LiveSpan) -> None:
    materialize(request.kwargs, ("inputs",))
    span.set_inputs(_inputs(request.kwargs))
    _set_model(span, request)


def _embeddings_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    usage = out.get("usage") or {}
    attributes = cf.token_usage(usage.get("prompt_tokens"), 0, usage.get("total_tokens"))
    _set_response_model(request, out, attributes)
    put_attributes(span, attributes)


# --- what is patched ----------------------------------------------------------------------


def _sdk() -> tuple[ModuleType, ModuleType, ModuleType]:
    """The SDK's chat, embeddings and event-stream modules, under ``mistralai.client``
    (2.0 and later) or ``mistralai`` (1.x)."""
    failure: ImportError | None = None
    for prefix in ("mistralai.client", "mistralai"):
        try:
            chat = importlib.import_module(prefix + ".chat")
        except ImportError as exc:
            failure = failure or exc
            continue
        embeddings = importlib.import_module(prefix + ".embeddings")
        streams = importlib.import_module(prefix + ".utils.eventstreaming")
        return chat, embeddings, streams
    raise InvalidArgumentError(
        "threadline.mistral.autolog() found neither mistralai.client.chat (mistralai 2.0 and "
        "later) nor mistralai.chat (1.x) in the installed mistralai. Reinstall it with: "
        f"{INTEGRATION.pip_command}"
    ) from failure


def _targets(mistralai: ModuleType) -> list[Target]:
    chat, embeddings, streams = _sdk()
    # EventStream objects since 1.2 (plain generators before).
    stream_types: tuple[type, ...] = (GeneratorType, AsyncGeneratorType)
    stream_types += tuple(
        cls
        for cls in (
            getattr(streams, "EventStream", None),
            getattr(streams, "EventStreamAsync", None),
        )
        if isinstance(cls, type)
    )

    def is_stream(result: Any) -> bool:
        return isinstance(result, stream_types)

    targets = []
    for method, kind, proxy in (
        ("complete", "sync", None),
        ("complete_async", "async", None),
        ("stream", "sync", StreamProxy),
        ("stream_async", "async", AsyncStreamProxy),
    ):
        name = "mistral.chat." + method.removesuffix("_async")
        if proxy is None:
            call = LLMCall(name, SpanType.CHAT_MODEL, _chat_start, _chat_record)
        else:
            call = LLMCall(
                name, SpanType.CHAT_MODEL, _chat_start, _chat_record, is_stream, _ChatStream, proxy
            )
        targets.append(Target(chat.Chat, method, kind, call))
    embed = LLMCall(
        "mistral.embeddings.create", SpanType.EMBEDDING, _embeddings_start, _embeddings_record
    )
    targets.append(Target(embeddings.Embeddings, "create", "sync", embed))
    if hasattr(embeddings.Embeddings, "create_async"):
        targets.append(Target(embeddings.Embeddings, "create_async", "async", embed))
    return targets


INTEGRATION = Integration(
    name="mistral",
    import_name="mistralai",
    distribution="mistralai",
    minimum_version="1.0.0",
    targets=_targets,
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every Mistral chat completion and embedding call as a span.

    Args:
        disable: remove the tracing and restore the library's original methods.
        log_traces: False patches nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
