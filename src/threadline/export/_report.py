"""The flush report: what the export pipeline did with the spans it was given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from threadline.export._channel import Channel, DeliveryStats

if TYPE_CHECKING:
    from threadline.export._replay import SpoolReplayer


@dataclass(frozen=True)
class FlushReport:
    """What the pipeline did since the process started, and what still waits (spans).

    ``pending_spans`` are queued or retried in memory; ``spool_pending_spans`` wait in the
    on-disk spool for this process's destinations (replayed when they answer, or with
    ``threadline spool replay``). ``dropped_spans`` were refused by a destination or did
    not fit in the spool; ``reasons`` counts spans per destination and reason.
    """

    exported_spans: int
    exported_traces: int
    spooled_spans: int
    replayed_spans: int
    dropped_spans: int
    pending_spans: int
    reasons: dict[str, int] = field(default_factory=dict)
    destinations: dict[str, DeliveryStats] = field(default_factory=dict)
    spool_pending_spans: int = 0

    @property
    def ok(self) -> bool:
        """Everything finished so far reached its destination (nothing waits or was lost)."""
        return self.dropped_spans == 0 and self.pending_spans == 0 and not self.spool_pending_spans


def build_report(
    channels: Sequence[Channel], replayer: SpoolReplayer, *, queued: int, spool_pending: int
) -> FlushReport:
    """The report of a pipeline: its channels (the first is the primary destination), its
    spool replays, the items still queued and the spans waiting in the spool."""
    reasons: dict[str, int] = {}
    sources = [(c.name, c.stats) for c in channels]
    for name, source in [*sources, ("spool replay", replayer.stats)]:
        for reason, count in source.reasons.items():
            key = f"{name}: {reason}"
            reasons[key] = reasons.get(key, 0) + count
    primary = channels[0].stats
    return FlushReport(
        exported_spans=primary.exported,
        exported_traces=primary.traces_exported,
        spooled_spans=sum(c.stats.spooled for c in channels),
        replayed_spans=replayer.replayed_spans,
        dropped_spans=sum(c.stats.dropped for c in channels) + replayer.stats.dropped,
        pending_spans=queued + sum(c.backlog_spans for c in channels),
        reasons=reasons,
        destinations={c.name: c.stats for c in channels},
        spool_pending_spans=spool_pending,
    )
