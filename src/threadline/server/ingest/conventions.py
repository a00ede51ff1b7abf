"""One OTLP span's attributes in threadline's terms: type, inputs, outputs, model, tokens.

Three vocabularies, in this order: threadline's own keys (``threadline.span_type``,
``threadline.inputs`` … as ``export/_otlp.py`` writes them, mapped back losslessly), then
OpenInference (``openinference.span.kind``, ``input.value``, ``llm.token_count.*``,
``llm.model_name``, ``session.id``, ``user.id``), then OTel GenAI (``gen_ai.operation.name``,
``gen_ai.usage.*``, ``gen_ai.request.model``, ``gen_ai.system``). Pure functions.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from threadline import _json as fast_json
from threadline.entities.keys import SpanAttributeKey, TraceMetadataKey
from threadline.entities.trace import truncate_preview
from threadline.pricing import cost_attribute
from threadline.store.base import SpanRow, TraceRow

MAX_JSON_DEPTH = 64  # deeper payloads are stored as text (the SDK itself stops at 40)
MAX_TOKENS = 10**12  # per span: sums over a trace stay far from 64-bit overflow
JSON_MIME = "application/json"

_SPAN_KEYS = (
    "threadline.span_type",
    "threadline.inputs",
    "threadline.outputs",
    "threadline.events",
)
_TRACE_KEYS = (
    "threadline.experiment_id",
    "threadline.trace.tags",
    "threadline.trace.metadata",
    "threadline.trace.request_preview",
    "threadline.trace.response_preview",
    "threadline.trace.client_request_id",
)
_GENAI_TYPES = {
    "chat": "CHAT_MODEL",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "embeddings": "EMBEDDING",
    "execute_tool": "TOOL",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
}
_MODEL_KEYS = ("llm.model_name", "gen_ai.request.model", "gen_ai.response.model")
_PROVIDER_KEYS = ("gen_ai.system", "gen_ai.provider.name", "llm.provider", "llm.system")
_INPUT_TOKEN_KEYS = (
    "llm.token_count.prompt",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
)
_OUTPUT_TOKEN_KEYS = (
    "llm.token_count.completion",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
)
_TOTAL_TOKEN_KEYS = ("llm.token_count.total", "gen_ai.usage.total_tokens")
# Parts of the input tokens read from / written to the provider's cache (priced apart).
_CACHE_READ_KEYS = (
    "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
)
_CACHE_WRITE_KEYS = (
    "llm.token_count.prompt_details.cache_write",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
)
_METADATA_KEYS = (("session.id", TraceMetadataKey.SESSION_ID), ("user.id", TraceMetadataKey.USER))
_TOKEN_KEYS = frozenset(_INPUT_TOKEN_KEYS + _OUTPUT_TOKEN_KEYS + _TOTAL_TOKEN_KEYS)


@dataclass(frozen=True)
class MappedSpan:
    """A span row; for a root span, its trace row; trace metadata the span revealed."""

    row: SpanRow
    trace: TraceRow | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    """OTLP ``KeyValue``s as a dict (keys without a value are left out)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        if kind in _SCALAR_KINDS:  # the common case, inlined: this runs for every attribute
            out[pair.key] = getattr(value, kind)
        elif kind is not None:
            out[pair.key] = any_value(value)
    return out


_SCALAR_KINDS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a JSON-able value (bytes as base64 text)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        import base64

        return base64.b64encode(value.bytes_value).decode("ascii")
    return None if kind is None else getattr(value, kind)


