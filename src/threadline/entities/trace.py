"""Traces: a ``TraceInfo`` (searchable summary) and ``TraceData`` (the spans)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from threadline.entities.assessment import Assessment
from threadline.entities.keys import TRACE_ID_PREFIX, TraceMetadataKey
from threadline.entities.span import Span

__all__ = ["TRACE_ID_PREFIX", "Trace", "TraceData", "TraceInfo", "TraceMetadataKey", "TraceState"]


PREVIEW_CHARS = 1000  # default request/response previews: the root's payload, truncated


def truncate_preview(text: str) -> str:
    """A preview of at most ``PREVIEW_CHARS`` characters (``...`` marks a cut)."""
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


class TraceState(str, enum.Enum):
    """Outcome of a trace. ``IN_PROGRESS`` while its root span is open."""

    OK = "OK"
    ERROR = "ERROR"
    IN_PROGRESS = "IN_PROGRESS"

    def __str__(self) -> str:
        return self.value


@dataclass
class TraceInfo:
    """The summary of a trace: what lists and searches show without loading spans.

    ``assessments`` holds the trace's feedback and expectations (overridden ones too, with
    ``valid=False``), oldest first.
    """

    trace_id: str
    experiment_id: str
    request_time: int
    execution_duration: int | None = None
    state: TraceState = TraceState.IN_PROGRESS
    request_preview: str | None = None
    response_preview: str | None = None
    client_request_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    trace_metadata: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    assessments: list[Assessment] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = TraceState(self.state)

    @property
    def run_id(self) -> str | None:
        return self.trace_metadata.get(TraceMetadataKey.RUN_ID)

    @property
    def token_usage(self) -> dict[str, int] | None:
        """Summed token usage of the trace's LLM spans, when any reported it."""
        raw = self.trace_metadata.get(TraceMetadataKey.TOKEN_USAGE)
        return json.loads(raw) if raw else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "experiment_id": self.experiment_id,
            "request_time": self.request_time,
            "execution_duration": self.execution_duration,
            "state": self.state.value,
            "request_preview": self.request_preview,
            "response_preview": self.response_preview,
            "client_request_id": self.client_request_id,
            "tags": dict(self.tags),
            "trace_metadata": dict(self.trace_metadata),
            "name": self.name,
            "assessments": [a.to_dict() for a in self.assessments],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceInfo:
        return cls(
            trace_id=data["trace_id"],
            experiment_id=str(data["experiment_id"]),
            request_time=int(data["request_time"]),
            execution_duration=data.get("execution_duration"),
            state=TraceState(data.get("state") or TraceState.IN_PROGRESS),
            request_preview=data.get("request_preview"),
            response_preview=data.get("response_preview"),
            client_request_id=data.get("client_request_id"),
            tags=dict(data.get("tags") or {}),
            trace_metadata=dict(data.get("trace_metadata") or {}),
            name=data.get("name"),
            assessments=[Assessment.from_dict(a) for a in data.get("assessments") or []],
        )

    @property
    def feedback(self) -> list[Assessment]:
        """The valid feedback (not overridden), oldest first."""
        return [a for a in self.assessments if a.kind == "feedback" and a.valid]

    @property
    def expectations(self) -> dict[str, object]:
        """``{name: value}`` of the valid expectations (the newest one per name)."""
        return {a.name: a.value for a in self.assessments if a.kind == "expectation" and a.valid}


@dataclass
class TraceData:
    """The spans of a trace, parents before children where start times allow."""

    spans: list[Span] = field(default_factory=list)

    @property
    def root_span(self) -> Span | None:
        return next((s for s in self.spans if s.parent_id is None), None)

    @property
    def request(self) -> str | None:
        """The root span's inputs as JSON text."""
        root = self.root_span
        return None if root is None else json.dumps(root.inputs, default=repr)

    @property
    def response(self) -> str | None:
        """The root span's outputs as JSON text."""
        root = self.root_span
        return None if root is None else json.dumps(root.outputs, default=repr)

    def to_dict(self) -> dict[str, Any]:
        return {"spans": [s.to_dict() for s in self.spans]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceData:
        return cls(spans=[Span.from_dict(s) for s in data.get("spans") or []])


@dataclass(repr=False)
class Trace:
    """A whole trace: ``info`` and ``data``."""

    info: TraceInfo
    data: TraceData = field(default_factory=TraceData)

    def to_dict(self) -> dict[str, Any]:
        return {"info": self.info.to_dict(), "data": self.data.to_dict()}

    def to_json(self, pretty: bool = False) -> str:
        return json.dumps(self.to_dict(), indent=2 if pretty else None, default=repr)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        return cls(info=TraceInfo.from_dict(data["info"]), data=TraceData.from_dict(data["data"]))

    @classmethod
    def from_json(cls, text: str) -> Trace:
        return cls.from_dict(json.loads(text))

    def __repr__(self) -> str:
        info = self.info
        return (
            f"Trace(trace_id={info.trace_id!r}, name={info.name!r}, state={info.state.value!r}, "
            f"experiment_id={info.experiment_id!r}, spans={len(self.data.spans)})"
        )

    def _repr_html_(self) -> str | None:
        """Jupyter shows the interactive trace view (``None`` while notebook display is off)."""
        from threadline.tracing.display import trace_html

        return trace_html(self)

    def search_spans(self, *, name: str | None = None, span_type: str | None = None) -> list[Span]:
        """Spans matching a name and/or span type."""
        return [
            s
            for s in self.data.spans
            if (name is None or s.name == name) and (span_type is None or s.span_type == span_type)
        ]
