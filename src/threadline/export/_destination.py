"""Where exported rows are written. The embedded/direct-database destination is a Store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from threadline.store.base import SpanRow, TraceRow


class Destination(Protocol):
    """Receives batches of rows; raises on failure (the pipeline retries and logs)."""

    def write(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None: ...


class StoreDestination:
    """Writes into the store of the current tracking URI, resolved at write time."""

    def write(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        from threadline._tracking_uri import current_store

        current_store().log_batch(traces, spans)
