"""Runs: ``with start_run() as run`` links the traces created inside to ``run.info.run_id``.

The active run is context-local (per thread and asyncio task); runs nest.
"""

from __future__ import annotations

import time
from contextvars import Token
from types import TracebackType
from typing import Any

from threadline._tracking_uri import current_store
from threadline.entities.run import Metric, Run, RunStatus
from threadline.errors import InvalidArgumentError
from threadline.tracing import _context
from threadline.tracing._lifecycle import resolve_experiment_id


class ActiveRun:
    """A started run; as a context manager it ends the run (FAILED if an exception escapes)."""

    def __init__(self, run: Run, token: Token[tuple[str, ...]]) -> None:
        self._run = run
        self._token: Token[tuple[str, ...]] | None = token

    @property
    def info(self) -> Any:
        return self._run.info

    @property
    def data(self) -> Any:
        return current_store().get_run(self._run.info.run_id).data

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end(RunStatus.FAILED if exc is not None else RunStatus.FINISHED)

    def end(self, status: str = RunStatus.FINISHED) -> None:
        """Mark the run ended and make its parent (if any) active again."""
        if status not in RunStatus.ALL:
            raise InvalidArgumentError(
                f"Run status must be one of {RunStatus.ALL}, got {status!r}."
            )
        current_store().update_run(
            self._run.info.run_id, status=status, end_time=int(time.time() * 1000)
        )
        _open_runs.pop(self._run.info.run_id, None)
        token, self._token = self._token, None
        if token is not None:
            try:
                _context.active_runs.reset(token)
            except ValueError:  # ended from another context: drop it from this one
                runs = _context.active_runs.get()
                _context.active_runs.set(tuple(r for r in runs if r != self._run.info.run_id))

    def __repr__(self) -> str:
        return f"ActiveRun(run_id={self._run.info.run_id!r}, experiment_id={self._run.info.experiment_id!r})"


_open_runs: dict[str, ActiveRun] = {}


def start_run(
    run_name: str | None = None,
    *,
    experiment_id: str | None = None,
    tags: dict[str, str] | None = None,
    nested: bool = False,
) -> ActiveRun:
    """Start a run in the active experiment (nested under the active run, if any)."""
    del nested  # runs always nest under the active one; accepted for familiarity
    runs = _context.active_runs.get()
    run = current_store().create_run(
        experiment_id=str(experiment_id)
        if experiment_id is not None
        else resolve_experiment_id(None),
        run_name=run_name,
        start_time=int(time.time() * 1000),
        tags={k: str(v) for k, v in (tags or {}).items()},
        parent_run_id=runs[-1] if runs else None,
    )
    token = _context.active_runs.set((*runs, run.info.run_id))
    active = ActiveRun(run, token)
    _open_runs[run.info.run_id] = active
    return active


def active_run() -> Run | None:
    """The innermost active run in this thread/task, or ``None``."""
    runs = _context.active_runs.get()
    return current_store().get_run(runs[-1]) if runs else None


def end_run(status: str = RunStatus.FINISHED) -> None:
    """End the innermost active run."""
    runs = _context.active_runs.get()
    if not runs:
        return
    active = _open_runs.pop(runs[-1], None)
    if active is not None:
        active.end(status)
    else:
        current_store().update_run(runs[-1], status=status, end_time=int(time.time() * 1000))
        _context.active_runs.set(runs[:-1])


def _require_run() -> str:
    runs = _context.active_runs.get()
    if not runs:
        raise InvalidArgumentError(
            "No active run: wrap the code in 'with threadline.start_run():' first."
        )
    return runs[-1]


def log_param(key: str, value: Any) -> None:
    current_store().log_params(_require_run(), {str(key): str(value)})


def log_params(params: dict[str, Any]) -> None:
    current_store().log_params(_require_run(), {str(k): str(v) for k, v in params.items()})


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    log_metrics({key: value}, step=step, timestamp=timestamp)


def log_metrics(
    metrics: dict[str, float], step: int | None = None, timestamp: int | None = None
) -> None:
    now = timestamp if timestamp is not None else int(time.time() * 1000)
    batch = []
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"Metric {key!r} must be a number, got {value!r}.") from None
        batch.append(Metric(str(key), number, now, step or 0))
    current_store().log_metrics(_require_run(), batch)


def set_tag(key: str, value: Any) -> None:
    current_store().set_run_tags(_require_run(), {str(key): str(value)})


def set_tags(tags: dict[str, Any]) -> None:
    current_store().set_run_tags(_require_run(), {str(k): str(v) for k, v in tags.items()})