def map_span(
    *,
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    name: str,
    start_ns: int,
    end_ns: int | None,
    status_code: str,
    status_message: str,
    attributes: dict[str, Any],
    events: list[dict[str, Any]],
) -> MappedSpan:
    """The rows for one span (a trace row too when it is a root: no parent id)."""
    is_root = parent_id is None
    threadline_span = isinstance(attributes.get("threadline.span_type"), str)
    metadata: dict[str, str] = {}
    if threadline_span:
        own, trace_attrs = _split_threadline(attributes, is_root)
        span_type = attributes["threadline.span_type"]
        inputs = _stored_text(attributes.get("threadline.inputs"))
        outputs = _stored_text(attributes.get("threadline.outputs"))
        usage = own.get(SpanAttributeKey.TOKEN_USAGE)
        if isinstance(usage, str) and isinstance(parsed := _json_value(usage), dict):
            own[SpanAttributeKey.TOKEN_USAGE] = usage = parsed
        counts = usage_counts(usage)
        _drop_derived(own, span_type, inputs, outputs, counts)
        recorded = attributes.get("threadline.events")
        events_json = _stored_text(recorded) if isinstance(recorded, str) else _dumps(events)
    else:
        own, trace_attrs = dict(attributes), {}
        span_type = span_type_of(attributes)
        inputs, outputs = _payload(attributes, "input"), _payload(attributes, "output")
        counts = _convention_counts(attributes)
        _add_threadline_keys(own, attributes, counts)
        events_json = bounded_json(_dumps(events)) if events else "[]"
        metadata = {
            meta: str(attributes[key])
            for key, meta in _METADATA_KEYS
            if isinstance(attributes.get(key), (str, int))
        }
    if counts[0] is not None or counts[1] is not None:
        _set_cost(own, compute=not threadline_span)
    row = SpanRow(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=name,
        span_type=span_type[:256],
        start_time_ns=start_ns,
        end_time_ns=end_ns,
        status_code=status_code,
        status_message=status_message,
        inputs_json=inputs,
        outputs_json=outputs,
        attributes_json=bounded_json(_dumps(own)),
        events_json=events_json,
        input_tokens=counts[0],
        output_tokens=counts[1],
        total_tokens=counts[2],
    )
    trace = _root_row(row, trace_attrs) if is_root else None
    if trace is not None and metadata:
        trace = dataclasses.replace(trace, metadata={**metadata, **trace.metadata})
    return MappedSpan(row, trace, metadata)


def _split_threadline(
    attrs: dict[str, Any], is_root: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the span's own attributes, the trace-level ones a threadline root carries)."""
    trace_keys = _TRACE_KEYS if is_root else ()
    own = {k: v for k, v in attrs.items() if k not in _SPAN_KEYS and k not in trace_keys}
    trace = {k: attrs[k] for k in trace_keys if k in attrs}
    metadata = _json_dict(trace.get("threadline.trace.metadata"))
    for key, meta in _METADATA_KEYS:  # the exporter copies these from the metadata
        if key in own and str(own[key]) == metadata.get(meta):
            del own[key]
    return own, trace


def _drop_derived(
    own: dict[str, Any], span_type: str, inputs: str, outputs: str, counts: tuple[Any, ...]
) -> None:
    """Remove the convention keys the exporter derived (same key, same value)."""
    from threadline.export._otlp import otlp_span

    model = own.get(SpanAttributeKey.MODEL)
    probe = SpanRow(
        trace_id="",
        span_id="",
        parent_id=None,
        name="",
        span_type=span_type,
        start_time_ns=0,
        end_time_ns=0,
        status_code="UNSET",
        status_message="",
        inputs_json=inputs,
        outputs_json=outputs,
        attributes_json=_dumps({SpanAttributeKey.MODEL: model} if model else {}),
        events_json="[]",
        input_tokens=counts[0],
        output_tokens=counts[1],
        total_tokens=counts[2],
    )
    for key, value in otlp_span(probe).attributes.items():
        if not key.startswith("threadline.") and own.get(key) == value:
            del own[key]


def _root_row(row: SpanRow, trace_attrs: dict[str, Any]) -> TraceRow:
    duration = None if row.end_time_ns is None else max(0, row.end_time_ns - row.start_time_ns)
    experiment = trace_attrs.get("threadline.experiment_id")
    request = trace_attrs.get("threadline.trace.request_preview")
    response = trace_attrs.get("threadline.trace.response_preview")
    client_request_id = trace_attrs.get("threadline.trace.client_request_id")
    return TraceRow(
        trace_id=row.trace_id,
        experiment_id=str(experiment) if isinstance(experiment, (str, int)) else "",
        request_time=row.start_time_ns // 1_000_000,
        state="ERROR" if row.status_code == "ERROR" else "OK",
        execution_duration=None if duration is None else duration // 1_000_000,
        name=row.name,
        request_preview=request if isinstance(request, str) else preview(row.inputs_json),
        response_preview=response if isinstance(response, str) else preview(row.outputs_json),
        client_request_id=client_request_id if isinstance(client_request_id, str) else None,
        tags=_json_dict(trace_attrs.get("threadline.trace.tags")),
        metadata=_json_dict(trace_attrs.get("threadline.trace.metadata")),
    )


def span_type_of(attrs: dict[str, Any]) -> str:
    """The span type by OpenInference kind, else GenAI operation, else LLM if a model is named."""
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str) and kind.strip():
        return kind.strip().upper()
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation.lower() in _GENAI_TYPES:
        return _GENAI_TYPES[operation.lower()]
    if isinstance(operation, str) or _first_str(attrs, _MODEL_KEYS):
        return "LLM"
    return "UNKNOWN"


