"""Runs: one execution of some code (training, evaluation, a batch job) that traces link to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class RunStatus:
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    ALL = ("RUNNING", "FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class Metric:
    """One logged value of a metric."""

    key: str
    value: float
    timestamp: int
    step: int = 0


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    status: str = RunStatus.RUNNING
    start_time: int | None = None
    end_time: int | None = None
    lifecycle_stage: str = "active"
    parent_run_id: str | None = None


@dataclass(frozen=True)
class RunData:
    """Params, the latest value of each metric, and tags."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData = field(default_factory=RunData)

    def to_dict(self) -> dict[str, Any]:
        return {
            "info": dict(self.info.__dict__),
            "data": {
                "params": dict(self.data.params),
                "metrics": dict(self.data.metrics),
                "tags": dict(self.data.tags),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        return cls(info=RunInfo(**data["info"]), data=RunData(**data.get("data", {})))
