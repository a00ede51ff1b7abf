"""``StoredSpan``: a span read from the store, its payloads parsed only when they are read.

A trace of thousands of spans is mostly rendered straight back to JSON (the REST API) or
looked at in part, and parsing every span's inputs, outputs, attributes and events up
front was most of the cost of reading it. A ``StoredSpan`` keeps those four stored texts
and parses one on first access, with exactly what ``Span`` would hold had it been built
from parsed values (``SqlStore`` did that before). ``verbatim_dict`` renders a span for
orjson with the unparsed texts spliced in as they are, where that gives the same JSON.

Users only ever see a ``Span``: ``repr``, ``==``, ``to_dict`` and ``from_dict`` behave as
for one. Private to ``threadline.store`` and the server's trace routes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from threadline import _json as fast_json
from threadline.entities.span import Span, SpanEvent, SpanStatusCode

logger = logging.getLogger(__name__)

__all__ = [
    "ROW_COLUMNS",
    "SUMMARY_COLUMNS",
    "NonFiniteValue",
    "StoredSpan",
    "span_dict",
    "stored_events",
    "stored_value",
]

#: The ``spans`` columns of a span without its payloads (the trace structure's rows).
SUMMARY_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "span_type",
    "status_code",
    "status_message",
    "start_time_ns",
    "end_time_ns",
)
_PAYLOADS = ("inputs", "outputs", "attributes", "events")
#: The ``spans`` columns a ``StoredSpan`` is built from, in the order it unpacks them.
ROW_COLUMNS = SUMMARY_COLUMNS + _PAYLOADS
_STATUS_CODES = frozenset(SpanStatusCode.ALL)


def stored_value(text: str | None) -> Any:
    """Stored JSON text back to its value (text that is not JSON comes back as it is)."""
    return None if text is None else fast_json.stored_value(text)


def stored_attributes(text: str | None) -> dict[str, Any]:
    """Stored attributes as ``Span`` holds them: a fresh dict, ``{}`` for null or empty."""
    value = stored_value(text)
    if not value:
        return {}
    return value if type(value) is dict else dict(value)


def stored_events(text: str | None) -> list[SpanEvent]:
    """Stored events as ``SpanEvent``s; malformed ones are skipped (logged at debug level)."""
    events = []
    for item in stored_value(text) or []:
        try:
            events.append(SpanEvent.from_dict(item))
        except (KeyError, TypeError, ValueError, AttributeError):
            logger.debug("Skipping a malformed stored span event: %r", item)
    return events


class NonFiniteValue(Exception):
    """A span to render verbatim holds a non-finite float (stored as a number beyond the
    double range, such as ``1e400``): render plain values instead (``span_dict``).

    Plain rendering writes it as ``null`` through orjson, or as ``"Infinity"`` when orjson
    refuses the response (an integer beyond 64 bits anywhere in it); verbatim splicing
    hides such integers from orjson, so only plain values keep that outcome unchanged.
    """


_PARSED = object()  # a field's text is gone: its value is in the instance's __dict__


class _Parsed:
    """A payload field parsed from its stored text on first read, like
    ``functools.cached_property``: the value is then kept in the instance's ``__dict__``
    under the field's name, which shadows this (non-data) descriptor, so later reads are
    plain attribute reads and assignments work as on a ``Span``. The text is dropped once
    parsed (a fully read span holds no more than an eagerly built one)."""

    __slots__ = ("_name", "_parse", "_text")

    def __init__(self, text_attribute: str, parse: Callable[[str | None], Any]) -> None:
        self._text = text_attribute
        self._parse = parse
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        state = instance.__dict__
        text = state.get(self._text, _PARSED)
        if text is _PARSED:  # another thread parsed it since this lookup began
            return state[self._name]
        value = state[self._name] = self._parse(text)
        state.pop(self._text, None)  # another thread may have parsed it at the same time
        return value


class StoredSpan(Span):
    """A ``Span`` built from a ``spans`` row (``ROW_COLUMNS``), payloads parsed on first use."""

    # Override the base class's defaults of the same names (read by every Span method).
    _inputs = _Parsed("_inputs_text", stored_value)
    _outputs = _Parsed("_outputs_text", stored_value)
    _attributes = _Parsed("_attributes_text", stored_attributes)
    _events = _Parsed("_events_text", stored_events)

    def __init__(self, row: Sequence[Any]) -> None:
        (
            self._trace_id,
            self._span_id,
            self._parent_id,
            self._name,
            self._span_type,
            code,
            message,
            self._start_time_ns,
            self._end_time_ns,
            self._inputs_text,
            self._outputs_text,
            self._attributes_text,
            self._events_text,
        ) = row
        self._status_code = code if code in _STATUS_CODES else SpanStatusCode.UNSET
        self._status_message = message or ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Span:
        """A plain ``Span`` (what ``Span.from_dict`` gives)."""
        return Span.from_dict(data)

    def __repr__(self) -> str:
        return "Span" + super().__repr__().removeprefix(type(self).__name__)

    def unparsed_text(self, field: str) -> str | None:
        """The stored text of payload ``field`` (``inputs``, ``outputs``, ``attributes`` or
        ``events``) while it has not been parsed yet; ``None`` once it has been read."""
        if field not in _PAYLOADS:
            raise ValueError(f"{field!r} is not a span payload; use one of {_PAYLOADS}.")
        state = self.__dict__
        return None if f"_{field}" in state else state.get(f"_{field}_text")

    def verbatim_dict(self) -> dict[str, Any]:
        """``to_dict()`` for orjson: payload texts not parsed yet are spliced in verbatim
        where that gives the same JSON (``_json.verbatim``); the rest is parsed as usual.

        Events are spliced only when empty: the API shows them normalised by ``SpanEvent``.
        Raises ``NonFiniteValue`` (see there). Needs ``_json.HAVE_FRAGMENTS``. Runs for
        every span the API returns: kept flat.
        """
        state = self.__dict__  # a text is there until its field is parsed
        text = state.get("_inputs_text")
        inputs = None if "_inputs" in state or text is None else _verbatim(text)
        if inputs is None:
            inputs = _finite(self._inputs)
        text = state.get("_outputs_text")
        outputs = None if "_outputs" in state or text is None else _verbatim(text)
        if outputs is None:
            outputs = _finite(self._outputs)
        text = state.get("_attributes_text")
        attributes = None if "_attributes" in state or text is None else _verbatim_object(text)
        if attributes is None:
            attributes = _finite(dict(self._attributes or {}))
        text = state.get("_events_text")
        if "_events" in state or text is None:
            events = _finite([e.to_dict() for e in self._events or ()])
        elif text == "[]":
            events = []
        else:
            events = [e.to_dict() for e in self._events or ()]
            if _verbatim(text) is None:  # strict JSON text holds no non-finite number
                _finite(events)
        return {
            "trace_id": self._trace_id,
            "span_id": self._span_id,
            "parent_id": self._parent_id,
            "name": self._name,
            "span_type": self._span_type,
            "start_time_ns": self._start_time_ns,
            "end_time_ns": self._end_time_ns,
            "status": {"code": self._status_code, "message": self._status_message},
            "inputs": inputs,
            "outputs": outputs,
            "attributes": attributes,
            "events": events,
        }


_verbatim = fast_json.verbatim
_verbatim_object = fast_json.verbatim_object


def _finite(value: Any) -> Any:
    """``value``, unless it holds a non-finite float (``NonFiniteValue``)."""
    if fast_json.has_non_finite(value):
        raise NonFiniteValue
    return value


def span_dict(span: Span, *, verbatim: bool) -> dict[str, Any]:
    """``span.to_dict()``, or with ``verbatim`` (for orjson output only) a stored span's
    ``verbatim_dict()``, which may hold ``orjson.Fragment`` values. With ``verbatim``,
    raises ``NonFiniteValue`` for a span that must be rendered from plain values."""
    if not verbatim:
        return span.to_dict()
    if isinstance(span, StoredSpan):
        return span.verbatim_dict()
    return _finite(span.to_dict())  # e.g. a span the offloading store resolved
