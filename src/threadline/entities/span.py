"""Spans: the unit of a trace, modelled on OpenTelemetry's span plus a type, inputs and outputs.

``Span`` is the read side (what ``get_trace`` returns and what span processors receive);
the live span used while code runs subclasses it in ``threadline.tracing._span``.
"""

from __future__ import annotations

import time

from threadline.entities.keys import SpanAttributeKey

TYPE_CHECKING = False  # avoids importing typing at runtime (import time matters for the SDK)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Span",
    "SpanAttributeKey",
    "SpanEvent",
    "SpanStatus",
    "SpanStatusCode",
    "SpanType",
]


class SpanType:
    """Well-known span types. Any string is accepted as a span type; these are the usual ones."""

    LLM = "LLM"
    CHAT_MODEL = "CHAT_MODEL"
    CHAIN = "CHAIN"
    AGENT = "AGENT"
    TOOL = "TOOL"
    RETRIEVER = "RETRIEVER"
    RETRIEVAL = "RETRIEVER"  # alias used by the FAQ's masking example
    EMBEDDING = "EMBEDDING"
    RERANKER = "RERANKER"
    PARSER = "PARSER"
    MEMORY = "MEMORY"
    UNKNOWN = "UNKNOWN"


class SpanStatusCode:
    """Status codes of a span, as in OpenTelemetry."""

    UNSET = "UNSET"
    OK = "OK"
    ERROR = "ERROR"

    ALL = ("UNSET", "OK", "ERROR")


class SpanStatus:
    """A span's status: a code (``OK``, ``ERROR`` or ``UNSET``) and an optional message.

    A plain immutable class rather than a dataclass: ``dataclasses`` costs milliseconds
    at import, and this module is on the SDK's import path.
    """

    __slots__ = ("description", "status_code")
    status_code: str
    description: str

    def __init__(self, status_code: str = SpanStatusCode.UNSET, description: str = "") -> None:
        if status_code not in SpanStatusCode.ALL:
            raise ValueError(
                f"Invalid span status {status_code!r}: use one of 'OK', 'ERROR', 'UNSET'."
            )
        object.__setattr__(self, "status_code", status_code)
        object.__setattr__(self, "description", description)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SpanStatus is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpanStatus):
            return NotImplemented
        return (self.status_code, self.description) == (other.status_code, other.description)

    def __hash__(self) -> int:
        return hash((self.status_code, self.description))

    def __repr__(self) -> str:
        return f"SpanStatus(status_code={self.status_code!r}, description={self.description!r})"


