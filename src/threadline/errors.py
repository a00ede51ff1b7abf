"""Errors raised by threadline.

Hierarchy::

    ThreadlineError
    ├── InvalidArgumentError          a bad argument or setting; the message names it
    │   └── FilterSyntaxError         a bad ``filter_string`` / ``order_by``; ``.token`` is the culprit
    ├── ResourceNotFoundError         no experiment, run or trace with that id
    ├── ResourceAlreadyExistsError    e.g. an experiment name that is taken
    └── StoreError                    the store could not be reached or refused a write

Tracing itself never raises these into user code (see ``tracing/_safety.py``); they come
from explicit calls such as ``search_traces`` or ``set_experiment``.
"""

from __future__ import annotations


class ThreadlineError(Exception):
    """Base class of every error threadline raises on purpose."""


class InvalidArgumentError(ThreadlineError, ValueError):
    """An argument or setting has a value threadline cannot use."""


class FilterSyntaxError(InvalidArgumentError):
    """A filter or order-by string is malformed; ``token`` and ``position`` locate the problem."""

    def __init__(self, message: str, *, token: str | None = None, position: int | None = None):
        super().__init__(message)
        self.token = token
        self.position = position


class ResourceNotFoundError(ThreadlineError, LookupError):
    """The experiment, run or trace does not exist."""


class ResourceAlreadyExistsError(ThreadlineError):
    """Creating something whose unique name or id is already taken."""


class StoreError(ThreadlineError):
    """The trace store failed (unreachable database, failed migration, rejected write)."""