def _payload(attrs: dict[str, Any], prefix: str) -> str:
    """JSON text of a span's inputs or outputs (``prefix`` is ``input`` or ``output``)."""
    value = attrs.get(f"{prefix}.value")
    if value is not None:
        return _value_json(value, attrs.get(f"{prefix}.mime_type"))
    messages = attrs.get(f"gen_ai.{prefix}.messages")
    if messages is not None:
        return _value_json(messages, JSON_MIME)
    flat = _flattened_messages(attrs, f"llm.{prefix}_messages.")
    if flat:
        return bounded_json(_dumps(flat))
    legacy = attrs.get("gen_ai.prompt" if prefix == "input" else "gen_ai.completion")
    return "null" if legacy is None else _value_json(legacy, None)


def _value_json(value: Any, mime: Any) -> str:
    """JSON text kept as it is when it is JSON (declared, or looking like it); else a string."""
    if not isinstance(value, str):
        return bounded_json(_dumps(value))
    kind = mime.split(";", 1)[0].strip().lower() if isinstance(mime, str) else ""
    looks_like_json = not kind and value.lstrip()[:1] in ("{", "[")
    if (kind == JSON_MIME or looks_like_json) and _is_json(value):
        return value
    return _dumps(value)


def _flattened_messages(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """OpenInference's ``llm.input_messages.0.message.role = …`` back into a list."""
    messages: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix) :].partition(".")
        if not index.isdigit() or len(index) > 6 or not rest:
            continue
        messages.setdefault(int(index), {})[rest.removeprefix("message.")] = value
    return [messages[i] for i in sorted(messages)]


def _add_threadline_keys(
    own: dict[str, Any], attrs: dict[str, Any], counts: tuple[Any, ...]
) -> None:
    model = _first_str(attrs, _MODEL_KEYS)
    if model:
        own.setdefault(SpanAttributeKey.MODEL, model)
    provider = _first_str(attrs, _PROVIDER_KEYS)
    if provider:
        own.setdefault(SpanAttributeKey.PROVIDER, provider)
    names = ("input_tokens", "output_tokens", "total_tokens")
    usage = {name: count for name, count in zip(names, counts) if count is not None}
    if usage:
        own.setdefault(SpanAttributeKey.TOKEN_USAGE, usage)
        for target, keys in (
            (SpanAttributeKey.CACHED_INPUT_TOKENS, _CACHE_READ_KEYS),
            (SpanAttributeKey.CACHE_CREATION_INPUT_TOKENS, _CACHE_WRITE_KEYS),
        ):
            cached = _first_count(attrs, keys)
            if cached is not None:
                own.setdefault(target, cached)


def _set_cost(own: dict[str, Any], *, compute: bool) -> None:
    """The span's USD cost (``threadline.pricing``): kept (as an object, also when it came as
    JSON text), else computed from its model and tokens. Spans of a threadline SDK are not
    priced here: its exporter priced them already, with the user's own prices."""
    given = own.get(SpanAttributeKey.COST)
    if isinstance(given, str) and isinstance(parsed := _json_value(given), dict):
        own[SpanAttributeKey.COST] = parsed
    elif compute and (cost := cost_attribute(own)) is not None:
        own[SpanAttributeKey.COST] = cost


