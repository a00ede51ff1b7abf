"""``threadline.ollama.autolog()``: trace every Ollama chat, generate and embedding call.

Patched: ``chat``, ``generate``, ``embed`` and ``embeddings`` of ``ollama.Client`` and
``ollama.AsyncClient``, and the module-level functions of the same names
(``ollama.chat(...)``), which are methods of a client made when ollama is imported and so
are not reached through the class. Arguments given by position are recorded by name.

``stream=True`` returns a generator, which is returned proxied: its span ends when the
stream is read to the end, closed or abandoned, with the reply reassembled from its
pieces and the token counts of the last one (``prompt_eval_count`` / ``eval_count``); the
finish reason is Ollama's ``done_reason``. Tool calls come back with their arguments as
an object and are recorded as JSON text, like every provider's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import AsyncGeneratorType, GeneratorType, ModuleType
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.integrations import _chat_format as cf
from threadline.integrations._base import Integration, Target
from threadline.integrations._llm_call import (
    Binder,
    LLMCall,
    Request,
    materialize,
    put_attributes,
    request_inputs,
    to_dict,
)
from threadline.integrations._streams import AsyncStreamProxy, StreamProxy
from threadline.tracing._span import LiveSpan

PROVIDER = "ollama"

__all__ = ["INTEGRATION", "autolog"]


# --- the request --------------------------------------------------------------------------


def _start(request: Request, span: LiveSpan, names: tuple[str, ...] = ()) -> None:
    kwargs = request.kwargs
    materialize(kwargs, names)
    span.set_inputs(request_inputs(kwargs))
    model = kwargs.get("model")
    request.model = model if isinstance(model, str) and model else None
    attributes: dict[str, Any] = {SpanAttributeKey.PROVIDER: PROVIDER}
    if request.model is not None:
        attributes[SpanAttributeKey.MODEL] = request.model
    put_attributes(span, attributes)


def _chat_start(request: Request, span: LiveSpan) -> None:
    _start(request, span, ("messages", "tools"))
    tools = _tools(request.kwargs.get("tools"))
    if tools:
        span.set_attribute(cf.CHAT_TOOLS, tools)  # holds the caller's schemas: snapshot
    messages = request.kwargs.get("messages")
    items = messages if isinstance(messages, (list, tuple)) else ()
    request.messages = [_message(m) for m in items]


def _generate_start(request: Request, span: LiveSpan) -> None:
    _start(request, span, ("images", "context"))


def _embed_start(request: Request, span: LiveSpan) -> None:
    _start(request, span, ("input",))


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for raw in tools if isinstance(tools, (list, tuple)) else ():
        spec = _function_tool(raw) if callable(raw) else _as_dict(raw)
        fn = _as_dict(spec.get("function")) or spec
        out.append(cf.tool(fn.get("name"), fn.get("description"), fn.get("parameters")))
    return out


def _function_tool(function: Callable[..., Any]) -> dict[str, Any]:
    """A Python function given as a tool, described as ollama describes it to the model."""
    try:
        from ollama._utils import convert_function_to_tool

        return _as_dict(convert_function_to_tool(function))
    except Exception:  # ollama reports a bad function itself, when it sends the request
        doc = inspect.getdoc(function) or ""
        name = getattr(function, "__name__", None)
        return {"name": name, "description": doc.split("\n\n")[0] or None, "parameters": None}


def _message(raw: Any) -> dict[str, Any]:
    m = _as_dict(raw)
    calls = []
    for call in m.get("tool_calls") or ():
        c = _as_dict(call)
        fn = _as_dict(c.get("function"))
        calls.append(cf.tool_call(c.get("id"), fn.get("name"), fn.get("arguments")))
    content = m.get("content")
    return cf.message(m.get("role"), content if isinstance(content, str) else None, calls)


def _as_dict(raw: Any) -> dict[str, Any]:
    """A message, tool or tool call as a dict (without the fields left unset)."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, Mapping):
        return dict(raw)
    dump = getattr(raw, "model_dump", None)
    if dump is None or isinstance(raw, type):
        return {}
    result = dump(exclude_none=True, by_alias=True, warnings=False)
    return result if isinstance(result, dict) else {}


# --- the response -------------------------------------------------------------------------


def _common(request: Request, out: dict[str, Any]) -> dict[str, Any]:
    """Token counts, finish reason and model of any response."""
    attributes = cf.token_usage(out.get("prompt_eval_count"), out.get("eval_count"))
    if out.get("done_reason") is not None:
        attributes[cf.FINISH_REASON] = out["done_reason"]
    if request.model is None and isinstance(out.get("model"), str):
        attributes[SpanAttributeKey.MODEL] = out["model"]
    return attributes


