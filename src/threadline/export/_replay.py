"""Replaying one spooled batch to the destination it was written for.

Shared by the export pipeline (which replays its own destinations' batches in the
background, ``SpoolReplayer``) and ``threadline spool replay``. A batch is claimed first, so two processes
never send the same one; it is removed once delivered, put back when the destination is
still failing, and set aside (never replayed) when it cannot be read.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from threadline.export._channel import DeliveryStats
from threadline.export._destination import destination_for
from threadline.export._spool import Spool
from threadline.tracing import _safety

_REASON_CHARS = 200
_BACKOFF_START_S = 0.5
_BACKOFF_MAX_S = 30.0
_CHECK_S = 5.0  # when no batch was found, look again after this long


@dataclass(frozen=True)
class BatchReplay:
    """What happened to one batch. ``error``: it was put back (the destination failed)."""

    kind: str
    target: str
    spans: int
    delivered: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # reason -> spans dropped
    error: Exception | None = None
    unreadable: bool = False


def replay_batch(spool: Spool, path: Path) -> BatchReplay | None:
    """Send one spooled batch; ``None`` when another process claimed it first."""
    claimed = spool.claim(path)
    if claimed is None:
        return None
    try:
        kind, target, traces, spans = spool.load(claimed)
    except Exception as exc:  # truncated or foreign file: keep it aside, out of the replay
        spool.set_aside(claimed)
        return BatchReplay("", "", 0, error=exc, unreadable=True)
    try:
        destination_for(kind, target).write(traces, spans)
    except Exception as exc:
        refused = getattr(exc, "refused", None)
        if refused is not None:  # the server refused some rows; the rest was written
            spool.done(claimed)
            reasons = dict(getattr(exc, "reasons", None) or {"refused": len(refused[1])})
            return BatchReplay(kind, target, len(spans), len(spans) - len(refused[1]), reasons)
        if getattr(exc, "retryable", True) is False:  # refused as a whole, for good
            spool.done(claimed)
            return BatchReplay(
                kind, target, len(spans), 0, {f"rejected: {exc}"[:_REASON_CHARS]: len(spans)}
            )
        spool.release(claimed)
        return BatchReplay(kind, target, len(spans), error=exc)
    spool.done(claimed)
    return BatchReplay(kind, target, len(spans), len(spans))


class SpoolReplayer:
    """Replays the spooled batches of a process's own destinations, with back-off while
    they fail (the next process, or ``threadline spool replay``, gets the rest)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.replayed_spans = 0
        self.stats = DeliveryStats()  # what replays dropped (rows the server refused)
        self._backoff = 0.0
        self._next_try = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._next_try

    def pending(self, keys: set[str]) -> list[Path]:
        """Unclaimed batches for these destination keys, oldest first."""
        return self.spool.pending(keys) if keys else []

    def replay(self, keys: set[str], *, force: bool = False) -> None:
        """Replay oldest first; stop at the first failure and back off."""
        if not force and not self.due():
            return
        paths = self.pending(keys)
        if not paths:
            self._next_try = time.monotonic() + _CHECK_S
            return
        for path in paths:
            replayed = replay_batch(self.spool, path)
            if replayed is None:  # another process took it
                continue
            if replayed.unreadable:
                message = f"threadline: unreadable spool file {path} set aside: {replayed.error}"
                _safety.log_once("spool-corrupt", message)
                continue
            if replayed.error is not None:
                self._failed(replayed)
                return
            self.replayed_spans += replayed.delivered
            for reason, count in replayed.refused.items():
                self.stats.dropped += count
                self.stats.note(f"dropped: {reason}", count)
        self._backoff = 0.0
        self._next_try = 0.0

    def _failed(self, replayed: BatchReplay) -> None:
        self._backoff = min(max(self._backoff * 2, _BACKOFF_START_S), _BACKOFF_MAX_S)
        self._next_try = time.monotonic() + self._backoff * random.uniform(0.5, 1.5)
        _safety.log_once(
            f"spool-replay:{replayed.kind}",
            f"threadline: spooled traces for {replayed.target} could not be replayed yet "
            f"({type(replayed.error).__name__}: {replayed.error}); will retry.",
        )
