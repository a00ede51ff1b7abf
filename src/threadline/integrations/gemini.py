"""``threadline.gemini.autolog()``: trace every Gemini API call made with google-genai.

Patched on the public ``Models`` and ``AsyncModels`` classes (``client.models`` and
``client.aio.models``): ``generate_content``, ``generate_content_stream`` and
``embed_content``. A chat session (``client.chats.create(...).send_message``) sends each
request through ``models.generate_content``, so each turn is one span. A stream is
returned proxied; its span ends when it is read to the end, closed or abandoned.

With automatic function calling (Python functions as tools) one ``generate_content``
call may make several requests: it is one span, the functions run inside it (a traced
function becomes its child) and its usage is that of the last response, as the library
returns it.

Token usage is counted as OpenAI counts it: input is every prompt token
(``promptTokenCount`` plus ``toolUsePromptTokenCount``), output every generated token
(``candidatesTokenCount`` plus ``thoughtsTokenCount``, which Gemini reports apart); the
cached and thinking counts are also recorded on their own. ``config.http_options`` (it
may carry the API key in a header) and the HTTP response headers are never recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.integrations import _chat_format as cf
from threadline.integrations._base import Integration, Target
from threadline.integrations._llm_call import LLMCall, Request, put_attributes
from threadline.integrations._streams import AsyncStreamProxy, StreamProxy
from threadline.tracing._serialize import snapshot
from threadline.tracing._span import LiveSpan

PROVIDER = "gemini"

__all__ = ["INTEGRATION", "autolog"]


# --- plain data ---------------------------------------------------------------------------


# JSON mode: bytes (images, thought signatures) as base64 text, enums as their values;
# what JSON cannot hold (a Python function given as a tool) by its repr. ``fallback`` needs
# pydantic 2.11; before it, such a model is dumped in Python mode (the snapshot reprs it).
_DUMPS: tuple[dict[str, Any], ...] = (
    {"mode": "json", "exclude_none": True, "warnings": False, "fallback": repr},
    {"mode": "json", "exclude_none": True, "warnings": False},
    {"exclude_none": True, "warnings": False},
)


def _dump(obj: Any) -> dict[str, Any] | None:
    """A google-genai model as JSON-like data without its unset fields; None for others."""
    dump = getattr(obj, "model_dump", None)
    if dump is None or isinstance(obj, type):
        return None
    for options in _DUMPS:
        try:
            return dump(**options)
        except Exception:
            continue
    return None  # not a pydantic model after all: kept as an object (its snapshot)


def _plain(value: Any) -> Any:
    """``value`` with google-genai models turned into dicts (fresh containers)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    dumped = _dump(value)
    return value if dumped is None else dumped


def _as_dict(raw: Any) -> dict[str, Any] | None:
    """A part, content or tool as a dict to read (the caller's own dict is not copied)."""
    return raw if isinstance(raw, dict) else _dump(raw)


def _field(data: dict[str, Any], name: str, camel: str) -> Any:
    """A field given in the SDK's snake_case or the REST API's camelCase."""
    value = data.get(name)
    return data.get(camel) if value is None else value


def _response_dump(response: Any) -> dict[str, Any] | None:
    """A response as recorded: no unset fields, no HTTP response headers."""
    out = _dump(response)
    if out is not None:
        out.pop("sdk_http_response", None)
    return out


# --- the request --------------------------------------------------------------------------


def _start(request: Request, span: LiveSpan) -> None:
    kwargs = request.kwargs
    config = kwargs.get("config")
    _set_common(request, span, _config(config))
    tools = _tools(_option(config, "tools"))  # as given: a function stays a function
    if tools:
        span.set_attribute(cf.CHAT_TOOLS, tools)  # holds the caller's schemas: snapshot
    request.messages = _messages(_option(config, "system_instruction"), kwargs.get("contents"))


def _embed_start(request: Request, span: LiveSpan) -> None:
    _set_common(request, span, _config(request.kwargs.get("config")))


# Per-request HTTP options: headers (the API key), base URL, client objects.
_UNRECORDED = frozenset({"http_options", "httpOptions"})


def _set_common(request: Request, span: LiveSpan, config: dict[str, Any]) -> None:
    """Inputs (the arguments as data, ``http_options`` left out), provider and model."""
    kwargs = request.kwargs
    inputs = {k: _plain(v) for k, v in kwargs.items() if k != "config"}
    if config:
        inputs["config"] = {k: v for k, v in config.items() if k not in _UNRECORDED}
    span.set_inputs(inputs)
    model = kwargs.get("model")
    request.model = model if isinstance(model, str) else None
    attributes: dict[str, Any] = {SpanAttributeKey.PROVIDER: PROVIDER}
    if request.model is not None:
        attributes[SpanAttributeKey.MODEL] = request.model
    put_attributes(span, attributes)


def _option(config: Any, name: str) -> Any:
    """One option of a config given as a dict or as a ``GenerateContentConfig``."""
    return config.get(name) if isinstance(config, dict) else getattr(config, name, None)


