"""Where a trace is written: for now, an experiment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExperimentLocation:
    """Send a trace to the experiment with this id (``"0"`` is the Default experiment)."""

    experiment_id: str

    def __post_init__(self) -> None:
        experiment_id = self.experiment_id
        if isinstance(experiment_id, int) and not isinstance(experiment_id, bool):
            object.__setattr__(self, "experiment_id", str(experiment_id))
        elif not isinstance(experiment_id, str) or not experiment_id.strip():
            raise ValueError(
                f"ExperimentLocation needs a non-empty experiment id string, got {experiment_id!r}."
            )
