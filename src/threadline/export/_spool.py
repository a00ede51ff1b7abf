"""The on-disk spool: batches that could not be exported wait here to be replayed.

One JSON file per batch, written atomically (temp file + rename) and named so that
sorting by name replays oldest first. Each file records where it was going (destination
kind and target), so any later process, with any configuration, can deliver it. A file is
claimed by renaming it before replay, so two processes never replay the same batch; a
claim left by a process that died is released. File names carry a hash of the destination
so a process replays only batches for the destinations it uses itself. The spool is bounded in bytes: past the
budget a batch is refused (and the caller counts it as dropped).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path

from threadline.store.base import SpanRow, TraceRow

_SUFFIX = ".batch.json"
_CLAIM = ".claim"
_counter = itertools.count()


class SpoolFull(Exception):
    """The spool's byte budget would be exceeded."""


class Spool:
    """A folder of pending batches, bounded by ``max_bytes``."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    # --- writing -------------------------------------------------------------------------
    def put(self, kind: str, target: str, traces: list[TraceRow], spans: list[SpanRow]) -> Path:
        """Store a batch durably; raises ``SpoolFull`` past the byte budget."""
        payload = json.dumps(
            {
                "kind": kind,
                "target": target,
                "traces": [asdict(t) for t in traces],
                "spans": [asdict(s) for s in spans],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            if self.size_bytes() + len(payload) > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.folder} would exceed THREADLINE_SPOOL_MAX_BYTES={self.max_bytes}"
                )
            key = destination_key(kind, target)
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(_counter):08d}-{key}{_SUFFIX}"
            temp = self.folder / f".{name}.tmp"
            with open(temp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            path = self.folder / name
            os.replace(temp, path)
            return path

    # --- reading -------------------------------------------------------------------------
    def pending(self, keys: set[str] | None = None) -> list[Path]:
        """Unclaimed batch files (for the given destination keys), oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(
            p
            for p in self.folder.iterdir()
            if p.name.endswith(_SUFFIX)
            and (keys is None or p.name[: -len(_SUFFIX)].rsplit("-", 1)[-1] in keys)
        )

    def size_bytes(self) -> int:
        if not self.folder.is_dir():
            return 0
        total = 0
        for path in self.folder.iterdir():
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # replayed by another process meanwhile
                pass
        return total

    def claim(self, path: Path) -> Path | None:
        """Take a batch for replay (``None`` if another process took it first)."""
        claimed = path.with_name(f"{path.name}.{os.getpid()}{_CLAIM}")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        return claimed

    @staticmethod
    def load(claimed: Path) -> tuple[str, str, list[TraceRow], list[SpanRow]]:
        data = json.loads(claimed.read_bytes())
        return (
            data["kind"],
            data["target"],
            [TraceRow(**t) for t in data["traces"]],
            [SpanRow(**s) for s in data["spans"]],
        )

    @staticmethod
    def done(claimed: Path) -> None:
        claimed.unlink(missing_ok=True)

    @staticmethod
    def release(claimed: Path) -> None:
        """Give a claimed batch back (its replay failed)."""
        original = claimed.name.rsplit(".", 2)[0]
        os.replace(claimed, claimed.with_name(original))

    def release_orphans(self) -> int:
        """Release claims of processes that no longer run (they died mid-replay)."""
        if not self.folder.is_dir():
            return 0
        released = 0
        for path in self.folder.iterdir():
            if not path.name.endswith(_CLAIM):
                continue
            pid_text = path.name.rsplit(".", 2)[1]
            if pid_text.isdigit() and not _alive(int(pid_text)):
                try:
                    self.release(path)
                    released += 1
                except FileNotFoundError:
                    pass
        return released


def destination_key(kind: str, target: str) -> str:
    """A short stable name for a destination, used in spool file names."""
    return hashlib.sha256(f"{kind}\n{target}".encode()).hexdigest()[:16]


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