def _config(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    plain = _plain(config)
    return plain if isinstance(plain, dict) else {"config": plain}


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for raw in tools if isinstance(tools, (list, tuple)) else ():
        tool = _as_dict(raw)
        if tool is None:  # a Python function, called by automatic function calling
            doc = getattr(raw, "__doc__", None)
            name = getattr(raw, "__name__", None) or type(raw).__name__
            out.append(cf.tool(name, doc.strip() if isinstance(doc, str) else None, None))
            continue
        for key, value in tool.items():
            if key in ("function_declarations", "functionDeclarations"):
                out.extend(_declaration(d) for d in value or ())
            elif value is not None:  # a built-in tool: google_search, code_execution…
                out.append(cf.tool(key, None, None))
    return out


def _declaration(raw: Any) -> dict[str, Any]:
    d = _as_dict(raw) or {}
    schema = _field(d, "parameters_json_schema", "parametersJsonSchema")
    if schema is None:
        schema = d.get("parameters")
    return cf.tool(d.get("name"), d.get("description"), schema)


def _messages(system: Any, contents: Any) -> list[dict[str, Any]]:
    out = []
    if system:
        parts = [part for content in _contents(system) for part in content.get("parts") or ()]
        out.extend(_message({"role": "system", "parts": parts}))
    for content in _contents(contents):
        out.extend(_message(content))
    return out


def _contents(contents: Any) -> list[dict[str, Any]]:
    """``contents`` in any form the SDK takes (text, parts, contents, a list of them) as
    contents: consecutive loose parts make one user content, as the SDK sends them."""
    if contents is None:
        return []
    items = contents if isinstance(contents, (list, tuple)) else [contents]
    out: list[dict[str, Any]] = []
    loose: list[Any] = []
    for item in items:
        data = None if isinstance(item, str) else _as_dict(item)
        if data is not None and ("parts" in data or "role" in data):
            if loose:
                out.append({"role": "user", "parts": loose})
                loose = []
            out.append(data)
        else:
            loose.append(item)  # text, a part, or an object the SDK converts (an image…)
    if loose:
        out.append({"role": "user", "parts": loose})
    return out


def _message(content: dict[str, Any]) -> list[dict[str, Any]]:
    """One Gemini content as normalised messages: function responses become ``tool``
    messages, function calls tool calls; thought summaries are left out."""
    role = content.get("role") or "user"
    reply = role == "model"
    parts = content.get("parts") or ()
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    others: list[Any] = []
    out: list[dict[str, Any]] = []
    for raw in parts if isinstance(parts, (list, tuple)) else (parts,):
        part = {"text": raw} if isinstance(raw, str) else _as_dict(raw)
        if part is None:
            others.append(raw)
            continue
        if part.get("thought"):
            continue
        text = part.get("text")
        call = _as_dict(_field(part, "function_call", "functionCall"))
        result = _as_dict(_field(part, "function_response", "functionResponse"))
        if isinstance(text, str):
            texts.append(text)
        elif call is not None:
            calls.append(cf.tool_call(call.get("id"), call.get("name"), call.get("args") or {}))
        elif result is not None:
            tool = cf.message(
                "tool", cf.text_content(result.get("response")), None, result.get("id")
            )
            tool["name"] = result.get("name")
            out.append(tool)
        else:  # inline data, files, code…
            others.append(part)
    if texts or calls or others or not out:
        text = ("" if reply else "\n").join(texts) if texts else None
        body: Any = text
        if others:  # kept whole, as a snapshot
            body = snapshot([*([{"type": "text", "text": text}] if text else []), *others])
        out.append(cf.message("assistant" if reply else role, body, calls))
    return out


# --- the response -------------------------------------------------------------------------


def _record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    attributes = _usage(out.get("usage_metadata"))
    candidates = out.get("candidates") or []
    first = candidates[0] if candidates else {}
    reason = first.get("finish_reason") or cf.get(out, "prompt_feedback", "block_reason")
    if reason is not None:
        attributes[cf.FINISH_REASON] = reason
    if request.messages is not None:
        parts = cf.get(first, "content", "parts") or []
        reply = _message({"role": "model", "parts": parts})
        attributes[cf.CHAT_MESSAGES] = [*request.messages, *reply]
    if request.model is None and isinstance(out.get("model_version"), str):
        attributes[SpanAttributeKey.MODEL] = out["model_version"]
    put_attributes(span, attributes)  # built from ``out``, a fresh dict: no snapshot needed


def _embed_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    usage = out.get("usage_metadata") or {}
    prompt = usage.get("prompt_token_count")
    if prompt is not None:
        put_attributes(span, cf.token_usage(prompt, 0, usage.get("total_token_count")))


def _usage(usage: Any) -> dict[str, Any]:
    if not isinstance(usage, dict):
        return {}
    prompt = usage.get("prompt_token_count")
    candidates = usage.get("candidates_token_count")
    thoughts = usage.get("thoughts_token_count")
    tool_prompt = usage.get("tool_use_prompt_token_count")
    generated = None
    if candidates is not None or thoughts is not None:
        generated = (candidates or 0) + (thoughts or 0)
    return cf.token_usage(
        None if prompt is None else prompt + (tool_prompt or 0),
        generated,
        usage.get("total_token_count"),
        cached_input_tokens=usage.get("cached_content_token_count"),
        reasoning_tokens=thoughts,
    )


class _TextRun:
    """Consecutive streamed text pieces of one kind (answer or thought): one part."""

    __slots__ = ("pieces", "signature", "thought")

    def __init__(self, thought: Any) -> None:
        self.thought = thought
        self.pieces: list[str] = []
        self.signature: Any = None

    def part(self) -> dict[str, Any]:
        part: dict[str, Any] = {"text": "".join(self.pieces)}
        if self.thought:
            part["thought"] = True
        if self.signature is not None:
            part["thought_signature"] = self.signature
        return part


class _Candidate:
    """One candidate of a streamed response, reassembled from its chunks."""

    __slots__ = ("finish_reason", "parts", "role")

    def __init__(self) -> None:
        self.role: Any = "model"
        self.parts: list[_TextRun | dict[str, Any]] = []
        self.finish_reason: Any = None

    def add(self, part: Any) -> None:
        text = part.text
        if isinstance(text, str):
            thought = part.thought
            last = self.parts[-1] if self.parts else None
            if not isinstance(last, _TextRun) or last.thought != thought:
                last = _TextRun(thought)
                self.parts.append(last)
            last.pieces.append(text)
            if getattr(part, "thought_signature", None) is not None:  # newer google-genai
                last.signature = (_dump(part) or {}).get("thought_signature")
        else:  # a function call, inline data…: whole in one chunk
            self.parts.append(_dump(part) or {})

    def output(self, index: int) -> dict[str, Any]:
        parts = [p.part() if isinstance(p, _TextRun) else p for p in self.parts]
        out: dict[str, Any] = {"content": {"parts": parts, "role": self.role}, "index": index}
        if self.finish_reason is not None:
            out["finish_reason"] = getattr(self.finish_reason, "value", self.finish_reason)
        return out


class _Stream:
    """A streamed ``generate_content``: the response assembled from its chunks (text
    concatenated, other parts kept, the last usage and model version)."""

    __slots__ = ("candidates", "feedback", "last", "request", "usage")

    def __init__(self, request: Request, inner: Any) -> None:
        self.request = request
        self.candidates: dict[int, _Candidate] = {}
        self.last: Any = None
        self.usage: Any = None
        self.feedback: Any = None

    def add(self, chunk: Any) -> bool:
        self.last = chunk
        if chunk.usage_metadata is not None:
            self.usage = chunk.usage_metadata
        if chunk.prompt_feedback is not None:
            self.feedback = chunk.prompt_feedback
        for candidate in chunk.candidates or ():
            index = candidate.index or 0
            state = self.candidates.get(index)
            if state is None:
                state = self.candidates[index] = _Candidate()
            content = candidate.content
            if content is not None:
                if content.role:
                    state.role = content.role
                for part in content.parts or ():
                    state.add(part)
            if candidate.finish_reason is not None:
                state.finish_reason = candidate.finish_reason
        return True

    def finish(self, span: LiveSpan) -> Any:
        if self.last is None:  # nothing arrived (the request failed, or was never read)
            if self.request.messages is not None:
                put_attributes(span, {cf.CHAT_MESSAGES: list(self.request.messages)})
            return None
        out: dict[str, Any] = {
            "candidates": [s.output(i) for i, s in sorted(self.candidates.items())]
        }
        for key, value in (
            ("prompt_feedback", _dump(self.feedback)),
            ("usage_metadata", _dump(self.usage)),
            ("model_version", self.last.model_version),
            ("response_id", getattr(self.last, "response_id", None)),  # newer google-genai
        ):
            if value is not None:
                out[key] = value
        _record(span, self.request, out)
        return out


# --- what is patched ----------------------------------------------------------------------


def _is_stream(result: Any) -> bool:
    return isinstance(result, (Iterator, AsyncIterator))


def _targets(genai: ModuleType) -> list[Target]:
    from google.genai.models import AsyncModels, Models

    chat, embedding = SpanType.CHAT_MODEL, SpanType.EMBEDDING
    targets = []
    for owner, kind, proxy in (
        (Models, "sync", StreamProxy),
        (AsyncModels, "async", AsyncStreamProxy),
    ):
        calls = (
            LLMCall("gemini.models.generate_content", chat, _start, _record, dump=_response_dump),
            LLMCall(
                "gemini.models.generate_content_stream",
                chat,
                _start,
                _record,
                _is_stream,
                _Stream,
                proxy,
            ),
            LLMCall(
                "gemini.models.embed_content",
                embedding,
                _embed_start,
                _embed_record,
                dump=_response_dump,
            ),
        )
        for call in calls:
            targets.append(Target(owner, call.name.rsplit(".", 1)[1], kind, call))
    return targets


INTEGRATION = Integration(
    name="gemini",
    distribution="google-genai",
    import_name="google.genai",
    minimum_version="1.0.0",
    targets=_targets,
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every Gemini API call made with google-genai as a span.

    Args:
        disable: remove the tracing and restore the library's original methods.
        log_traces: False patches nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
