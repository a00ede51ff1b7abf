"""Where a trace is written: for now, an experiment."""

from __future__ import annotations


class ExperimentLocation:
    """Send a trace to the experiment with this id (``"0"`` is the Default experiment).

    Immutable. A plain class (not a dataclass) to keep the SDK's import cheap.
    """

    __slots__ = ("experiment_id",)
    experiment_id: str

    def __init__(self, experiment_id: str) -> None:
        if isinstance(experiment_id, int) and not isinstance(experiment_id, bool):
            experiment_id = str(experiment_id)
        elif not isinstance(experiment_id, str) or not experiment_id.strip():
            raise ValueError(
                f"ExperimentLocation needs a non-empty experiment id string, got {experiment_id!r}."
            )
        object.__setattr__(self, "experiment_id", experiment_id)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ExperimentLocation is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExperimentLocation):
            return NotImplemented
        return self.experiment_id == other.experiment_id

    def __hash__(self) -> int:
        return hash(("ExperimentLocation", self.experiment_id))

    def __repr__(self) -> str:
        return f"ExperimentLocation(experiment_id={self.experiment_id!r})"