class SpanEvent:
    """Something that happened at a point in a span's life (an exception, a retry, a chunk)."""

    __slots__ = ("attributes", "name", "timestamp_ns")
    name: str
    timestamp_ns: int
    attributes: dict[str, Any]

    def __init__(
        self, name: str, timestamp_ns: int | None = None, attributes: dict[str, Any] | None = None
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(
            self, "timestamp_ns", time.time_ns() if timestamp_ns is None else timestamp_ns
        )
        object.__setattr__(self, "attributes", dict(attributes) if attributes else {})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SpanEvent is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpanEvent):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"SpanEvent(name={self.name!r}, timestamp_ns={self.timestamp_ns!r}, "
            f"attributes={self.attributes!r})"
        )

    @classmethod
    def from_exception(cls, exc: BaseException) -> SpanEvent:
        """The ``exception`` event for ``exc``: its type, message and stack trace."""
        import traceback

        return cls(
            name="exception",
            attributes={
                "exception.type": type(exc).__name__,
                "exception.message": str(exc),
                "exception.stacktrace": "".join(
                    traceback.format_exception(type(exc), exc, exc.__traceback__)
                ),
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "timestamp_ns": self.timestamp_ns, "attributes": self.attributes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpanEvent:
        return cls(
            name=data["name"],
            timestamp_ns=int(data["timestamp_ns"]),
            attributes=dict(data.get("attributes") or {}),
        )


class Span:
    """A finished (or stored) span. Values are read through properties.

    Optional fields have class-level defaults so the live subclass, created for every
    traced call, only writes the fields it has (no ``__slots__`` for that reason).
    """

    _parent_id: str | None = None
    _end_time_ns: int | None = None
    _status_code: str = SpanStatusCode.UNSET
    _status_message: str = ""
    _inputs: Any = None
    _outputs: Any = None
    _attributes: dict[str, Any] | None = None
    _events: list[SpanEvent] | None = None

    def __init__(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent_id: str | None,
        name: str,
        span_type: str = SpanType.UNKNOWN,
        start_time_ns: int,
        end_time_ns: int | None,
        status: SpanStatus | None = None,
        inputs: Any = None,
        outputs: Any = None,
        attributes: dict[str, Any] | None = None,
        events: list[SpanEvent] | None = None,
    ) -> None:
        self._trace_id = trace_id
        self._span_id = span_id
        self._parent_id = parent_id
        self._name = name
        self._span_type = span_type
        self._start_time_ns = start_time_ns
        self._end_time_ns = end_time_ns
        status = status or SpanStatus()
        self._status_code = status.status_code
        self._status_message = status.description
        self._inputs = inputs
        self._outputs = outputs
        self._attributes = dict(attributes) if attributes else {}
        self._events = list(events) if events else []

    trace_id = property(lambda self: self._trace_id, doc="The ``tr-…`` id of the trace.")
    span_id = property(lambda self: self._span_id, doc="16 hex digits (64-bit id).")
    parent_id = property(lambda self: self._parent_id, doc="Parent span id; ``None`` on root.")
    name = property(lambda self: self._name)
    span_type = property(lambda self: self._span_type)
    start_time_ns = property(lambda self: self._start_time_ns)
    end_time_ns = property(lambda self: self._end_time_ns)
    inputs = property(lambda self: self._inputs)
    outputs = property(lambda self: self._outputs)

    @property
    def attributes(self) -> dict[str, Any]:
        if self._attributes is None:
            self._attributes = {}
        return self._attributes

    @property
    def events(self) -> list[SpanEvent]:
        if self._events is None:
            self._events = []
        return self._events

    @property
    def status(self) -> SpanStatus:
        return SpanStatus(self._status_code, self._status_message)

    @property
    def duration_ns(self) -> int | None:
        """Wall time of the span, or ``None`` while it is open."""
        if self._end_time_ns is None:
            return None
        return self._end_time_ns - self._start_time_ns

    def get_attribute(self, key: str, default: Any = None) -> Any:
        return self._attributes.get(key, default) if self._attributes else default

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``from_dict`` reverses it."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self._name,
            "span_type": self._span_type,
            "start_time_ns": self._start_time_ns,
            "end_time_ns": self._end_time_ns,
            "status": {"code": self._status_code, "message": self._status_message},
            "inputs": self._inputs,
            "outputs": self._outputs,
            "attributes": dict(self._attributes or {}),
            "events": [e.to_dict() for e in self._events or ()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Span:
        status = data.get("status") or {}
        end = data.get("end_time_ns")
        return cls(
            trace_id=data["trace_id"],
            span_id=data["span_id"],
            parent_id=data.get("parent_id"),
            name=data["name"],
            span_type=data.get("span_type") or SpanType.UNKNOWN,
            start_time_ns=int(data["start_time_ns"]),
            end_time_ns=None if end is None else int(end),
            status=SpanStatus(status.get("code", SpanStatusCode.UNSET), status.get("message", "")),
            inputs=data.get("inputs"),
            outputs=data.get("outputs"),
            attributes=data.get("attributes") or {},
            events=[SpanEvent.from_dict(e) for e in data.get("events") or []],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Span):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self._name!r}, span_type={self._span_type!r}, "
            f"span_id={self.span_id!r}, parent_id={self.parent_id!r}, "
            f"status={self._status_code!r})"
        )
