"""Where exported rows are written, and how a spooled batch finds its way back.

A destination has a ``kind`` and, at write time, a ``target`` (the resolved tracking URI,
an OTLP endpoint): both are recorded with a spooled batch so that any later process can
deliver it with ``destination_for(kind, target)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Protocol

from threadline.store.base import SpanRow, TraceRow


class Destination(Protocol):
    """Receives batches of rows; raises on failure (the pipeline retries and spools)."""

    kind: str

    def target(self) -> str:
        """Where a write would go now (recorded with spooled batches)."""
        ...

    def write(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None: ...


class StoreDestination:
    """Writes into a store: the current tracking URI's, or a fixed one (spool replay)."""

    kind = "store"

    def __init__(self, uri: str | None = None) -> None:
        self._uri = uri

    def target(self) -> str:
        if self._uri is not None:
            return self._uri
        from threadline._tracking_uri import get_tracking_uri

        return absolute_uri(get_tracking_uri())

    def write(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        from threadline.store import get_store

        get_store(self.target()).log_batch(traces, spans)


def absolute_uri(uri: str) -> str:
    """``sqlite:///relative.db`` made absolute, so a replay from elsewhere finds the file."""
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = uri[len(prefix) :]
        if path and path != ":memory:" and not os.path.isabs(path):
            return prefix + os.path.abspath(path)
    return uri


def _otlp_factory(target: str) -> Destination:
    from threadline.export._otlp import otlp_destination_for_target

    return otlp_destination_for_target(target)


# kind -> factory(target) for replaying spooled batches (OTLP imported only when needed).
_FACTORIES: dict[str, Callable[[str], Destination]] = {
    "store": StoreDestination,
    "otlp": _otlp_factory,
}


def register_destination_kind(kind: str, factory: Callable[[str], Destination]) -> None:
    _FACTORIES[kind] = factory


def destination_for(kind: str, target: str) -> Destination:
    """The destination a spooled batch was going to."""
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise LookupError(f"unknown destination kind {kind!r} in the spool")
    return factory(target)
