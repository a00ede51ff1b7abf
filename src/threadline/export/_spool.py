"""The on-disk spool: batches that could not be exported wait here to be replayed.

One JSON file per batch, written atomically (temp file + rename) and named so that
sorting by name replays oldest first. Each file records where it was going (destination
kind and target), so any later process, with any configuration, can deliver it. A file is
claimed by renaming it before replay, so two processes never replay the same batch; a
claim left by a process that died is released. File names carry the time, the number of
spans and a hash of the destination, so a process replays only batches for the
destinations it uses itself and ``threadline spool status`` counts without reading every
file. The spool is bounded in bytes: past the budget a batch is refused (and the caller
counts it as dropped).

Name: ``<time ns>-<pid>-<counter>-<spans>-<destination key>.batch.json`` (files written
before the span count was added have no ``<spans>`` part: their spans are counted by
reading them).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from threadline import settings
from threadline.store.base import SpanRow, TraceRow

_SUFFIX = ".batch.json"
_CLAIM = ".claim"
_UNREADABLE = ".unreadable"
_HEAD_BYTES = 8192  # a batch file starts with its kind and target (see ``put``)
_HEAD = re.compile(rb'^\{"kind":("(?:[^"\\]|\\.)*"),"target":("(?:[^"\\]|\\.)*")')
_counter = itertools.count()


@dataclass(frozen=True)
class SpoolEntry:
    """One batch file: its destination key, when it was spooled, spans and size."""

    path: Path
    key: str
    spooled_ns: int
    spans: int
    bytes: int
    claimed: bool


@dataclass
class DestinationBacklog:
    """What waits in the spool for one destination."""

    kind: str
    target: str
    batches: int = 0
    spans: int = 0
    bytes: int = 0
    oldest_ns: int | None = None


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
            stamp = f"{time.time_ns():020d}-{os.getpid()}-{next(_counter):08d}"
            name = f"{stamp}-{len(spans)}-{key}{_SUFFIX}"
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

    def entries(self) -> Iterator[SpoolEntry]:
        """Every batch file, replayable or claimed by a process replaying it now."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.iterdir()):
            entry = self.entry(path)
            if entry is not None:
                yield entry

    def entry(self, path: Path) -> SpoolEntry | None:
        """What a batch file holds (``None``: not a batch file, or gone meanwhile)."""
        name = path.name
        claimed = name.endswith(_CLAIM)
        if claimed:
            name = name.rsplit(".", 2)[0]
        if not name.endswith(_SUFFIX):
            return None
        try:
            size = path.stat().st_size
            spans = _spans_in_name(name)
            if spans is None:  # written before names carried the count
                spans = len(self.load(path)[3])
        except (OSError, ValueError, KeyError, TypeError):  # replayed meanwhile, or broken
            return None
        parts = name[: -len(_SUFFIX)].split("-")
        return SpoolEntry(path, parts[-1], int(parts[0]), spans, size, claimed)

    def backlogs(self, keys: set[str] | None = None) -> list[DestinationBacklog]:
        """What waits per destination (for the given destination keys), oldest first."""
        found: dict[str, DestinationBacklog] = {}
        for entry in self.entries():
            if keys is not None and entry.key not in keys:
                continue
            backlog = found.get(entry.key)
            if backlog is None:
                try:
                    kind, target = destination_of(entry.path)
                except (OSError, ValueError, KeyError):
                    continue
                backlog = found[entry.key] = DestinationBacklog(kind, target)
            backlog.batches += 1
            backlog.spans += entry.spans
            backlog.bytes += entry.bytes
            if backlog.oldest_ns is None or entry.spooled_ns < backlog.oldest_ns:
                backlog.oldest_ns = entry.spooled_ns
        return sorted(found.values(), key=lambda b: b.oldest_ns or 0)

    def unreadable(self) -> list[Path]:
        """Batch files that could not be read back (kept aside, never replayed)."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.name.endswith(_UNREADABLE))

    def set_aside(self, claimed: Path) -> None:
        """Keep a batch that cannot be read out of the replay (renamed ``….unreadable``)."""
        original = claimed.name.rsplit(".", 2)[0] if claimed.name.endswith(_CLAIM) else claimed.name
        os.replace(claimed, claimed.with_name(original + _UNREADABLE))

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


def destination_of(path: Path) -> tuple[str, str]:
    """The (kind, target) a batch file is for, read from its first bytes when possible."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    match = _HEAD.match(head)
    if match is not None:
        return json.loads(match.group(1)), json.loads(match.group(2))
    data = json.loads(path.read_bytes())
    return str(data["kind"]), str(data["target"])


def spool_from_settings() -> Spool:
    """The spool of ``THREADLINE_SPOOL_DIR``, else ``~/.cache/threadline/spool``."""
    return Spool(spool_folder(), settings.SPOOL_MAX_BYTES.get())


def spool_folder() -> Path:
    folder = settings.SPOOL_DIR.get()
    if folder:
        return Path(folder).expanduser()
    try:
        base = Path.home() / ".cache"
    except (RuntimeError, KeyError):  # no home directory (some containers, system users)
        import tempfile

        base = Path(tempfile.gettempdir())
    return base / "threadline" / "spool"


def _spans_in_name(name: str) -> int | None:
    parts = name[: -len(_SUFFIX)].split("-")
    if len(parts) == 5 and parts[3].isdigit():
        return int(parts[3])
    return None


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
