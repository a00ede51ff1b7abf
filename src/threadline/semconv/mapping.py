"""One span's attributes (and events) in threadline's terms, whatever vocabulary made them.

``map_attributes`` reads OpenInference, the OTel GenAI conventions and OpenLLMetry (see
``vocabulary.py``) and returns a ``SpanMapping``: span type, where the inputs and outputs
are, model, provider, token counts, trace metadata, and the conversation in the chat
format. ``threadline_attributes`` gives the ``threadline.*`` keys that threadline's own
integrations would have written. Used by the server's OTLP ingest and the in-process
OpenTelemetry bridge alike. Pure: no I/O, no OpenTelemetry SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.semconv import messages as msg
from threadline.semconv import vocabulary as v
from threadline.semconv.json_text import (
    INVALID,
    JSON_MIME,
    bounded_json,
    dumps,
    is_json,
    json_value,
    looks_like_json,
)

MAX_TOKENS = 10**12  # per span: sums over a trace stay far from 64-bit overflow
TEXT_MIME = "text/plain"

Counts = tuple["int | None", "int | None", "int | None"]


@dataclass(frozen=True)
class Payload:
    """A span's inputs or outputs as found: the value, how to read a string value
    (``application/json``, ``text/plain``, or ``None``: JSON if it looks like it), and the
    attribute keys it came from."""

    value: Any
    mime: str | None
    keys: tuple[str, ...] = ()

    def json_text(self) -> str:
        """The payload as JSON text: JSON strings kept as they are, other text quoted."""
        value = self.value
        if not isinstance(value, str):
            return bounded_json(dumps(value))
        if self._is_json_text(value) and is_json(value):
            return value
        return dumps(value)

    def python_value(self) -> Any:
        """The payload as a value: JSON strings parsed, other text as it is."""
        value = self.value
        if isinstance(value, str) and self._is_json_text(value):
            parsed = json_value(value)
            if parsed is not INVALID:
                return parsed
        return value

    def _is_json_text(self, value: str) -> bool:
        kind = self.mime.split(";", 1)[0].strip().lower() if isinstance(self.mime, str) else ""
        return kind == JSON_MIME or (not kind and looks_like_json(value))


@dataclass(frozen=True)
class SpanMapping:
    """What the conventions say about one span."""

    span_type: str
    inputs: Payload | None = None
    outputs: Payload | None = None
    model: str | None = None
    provider: str | None = None
    counts: Counts = (None, None, None)  # input, output, total tokens
    cached_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    finish_reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # trace metadata (session, user)
    messages: list[dict[str, Any]] = field(default_factory=list)  # chat format, with the reply
    tools: list[dict[str, Any]] = field(default_factory=list)

    @property
    def payload_keys(self) -> frozenset[str]:
        """The attribute keys the inputs and outputs were read from."""
        keys = (self.inputs.keys if self.inputs else ()) + (
            self.outputs.keys if self.outputs else ()
        )
        return frozenset(keys)


def map_attributes(
    attrs: Mapping[str, Any], events: list[dict[str, Any]] | None = None
) -> SpanMapping:
    """Read a span's attributes and events (``{"name", "timestamp_ns", "attributes"}``)."""
    events = events or []
    span_type = span_type_of(attrs)
    counts = convention_counts(attrs)
    metadata: dict[str, str] = {}
    for key, meta in v.METADATA_KEYS:
        value = attrs.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            metadata.setdefault(meta, str(value))
    messages: list[dict[str, Any]] = []
    if span_type in v.LLM_TYPES:
        messages = conversation(attrs, events)
    tools = msg.tools(attrs) if span_type in v.LLM_TYPES else []
    has_usage = counts[0] is not None or counts[1] is not None
    return SpanMapping(
        span_type=span_type,
        inputs=payload(attrs, "input", events),
        outputs=payload(attrs, "output", events),
        model=first_str(attrs, v.MODEL_KEYS),
        provider=first_str(attrs, v.PROVIDER_KEYS),
        counts=counts,
        cached_input_tokens=first_count(attrs, v.CACHE_READ_KEYS) if has_usage else None,
        cache_creation_input_tokens=first_count(attrs, v.CACHE_WRITE_KEYS) if has_usage else None,
        reasoning_tokens=first_count(attrs, v.REASONING_KEYS) if has_usage else None,
        finish_reason=_finish_reason(attrs),
        metadata=metadata,
        messages=messages,
        tools=tools,
    )


def threadline_attributes(mapping: SpanMapping) -> dict[str, Any]:
    """The ``threadline.*`` attributes for a mapped span: model, provider, token usage,
    cache and reasoning tokens, finish reason, conversation and tools."""
    out: dict[str, Any] = {}
    if mapping.model:
        out[SpanAttributeKey.MODEL] = mapping.model
    if mapping.provider:
        out[SpanAttributeKey.PROVIDER] = mapping.provider
    names = ("input_tokens", "output_tokens", "total_tokens")
    usage = {name: count for name, count in zip(names, mapping.counts) if count is not None}
    if usage:
        out[SpanAttributeKey.TOKEN_USAGE] = usage
        for key, count in (
            (SpanAttributeKey.CACHED_INPUT_TOKENS, mapping.cached_input_tokens),
            (SpanAttributeKey.CACHE_CREATION_INPUT_TOKENS, mapping.cache_creation_input_tokens),
            (SpanAttributeKey.REASONING_TOKENS, mapping.reasoning_tokens),
        ):
            if count is not None:
                out[key] = count
    if mapping.finish_reason:
        out[SpanAttributeKey.FINISH_REASON] = mapping.finish_reason
    if mapping.messages:
        out[SpanAttributeKey.CHAT_MESSAGES] = mapping.messages
    if mapping.tools:
        out[SpanAttributeKey.CHAT_TOOLS] = mapping.tools
    return out


