"""What LlamaIndex's instrumentation reports, as threadline spans.

LlamaIndex's dispatcher tells its span handlers when a decorated method starts
(``span_enter``: an id, the parent's id, the instance, the bound arguments), returns
(``span_exit``) or raises (``span_drop``), and its event handlers what happens inside
(LLM chat/completion start and end, embedding, rerank…), each event naming its span.

``Tracer`` turns those into threadline spans:

- one span per public call: private methods (``_retrieve``, ``_get_query_embedding``) and
  a method called by another method of the same object (``chat`` calling ``complete``)
  are folded into the outer call, which receives their events;
- the span type from the object (LLM / CHAT_MODEL, EMBEDDING, RETRIEVER, TOOL, PARSER,
  RERANKER; a workflow or agent run AGENT, its steps CHAIN; anything else CHAIN);
- LLM spans get the model, token usage and the conversation in the chat format; an LLM
  call that returns a stream stays open until LlamaIndex reports the stream's end;
- while an LLM span is current, LLM clients traced by threadline (openai…) do not record
  the same call again: the LlamaIndex span holds the request, the reply and the tokens.
"""

from __future__ import annotations

import threading
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.integrations import _chat_format as cf
from threadline.integrations._framework import KEEP, SpanTable
from threadline.integrations._llm_call import Config, _calling, report
from threadline.integrations.llama_index import _messages as m
from threadline.integrations.llama_index import _streams
from threadline.integrations.llama_index import _values as v
from threadline.integrations.llama_index._record import Record
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import MISSING
from threadline.tracing._runtime import RT
from threadline.tracing._span import LiveSpan

_STEP_TAG = "llamaindex.step.input_event"  # set by workflows on a step's span
_CHAT_METHODS = frozenset({"chat", "achat", "stream_chat", "astream_chat"})
_COMPLETE_METHODS = frozenset({"complete", "acomplete", "stream_complete", "astream_complete"})
# Exceptions LlamaIndex's workflows use for control flow, not failures.
_CONTROL_FLOW = frozenset({"WorkflowDone", "WaitingForEvent"})
_MODEL = SpanAttributeKey.MODEL


class Classes:
    """The LlamaIndex base classes that decide a span's type (imported by ``autolog``)."""

    def __init__(self, **classes: tuple[type, ...]) -> None:
        self.llm = classes.get("llm", ())
        self.embedding = classes.get("embedding", ())
        self.retriever = classes.get("retriever", ())
        self.tool = classes.get("tool", ())
        self.workflow = classes.get("workflow", ())
        self.parser = classes.get("parser", ())
        self.postprocessor = classes.get("postprocessor", ())


