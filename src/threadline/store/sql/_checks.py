"""Argument checks of the store's public methods: keys, values, tags, experiment names and
ids, run names and states, deletion arguments. Each raises ``InvalidArgumentError`` naming
the problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from threadline.entities.run import RunStatus
from threadline.errors import InvalidArgumentError
from threadline.store import tables as t
from threadline.store.row_checks import clean_text

MAX_EXPERIMENT_NAME = 256
MAX_SEARCH_EXPERIMENTS = 400


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"A {what} key must be a non-empty string, got {key!r}.")
    if len(key) > t.MAX_KEY_LENGTH:
        raise InvalidArgumentError(
            f"{what.capitalize()} key {key[:40]!r}… is {len(key)} characters long; "
            f"the limit is {t.MAX_KEY_LENGTH}."
        )
    if clean_text(key) != key:
        raise InvalidArgumentError(
            f"{what.capitalize()} key {key!r} holds NUL or invalid characters."
        )
    return key


def _check_value(value: Any, key: str, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"The value of {what} {key!r} must be a string, got {type(value).__name__} {value!r}."
        )
    if len(value) > t.MAX_VALUE_LENGTH:
        raise InvalidArgumentError(
            f"The value of {what} {key!r} is {len(value)} characters long; "
            f"the limit is {t.MAX_VALUE_LENGTH}."
        )
    if clean_text(value) != value:
        raise InvalidArgumentError(f"The value of {what} {key!r} holds NUL or invalid characters.")
    return value


def _check_tag(key: Any, value: Any) -> None:
    _check_value(value, _check_key(key, "tag"), "tag")


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    if not isinstance(tags, dict):
        raise InvalidArgumentError(f"tags must be a dict of strings, got {tags!r}.")
    for key, value in tags.items():
        _check_tag(key, value)
    return dict(tags)


def _check_experiment_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError(f"An experiment name must be a non-empty string, got {name!r}.")
    if len(name) > MAX_EXPERIMENT_NAME or clean_text(name) != name:
        raise InvalidArgumentError(
            f"Experiment name {name[:40]!r} must be at most {MAX_EXPERIMENT_NAME} characters "
            "of ordinary text."
        )


def _check_experiment_id(experiment_id: Any) -> str:
    if isinstance(experiment_id, int) and not isinstance(experiment_id, bool):
        experiment_id = str(experiment_id)
    if not isinstance(experiment_id, str) or not experiment_id.strip():
        raise InvalidArgumentError(
            f"An experiment id must be a non-empty string, got {experiment_id!r}."
        )
    return clean_text(experiment_id)


def _check_run_name(name: Any) -> str:
    if not isinstance(name, str) or len(name) > t.MAX_KEY_LENGTH:
        raise InvalidArgumentError(
            f"A run name must be a string of at most {t.MAX_KEY_LENGTH} characters, got {name!r}."
        )
    return clean_text(name)


def _check_run_status(status: Any) -> str:
    text = str(getattr(status, "value", status)).upper()
    if text not in RunStatus.ALL:
        raise InvalidArgumentError(
            f"Invalid run status {status!r}; use one of {', '.join(RunStatus.ALL)}."
        )
    return text


def _experiment_id_list(experiment_ids: Sequence[str] | str) -> list[str]:
    """Ids to search in (a single id is accepted too); bounded like the filter's IN lists."""
    ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
    if len(ids) > MAX_SEARCH_EXPERIMENTS:
        raise InvalidArgumentError(
            f"Search at most {MAX_SEARCH_EXPERIMENTS} experiments at once, got {len(ids)} ids."
        )
    return [str(i) for i in ids]


def _check_delete_arguments(
    max_timestamp_millis: int | None, max_traces: int | None, trace_ids: Sequence[str] | None
) -> None:
    if (max_timestamp_millis is None) == (trace_ids is None):
        raise InvalidArgumentError(
            "delete_traces needs exactly one of max_timestamp_millis (delete traces at least "
            "that old) or trace_ids (delete these traces), not both and not neither."
        )
    if max_traces is not None and trace_ids is not None:
        raise InvalidArgumentError(
            "max_traces applies only with max_timestamp_millis; do not combine it with trace_ids."
        )
    if max_traces is not None and (type(max_traces) is not int or max_traces < 1):
        raise InvalidArgumentError(f"max_traces must be a positive integer, got {max_traces!r}.")
    if max_timestamp_millis is not None and (
        isinstance(max_timestamp_millis, bool) or not isinstance(max_timestamp_millis, int)
    ):
        raise InvalidArgumentError(
            f"max_timestamp_millis must be an integer (ms since epoch), got {max_timestamp_millis!r}."
        )
    if isinstance(trace_ids, str):
        raise InvalidArgumentError("trace_ids must be a list of trace ids, not a single string.")
