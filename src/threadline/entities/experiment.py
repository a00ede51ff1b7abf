"""Experiments group traces and runs; ``"0"`` (``Default``) always exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from threadline.entities.keys import DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME

__all__ = ["DEFAULT_EXPERIMENT_ID", "DEFAULT_EXPERIMENT_NAME", "Experiment", "LifecycleStage"]


class LifecycleStage:
    ACTIVE = "active"
    DELETED = "deleted"


@dataclass(frozen=True)
class Experiment:
    """An experiment as stored."""

    experiment_id: str
    name: str
    artifact_location: str = ""
    lifecycle_stage: str = LifecycleStage.ACTIVE
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None
    last_update_time: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "artifact_location": self.artifact_location,
            "lifecycle_stage": self.lifecycle_stage,
            "tags": dict(self.tags),
            "creation_time": self.creation_time,
            "last_update_time": self.last_update_time,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        return cls(
            experiment_id=str(data["experiment_id"]),
            name=data["name"],
            artifact_location=data.get("artifact_location") or "",
            lifecycle_stage=data.get("lifecycle_stage") or LifecycleStage.ACTIVE,
            tags=dict(data.get("tags") or {}),
            creation_time=data.get("creation_time"),
            last_update_time=data.get("last_update_time"),
        )