class Tracer:
    """LlamaIndex's span and event notifications → threadline spans (module docstring)."""

    def __init__(self, config: Config, classes: Classes) -> None:
        self.config = config
        self.classes = classes
        self.table: SpanTable[Record] = SpanTable(Record, nested=True)
        self._kinds: dict[tuple[type, str], tuple[str, str]] = {}
        self._on_event: dict[type, Any] = {}
        self._streams: list[Record] = []  # LLM calls whose stream is being read
        self._lock = threading.Lock()

    def on(self, event_class: type | None, handler: Any) -> None:
        """Handle events of exactly ``event_class`` with ``handler(record, event, own)``."""
        if event_class is not None:
            self._on_event[event_class] = handler

    # --- spans ------------------------------------------------------------------------------

    def enter(self, fid: str, bound: Any, instance: Any, parent_id: str | None, tags: Any) -> None:
        if not RT.enabled:
            return
        try:
            self._enter(fid, bound, instance, parent_id, tags)
        except Exception as exc:
            report(self.config, "span-start", exc)

    def _enter(self, fid: str, bound: Any, instance: Any, parent_id: str | None, tags: Any) -> None:
        table = self.table
        name = fid.partition("-")[0]
        method = name.rpartition(".")[2]
        parent = table.get(parent_id)
        step = instance is None and bool(tags) and _STEP_TAG in tags
        if parent is not None and not step:
            private = method[:1] == "_" and method[:2] != "__"
            same = instance is not None and parent.instance is instance
            if private or (same and current_span.get() is parent.span):
                table.alias(fid, parent)
                return
        elif method[:1] == "_" and method[:2] != "__" and not step:
            return  # a private method called on its own: its public caller is not traced
        kind, span_type = self._classify(instance, method, step)
        inputs = v.event_inputs(bound) if kind in ("step", "run") else v.arguments(bound)
        if kind == "tool":
            name = _tool_name(instance) or name
        elif kind == "llm" and self._streams:
            outer = self._reading(instance, inputs)
            if outer is not None:
                table.alias(fid, outer)
                return
        if kind == "llm":
            calling: Any = self.config  # the client call it makes is not recorded again
        else:  # a tool run by an LLM call (predict_and_call): its client calls are its own
            calling = None if _calling.get() is self.config else KEEP
        record = table.open(fid, name, span_type, calling=calling)
        if record is None:
            return
        record.instance = instance
        record.kind = kind
        if not isinstance(record.span, LiveSpan):
            return
        span = record.span
        span.set_inputs(inputs)
        if kind == "embedding":
            model = m.model_name(getattr(instance, "model_name", None))
            if model is not None:
                span.attributes[_MODEL] = model

    def exit(self, fid: str, instance: Any, result: Any) -> None:
        record = self.table.get(fid)
        if record is None or record.fid != fid:
            return
        try:
            self._exit(record, result)
        except Exception as exc:
            report(self.config, "span-end", exc)
            self.table.close(record, record.outputs, owned=True)

    def _exit(self, record: Record, result: Any) -> None:
        table = self.table
        kind = record.kind
        if kind == "llm" and record.started and _is_stream(result):
            table.leave(record)
            record.pending = True  # ended by the stream's end event
            with self._lock:
                self._streams.append(record)
            return
        if _streams.is_streaming_response(result):
            table.leave(record)
            _streams.follow(table, self.config, record, result)
            return
        if kind == "retriever":
            docs = v.documents(result)
            if docs is not None:
                table.close(record, docs)  # span processors see Document objects
                return
        if kind == "llm":
            self._put_messages(record)
        # The values of ``_values`` (and an LLM end event's reply) are fresh: ``owned``.
        if kind == "llm" and record.outputs is not MISSING:
            table.close(record, record.outputs, owned=True)
        else:
            table.close(record, v.value(result), owned=True)

    def drop(self, fid: str, err: BaseException | None) -> None:
        record = self.table.get(fid)
        if record is None or record.fid != fid:
            return
        try:
            if record.kind == "llm":
                self._put_messages(record)
            if err is not None and type(err).__name__ in _CONTROL_FLOW:
                err = None
            self.table.close(record, None, exc=err, owned=True)
        except Exception as exc:
            report(self.config, "span-error", exc)

    def _reading(self, instance: Any, inputs: dict[str, Any]) -> Record | None:
        """The streamed call of ``instance`` that this call is part of, if any.

        An async stream may make its request only when read, through another method
        (``CustomLLM.astream_complete`` iterates ``stream_complete``): LlamaIndex then
        reports the inner call as unrelated to the outer one. It is the outer call's
        request when the same object gets the same messages under the same parent span
        while the outer stream is open."""
        parent = current_span.get()
        if not isinstance(parent, LiveSpan):
            return None
        messages = _call_messages(inputs)
        if messages is None:
            return None
        parent_id = parent.span_id
        for record in list(self._streams):
            if (
                record.instance is instance
                and record.messages == messages
                and record.span.parent_id == parent_id
            ):
                return record
        return None

    def _end_stream(self, record: Record, exc: BaseException | None = None) -> None:
        with self._lock:
            if record in self._streams:
                self._streams.remove(record)
        self._put_messages(record)
        outputs = None if exc is not None else record.outputs
        self.table.close(record, outputs, exc=exc, owned=True)

    def _classify(self, instance: Any, method: str, step: bool) -> tuple[str, str]:
        if step:
            return "step", SpanType.CHAIN
        if instance is None:
            return "chain", SpanType.CHAIN
        key = (type(instance), method)
        found = self._kinds.get(key)
        if found is None:
            found = self._kinds[key] = self._kind_of(instance, method)
        return found

    def _kind_of(self, instance: Any, method: str) -> tuple[str, str]:
        c = self.classes
        if isinstance(instance, c.llm):
            if method in _CHAT_METHODS:
                return "llm", SpanType.CHAT_MODEL
            if method in _COMPLETE_METHODS:
                return "llm", SpanType.LLM
            chat = getattr(getattr(instance, "metadata", None), "is_chat_model", False)
            return "llm", SpanType.CHAT_MODEL if chat else SpanType.LLM
        if isinstance(instance, c.embedding):
            return "embedding", SpanType.EMBEDDING
        if isinstance(instance, c.retriever):
            return "retriever", SpanType.RETRIEVER
        if isinstance(instance, c.tool):
            return "tool", SpanType.TOOL
        if isinstance(instance, c.workflow):
            return ("run", SpanType.AGENT) if method == "run" else ("chain", SpanType.CHAIN)
        if isinstance(instance, c.parser):
            return "parser", SpanType.PARSER
        if isinstance(instance, c.postprocessor) and "rerank" in type(instance).__name__.lower():
            return "reranker", SpanType.RERANKER
        return "chain", SpanType.CHAIN

    # --- events -----------------------------------------------------------------------------

    def event(self, event: Any) -> None:
        handler = self._on_event.get(type(event))
        if handler is None:
            return
        fid = event.span_id
        record = self.table.get(fid)
        if record is None or not isinstance(record.span, LiveSpan):
            return
        try:
            handler(record, event, record.fid == fid)
        except Exception as exc:
            report(self.config, "event", exc)

    def chat_start(self, record: Record, event: Any, own: bool) -> None:
        messages = [m.message(msg) for msg in event.messages]
        self._llm_start(record, event, own, messages, {"messages": messages})

    def completion_start(self, record: Record, event: Any, own: bool) -> None:
        prompt = event.prompt
        self._llm_start(record, event, own, [cf.message("user", prompt)], {"prompt": prompt})

    def _llm_start(
        self,
        record: Record,
        event: Any,
        own: bool,
        messages: list[dict[str, Any]],
        inputs: dict[str, Any],
    ) -> None:
        span = record.span
        assert isinstance(span, LiveSpan)
        record.started = True
        extra = event.additional_kwargs or {}
        if own:
            record.own_start = True
            options = {
                k: v.value(x) for k, x in extra.items() if k != "tools" and not v.is_secret(k)
            }
            span.set_inputs({**inputs, **options})
        if record.messages is None:
            record.messages = messages
        attributes = span.attributes
        if _MODEL not in attributes:
            model_dict = event.model_dict or {}
            model = m.model_name(model_dict.get("model") or model_dict.get("model_name"))
            if model is not None:
                attributes[_MODEL] = model
        if extra.get("tools") and cf.CHAT_TOOLS not in attributes:
            attributes[cf.CHAT_TOOLS] = m.tools(extra["tools"])

    def llm_end(self, record: Record, event: Any, own: bool) -> None:
        response = event.response
        if response is None:
            return
        span = record.span
        assert isinstance(span, LiveSpan)
        span.attributes.update(m.usage(response))
        model = m.response_model(response)
        if model is not None:
            span.attributes[_MODEL] = model
        reply = m.reply_message(response)
        if reply is not None:
            record.outputs = reply if m.is_chat_response(response) else reply.get("content")
            record.reply = reply
        if record.pending and (own or not record.own_start):
            self._end_stream(record)

    def exception(self, record: Record, event: Any, own: bool) -> None:
        """An error (or the caller closing it) while a stream was read."""
        if not record.pending or not (own or not record.own_start):
            return
        exc = event.exception
        if isinstance(exc, GeneratorExit):
            assert isinstance(record.span, LiveSpan)
            record.span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] = True
            self._end_stream(record)
        else:
            self._end_stream(record, exc)

    def embedding_start(self, record: Record, event: Any, own: bool) -> None:
        model_dict = event.model_dict or {}
        model = m.model_name(model_dict.get("model_name") or model_dict.get("model"))
        assert isinstance(record.span, LiveSpan)
        if model is not None:
            record.span.attributes[_MODEL] = model

    def rerank_start(self, record: Record, event: Any, own: bool) -> None:
        assert isinstance(record.span, LiveSpan)
        attributes = record.span.attributes
        model = m.model_name(event.model_name)
        if model is not None:
            attributes[_MODEL] = model
        attributes["top_n"] = event.top_n

    def _put_messages(self, record: Record) -> None:
        """The conversation on an LLM span: the input messages and the reply, if any."""
        span = record.span
        if record.messages is None or not isinstance(span, LiveSpan):
            return
        reply = record.reply
        span.attributes[cf.CHAT_MESSAGES] = (
            [*record.messages, reply] if reply is not None else list(record.messages)
        )


def _tool_name(instance: Any) -> str | None:
    metadata = getattr(instance, "metadata", None)
    name = getattr(metadata, "name", None)
    return name if isinstance(name, str) and name else None


def _call_messages(inputs: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The messages an LLM call's recorded arguments send (as its start event gives them)."""
    messages = inputs.get("messages")
    if isinstance(messages, list):
        return messages
    prompt = inputs.get("prompt")
    if prompt is None:
        args = inputs.get("args")
        prompt = args[0] if isinstance(args, list) and args else None
    return [cf.message("user", prompt)] if isinstance(prompt, str) else None


def _is_stream(result: Any) -> bool:
    cls = type(result)
    return hasattr(cls, "__next__") or hasattr(cls, "__anext__")