def _convention_counts(attrs: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    if _TOKEN_KEYS.isdisjoint(attrs):  # most spans of a trace are not LLM calls
        return None, None, None
    return usage_counts(
        {
            "input_tokens": _first_count(attrs, _INPUT_TOKEN_KEYS),
            "output_tokens": _first_count(attrs, _OUTPUT_TOKEN_KEYS),
            "total_tokens": _first_count(attrs, _TOTAL_TOKEN_KEYS),
        }
    )


def usage_counts(usage: Any) -> tuple[int | None, int | None, int | None]:
    """(input, output, total) of a token-usage dict, as the SDK derives them."""
    if not isinstance(usage, dict):
        return None, None, None
    inp, out, total = (
        _count(usage.get(k)) for k in ("input_tokens", "output_tokens", "total_tokens")
    )
    if total is None and (inp is not None or out is not None):
        total = (inp or 0) + (out or 0)
    return inp, out, total


def _first_count(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    return next((c for c in (_count(attrs.get(k)) for k in keys) if c is not None), None)


def _count(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit() and len(value) < 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not 0 <= value <= MAX_TOKENS:  # also False for NaN
        return None
    return int(value)


def _first_str(attrs: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if value and isinstance(value, str):
            return value
    return None


def preview(json_text: str) -> str | None:
    """A request/response preview: a string payload as it is, else its JSON text, truncated."""
    if json_text == "null":
        return None
    value = _json_value(json_text) if json_text.startswith('"') else None
    text = value if isinstance(value, str) else json_text
    return truncate_preview(text)


# --- JSON text -------------------------------------------------------------------------

_INVALID = object()


def _json_value(text: str) -> Any:
    """The parsed value, or ``_INVALID`` (not JSON, or nested deeper than ``MAX_JSON_DEPTH``)."""
    try:
        value = fast_json.loads(text)
    except (ValueError, RecursionError):
        return _INVALID
    return value if _shallow(text, value) else _INVALID


def _is_json(text: str) -> bool:
    """Whether ``text`` is JSON nested at most ``MAX_JSON_DEPTH`` deep (``_json_value``
    without keeping the value)."""
    try:
        value = fast_json.loads_for_check(text)
    except (ValueError, RecursionError):
        return False
    return _shallow(text, value)


def _shallow(text: str, value: Any) -> bool:
    """Whether ``value``, parsed from ``text``, nests at most ``MAX_JSON_DEPTH`` deep."""
    return _few_brackets(text) or depth(value) <= MAX_JSON_DEPTH


def _few_brackets(text: str) -> bool:
    """Too few brackets in ``text`` to nest deeper than ``MAX_JSON_DEPTH``: no walk needed."""
    return text.count("[") + text.count("{") <= MAX_JSON_DEPTH


def _json_dict(value: Any) -> dict[str, str]:
    parsed = _json_value(value) if isinstance(value, str) else None
    if not isinstance(parsed, dict):
        return {}
    return {str(k): v if isinstance(v, str) else _dumps(v) for k, v in parsed.items()}


def _stored_text(value: Any) -> str:
    return bounded_json(value) if isinstance(value, str) else "null"


def bounded_json(text: str) -> str:
    """``text`` unless it is JSON nested deeper than ``MAX_JSON_DEPTH``: then a JSON string of it.

    Reading such a payload back would exhaust the stack; as a string it stays readable.
    """
    if _few_brackets(text):
        return text
    try:
        value = json.loads(text)
    except RecursionError:
        return _dumps(text)
    except ValueError:
        return text  # not JSON: the store keeps and returns it as text
    return text if depth(value) <= MAX_JSON_DEPTH else _dumps(text)


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: never recurses)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


# One encoder: ``json.dumps`` with options builds a new one on every call.
_standard_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr).encode


def _dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (non-ASCII kept, ``repr`` of anything else).

    orjson writes it several times faster, but writes NaN and Infinity as ``null``: output
    with a ``null`` in it (rare in span data) is written again by the standard encoder,
    which keeps them. Both read back to the same values.
    """
    data = fast_json.dumps_bytes(value)
    if data is None or b"null" in data:
        return _standard_dumps(value)
    return data.decode()
