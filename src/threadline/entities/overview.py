"""Overview figures of an experiment: per time bucket (UTC hours or days) and in total."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from threadline.entities.assessment import FeedbackSummary

__all__ = ["BUCKETS", "Overview", "OverviewBucket"]

#: Bucket names and their length in milliseconds; buckets start on UTC hours or days.
BUCKETS = {"hour": 3_600_000, "day": 86_400_000}


@dataclass(frozen=True)
class OverviewBucket:
    """The traces that started in ``[start_time_ms, start_time_ms + bucket)``.

    ``error_rate`` is the share of traces in state ERROR (``None`` without traces); the
    latency percentiles (ms) are over finished traces, within 2.5% of the exact value (see
    ``store/sql/_overview.py``); ``cost`` is in USD; ``feedback`` is by name.
    """

    start_time_ms: int
    trace_count: int = 0
    error_count: int = 0
    error_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    feedback: dict[str, FeedbackSummary] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_time_ms": self.start_time_ms,
            "trace_count": self.trace_count,
            "error_count": self.error_count,
            "error_rate": self.error_rate,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost": self.cost,
            "feedback": [summary.to_dict() for summary in self.feedback.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OverviewBucket:
        summaries = [FeedbackSummary.from_dict(item) for item in data.get("feedback") or []]
        return cls(
            start_time_ms=int(data["start_time_ms"]),
            trace_count=int(data.get("trace_count") or 0),
            error_count=int(data.get("error_count") or 0),
            error_rate=data.get("error_rate"),
            latency_p50_ms=data.get("latency_p50_ms"),
            latency_p95_ms=data.get("latency_p95_ms"),
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            total_tokens=int(data.get("total_tokens") or 0),
            cost=float(data.get("cost") or 0.0),
            feedback={summary.name: summary for summary in summaries},
        )


@dataclass(frozen=True)
class Overview:
    """An experiment's figures over ``[start_time_ms, end_time_ms)``, one bucket per hour or
    day (every bucket present, empty ones zero-filled), and ``totals`` over the whole range."""

    experiment_id: str
    bucket: str
    start_time_ms: int
    end_time_ms: int
    filter_string: str | None
    buckets: list[OverviewBucket]
    totals: OverviewBucket

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "bucket": self.bucket,
            "bucket_ms": BUCKETS[self.bucket],
            "start_time_ms": self.start_time_ms,
            "end_time_ms": self.end_time_ms,
            "filter_string": self.filter_string,
            "buckets": [bucket.to_dict() for bucket in self.buckets],
            "totals": self.totals.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Overview:
        return cls(
            experiment_id=str(data["experiment_id"]),
            bucket=data["bucket"],
            start_time_ms=int(data["start_time_ms"]),
            end_time_ms=int(data["end_time_ms"]),
            filter_string=data.get("filter_string"),
            buckets=[OverviewBucket.from_dict(b) for b in data.get("buckets") or []],
            totals=OverviewBucket.from_dict(data["totals"]),
        )