def _chat_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    attributes = _common(request, out)
    if request.messages is not None:
        reply = _message(out.get("message") or {"role": "assistant"})
        attributes[cf.CHAT_MESSAGES] = [*request.messages, reply]
    put_attributes(span, attributes)  # built from ``out``, a fresh dict: no snapshot needed


def _record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    put_attributes(span, _common(request, out))


class _Stream:
    """A streamed call: the last piece's fields, with the text of every piece joined."""

    __slots__ = ("calls", "last", "request", "text", "thinking")

    def __init__(self, request: Request, inner: Any) -> None:
        self.request = request
        self.last: Any = None
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.calls: list[Any] = []

    def add(self, piece: Any) -> bool:
        self.last = piece
        self.take(piece)
        return True

    def take(self, piece: Any) -> None:
        """Keep the text of one piece."""
        text = piece.response
        if text:
            self.text.append(text)
        thinking = getattr(piece, "thinking", None)  # ollama 0.5 and later
        if thinking:
            self.thinking.append(thinking)

    def assemble(self, out: dict[str, Any]) -> None:
        out["response"] = "".join(self.text)
        if self.thinking:
            out["thinking"] = "".join(self.thinking)

    def finish(self, span: LiveSpan) -> Any:
        out = to_dict(self.last) or {"model": self.request.model, "done": False}
        self.assemble(out)
        self.record(span, out)
        return out

    def record(self, span: LiveSpan, out: dict[str, Any]) -> None:
        _record(span, self.request, out)


class _ChatStream(_Stream):
    """A streamed chat: the message's content, thinking and tool calls of every piece."""

    __slots__ = ()

    def take(self, piece: Any) -> None:
        message = piece.message
        if message is None:
            return
        content = message.content
        if content:
            self.text.append(content)
        thinking = getattr(message, "thinking", None)
        if thinking:
            self.thinking.append(thinking)
        calls = message.tool_calls
        if calls:
            self.calls.extend(calls)

    def assemble(self, out: dict[str, Any]) -> None:
        message = dict(out.get("message") or {"role": "assistant"})
        message["content"] = "".join(self.text)
        if self.thinking:
            message["thinking"] = "".join(self.thinking)
        if self.calls:
            message["tool_calls"] = [to_dict(call) or {} for call in self.calls]
        out["message"] = message

    def record(self, span: LiveSpan, out: dict[str, Any]) -> None:
        _chat_record(span, self.request, out)


# --- what is patched ----------------------------------------------------------------------


def _binder(function: Callable[..., Any], skip: int) -> Binder:
    """Moves positional arguments to keywords by the parameter names of ``function``;
    ``skip`` leading ones (``self``) stay positional."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD,)
    names = tuple(
        p.name for p in inspect.signature(function).parameters.values() if p.kind in kinds
    )[skip:]

    def bind(
        args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        extra = args[skip:]
        if not extra or len(extra) > len(names) or any(n in kwargs for n in names[: len(extra)]):
            return args, kwargs  # nothing to move, or a call that fails as it would untraced
        return args[:skip], {**dict(zip(names, extra)), **kwargs}

    return bind


def _is_stream(result: Any) -> bool:
    return isinstance(result, (GeneratorType, AsyncGeneratorType))


# method -> (span type, start, record, stream accumulator or None)
_SPECS: dict[str, tuple[str, Any, Any, Any]] = {
    "chat": (SpanType.CHAT_MODEL, _chat_start, _chat_record, _ChatStream),
    "generate": (SpanType.LLM, _generate_start, _record, _Stream),
    "embed": (SpanType.EMBEDDING, _embed_start, _record, None),
    "embeddings": (SpanType.EMBEDDING, _start, _record, None),
}


def _call(method: str, function: Callable[..., Any], skip: int, proxy: Any) -> LLMCall:
    span_type, start, record, acc = _SPECS[method]
    return LLMCall(
        f"ollama.{method}",
        span_type,
        start,
        record,
        _is_stream if acc is not None else None,
        acc,
        proxy if acc is not None else None,
        bind=_binder(function, skip),
    )


def _targets(ollama: ModuleType) -> list[Target]:
    targets = []
    for owner, kind, proxy in (
        (ollama.Client, "sync", StreamProxy),
        (ollama.AsyncClient, "async", AsyncStreamProxy),
    ):
        for method in _SPECS:
            function = getattr(owner, method, None)
            if function is not None:
                targets.append(Target(owner, method, kind, _call(method, function, 1, proxy)))
    for method in _SPECS:  # ``ollama.chat``: a method of the default client, bound at import
        function = getattr(ollama, method, None)
        if callable(function):
            targets.append(Target(ollama, method, "sync", _call(method, function, 0, StreamProxy)))
    return targets


INTEGRATION = Integration(
    name="ollama", distribution="ollama", minimum_version="0.4.0", targets=_targets
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every Ollama chat, generate and embedding call as a span.

    Args:
        disable: remove the tracing and restore the library's original methods.
        log_traces: False patches nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
