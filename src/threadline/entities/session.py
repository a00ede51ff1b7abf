"""Sessions: the traces that share a ``session_id`` (trace metadata), a conversation's turns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from threadline.entities.assessment import FeedbackSummary
from threadline.entities.trace import TraceInfo

__all__ = ["Session"]


@dataclass
class Session:
    """One session of one experiment: its figures and (when loaded) its traces.

    ``first_time_ms`` / ``last_time_ms`` are the start times of its first and last trace;
    ``turns`` counts its traces and ``error_count`` those in state ERROR; tokens and
    ``cost`` (USD, ``None`` when no trace had a known cost) are summed over the traces;
    ``feedback`` summarises the valid feedback of its traces by name. ``traces`` holds the
    traces' summaries in time order (empty in lists that leave them out).
    """

    session_id: str
    experiment_id: str
    user: str | None = None
    first_time_ms: int = 0
    last_time_ms: int = 0
    turns: int = 0
    error_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None
    feedback: dict[str, FeedbackSummary] = field(default_factory=dict)
    traces: list[TraceInfo] = field(default_factory=list)

    @property
    def trace_ids(self) -> list[str]:
        return [info.trace_id for info in self.traces]

    def to_dict(self, include_traces: bool = True) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "experiment_id": self.experiment_id,
            "user": self.user,
            "first_time_ms": self.first_time_ms,
            "last_time_ms": self.last_time_ms,
            "turns": self.turns,
            "error_count": self.error_count,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost": self.cost,
            "feedback": [summary.to_dict() for summary in self.feedback.values()],
            "traces": [info.to_dict() for info in self.traces] if include_traces else [],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        summaries = [FeedbackSummary.from_dict(item) for item in data.get("feedback") or []]
        return cls(
            session_id=data["session_id"],
            experiment_id=str(data["experiment_id"]),
            user=data.get("user"),
            first_time_ms=int(data.get("first_time_ms") or 0),
            last_time_ms=int(data.get("last_time_ms") or 0),
            turns=int(data.get("turns") or 0),
            error_count=int(data.get("error_count") or 0),
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            total_tokens=int(data.get("total_tokens") or 0),
            cost=data.get("cost"),
            feedback={summary.name: summary for summary in summaries},
            traces=[TraceInfo.from_dict(info) for info in data.get("traces") or []],
        )