def span_type_of(attrs: Mapping[str, Any]) -> str:
    """OpenInference kind, else OpenLLMetry kind, else GenAI operation, else OpenLLMetry's
    request type, else LLM if a model is named, else UNKNOWN."""
    kind = attrs.get(v.OPENINFERENCE_KIND)
    if isinstance(kind, str) and kind.strip():
        return kind.strip().upper()
    for key, table in (
        (v.TRACELOOP_KIND, v.TRACELOOP_TYPES),
        (v.GENAI_OPERATION, v.GENAI_TYPES),
        (v.LLM_REQUEST_TYPE, v.LLM_REQUEST_TYPES),
    ):
        value = attrs.get(key)
        if isinstance(value, str) and value.strip().lower() in table:
            return table[value.strip().lower()]
    operation = attrs.get(v.GENAI_OPERATION)
    if isinstance(operation, str) or first_str(attrs, v.MODEL_KEYS):
        return "LLM"
    return "UNKNOWN"


def payload(
    attrs: Mapping[str, Any], prefix: str, events: list[dict[str, Any]] | None = None
) -> Payload | None:
    """A span's inputs (``prefix="input"``) or outputs (``"output"``), or ``None``."""
    key = f"{prefix}.value"
    if attrs.get(key) is not None:
        mime_key = f"{prefix}.mime_type"
        return Payload(attrs[key], _str_or_none(attrs.get(mime_key)), (key, mime_key))
    for key, mime in (
        (v.TRACELOOP_ENTITY[prefix], None),
        (v.GENAI_MESSAGES[prefix], JSON_MIME),
        (v.TOOL_CALL[prefix], None),
    ):
        if attrs.get(key) is not None:
            return Payload(attrs[key], mime, (key,))
    for flat_prefix, flatten in (
        (v.OPENINFERENCE_MESSAGES[prefix], msg.flattened_messages),
        (v.OPENLLMETRY_MESSAGES[prefix], msg.flattened_messages),
    ):
        flat = flatten(attrs, flat_prefix)
        if flat:
            keys = tuple(k for k in attrs if k.startswith(flat_prefix))
            return Payload(flat, JSON_MIME, keys)
    legacy = v.LEGACY_GENAI[prefix]
    if attrs.get(legacy) is not None:
        return Payload(attrs[legacy], None, (legacy,))
    from_events = msg.event_messages(events or [], prefix)
    if from_events:
        return Payload(from_events, JSON_MIME)
    return None


def conversation(attrs: Mapping[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The input messages and the reply of an LLM span in the chat format."""
    out = msg.system_instructions(attrs.get(v.SYSTEM_INSTRUCTIONS))
    for direction in ("input", "output"):
        found: list[dict[str, Any]] = []
        genai = attrs.get(v.GENAI_MESSAGES[direction])
        if genai is not None:
            found = msg.normalize(genai)
        for prefix in (v.OPENINFERENCE_MESSAGES[direction], v.OPENLLMETRY_MESSAGES[direction]):
            if not found:
                found = msg.normalize(msg.flattened_messages(attrs, prefix))
        if not found and direction == "input":
            value = attrs.get("input.value")
            parsed = json_value(value) if isinstance(value, str) else value
            if isinstance(parsed, dict) and isinstance(parsed.get("messages"), list):
                found = msg.normalize(parsed["messages"])
        if not found:
            legacy = attrs.get(v.LEGACY_GENAI[direction])
            if isinstance(legacy, str) and looks_like_json(legacy):
                found = msg.normalize(legacy)
        if not found:
            found = msg.event_messages(events, direction)
        if direction == "output":
            found = [{**m, "role": m.get("role") or "assistant"} for m in found]
        out.extend(found)
    return out


def _finish_reason(attrs: Mapping[str, Any]) -> str | None:
    reasons = attrs.get(v.FINISH_REASONS)
    if isinstance(reasons, (list, tuple)) and reasons and isinstance(reasons[0], str):
        return reasons[0]
    if isinstance(reasons, str) and reasons:
        return reasons
    reason = attrs.get("gen_ai.completion.0.finish_reason")
    return reason if isinstance(reason, str) and reason else None


def convention_counts(attrs: Mapping[str, Any]) -> Counts:
    """(input, output, total) tokens named by any vocabulary."""
    if v.TOKEN_KEYS.isdisjoint(attrs):  # most spans of a trace are not LLM calls
        return None, None, None
    return usage_counts(
        {
            "input_tokens": first_count(attrs, v.INPUT_TOKEN_KEYS),
            "output_tokens": first_count(attrs, v.OUTPUT_TOKEN_KEYS),
            "total_tokens": first_count(attrs, v.TOTAL_TOKEN_KEYS),
        }
    )


def usage_counts(usage: Any) -> Counts:
    """(input, output, total) of a token-usage dict, as the SDK derives them."""
    if not isinstance(usage, dict):
        return None, None, None
    inp, out, total = (
        count(usage.get(k)) for k in ("input_tokens", "output_tokens", "total_tokens")
    )
    if total is None and (inp is not None or out is not None):
        total = (inp or 0) + (out or 0)
    return inp, out, total


def first_count(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    return next((c for c in (count(attrs.get(k)) for k in keys) if c is not None), None)


def count(value: Any) -> int | None:
    """A token count: a non-negative number (or digits) up to ``MAX_TOKENS``, else ``None``."""
    if isinstance(value, str) and value.strip().isdigit() and len(value) < 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not 0 <= value <= MAX_TOKENS:  # also False for NaN
        return None
    return int(value)


def first_str(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if value and isinstance(value, str):
            return value
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
