"""The active experiment: where new traces go when no destination overrides it."""

from __future__ import annotations

from threadline._tracking_uri import current_store
from threadline.entities.experiment import Experiment, LifecycleStage
from threadline.errors import InvalidArgumentError
from threadline.tracing._lifecycle import resolve_experiment_id
from threadline.tracing._runtime import RT


def set_experiment(name: str | None = None, *, experiment_id: str | None = None) -> Experiment:
    """Make an experiment active, by name (created if missing) or by id; returns it."""
    if (name is None) == (experiment_id is None):
        raise InvalidArgumentError(
            "set_experiment() takes exactly one of name='...' or experiment_id='...'."
        )
    store = current_store()
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError(f"Experiment name must be a non-empty string, got {name!r}.")
        experiment = store.get_experiment_by_name(name)
        if experiment is None:
            store.create_experiment(name)
            experiment = store.get_experiment_by_name(name)
            assert experiment is not None
    else:
        experiment = store.get_experiment(str(experiment_id))
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        raise InvalidArgumentError(
            f"Experiment {experiment.name!r} (id {experiment.experiment_id}) is deleted. "
            "Restore it with ThreadlineClient().restore_experiment(id) or use another name."
        )
    RT.active_experiment_id = experiment.experiment_id
    return experiment


def get_experiment(experiment_id: str) -> Experiment:
    """The experiment with this id (raises ``ResourceNotFoundError`` if there is none)."""
    return current_store().get_experiment(str(experiment_id))


def get_experiment_by_name(name: str) -> Experiment | None:
    return current_store().get_experiment_by_name(name)


def active_experiment_id() -> str:
    """The experiment a new trace started here would go to."""
    return resolve_experiment_id(None)
