"""``threadline spool status`` and ``threadline spool replay``: the on-disk spool, seen and
delivered by hand.

Batches land in the spool when a destination stays unreachable past the retry timeout,
or at exit (``THREADLINE_EXIT_FLUSH_TIMEOUT``). A process that traces to the same
destination replays them in the background; these commands do it for a batch job that
will not run again soon. ``replay`` sends each batch to the destination it was written
for (``--tracking-uri``: only that store's batches), removes what was delivered and exits
with 1 when something could not be delivered. Registered by ``cli.py``.
"""

from __future__ import annotations

import argparse
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threadline.cli import EXIT_FAILURE, EXIT_OK, Column, _print_json, _print_table, _tracking_uri
from threadline.export._destination import absolute_uri
from threadline.export._replay import replay_batch
from threadline.export._spool import Spool, destination_key, destination_of, spool_from_settings

_STATUS_COLUMNS = (
    Column("KIND"),
    Column("DESTINATION", least=20),
    Column("BATCHES"),
    Column("SPANS"),
    Column("OLDEST"),
    Column("BYTES"),
)


def add_spool_commands(groups: Any) -> None:
    """``threadline spool status|replay`` on the parser's command groups."""
    spool = groups.add_parser("spool", help="see and replay traces waiting in the spool")
    commands = spool.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--spool-dir",
        metavar="DIR",
        type=Path,
        help="the spool folder (default: $THREADLINE_SPOOL_DIR, else ~/.cache/threadline/spool)",
    )

    cmd = commands.add_parser(
        "status", parents=[common], help="batches, spans, oldest age and bytes per destination"
    )
    cmd.add_argument("--output", choices=("table", "json"), default="table")
    cmd.set_defaults(handler=_status)

    cmd = commands.add_parser(
        "replay", parents=[common], help="deliver spooled batches, remove what was delivered"
    )
    cmd.add_argument(
        "--tracking-uri",
        metavar="URI",
        type=_tracking_uri,
        help="only the batches for this store (default: every destination in the spool)",
    )
    cmd.add_argument("--output", choices=("text", "json"), default="text")
    cmd.set_defaults(handler=_replay)


def _open_spool(args: argparse.Namespace) -> Spool:
    spool = spool_from_settings()
    if args.spool_dir is not None:
        spool = Spool(args.spool_dir.expanduser(), spool.max_bytes)
    return spool


# --- status --------------------------------------------------------------------------------
def _status(args: argparse.Namespace) -> int:
    spool = _open_spool(args)
    now_ns = time.time_ns()
    rows: list[dict[str, Any]] = [
        {
            "kind": b.kind,
            "target": b.target,
            "batches": b.batches,
            "spans": b.spans,
            "oldest_age_seconds": round((now_ns - (b.oldest_ns or now_ns)) / 1e9, 3),
            "bytes": b.bytes,
        }
        for b in spool.backlogs()
    ]
    unreadable = [str(p) for p in spool.unreadable()]
    if args.output == "json":
        _print_json({"folder": str(spool.folder), "destinations": rows, "unreadable": unreadable})
        return EXIT_OK
    if not rows:
        print(f"The spool {spool.folder} is empty.")
    else:
        batches, spans = sum(r["batches"] for r in rows), sum(r["spans"] for r in rows)
        print(f"Spool {spool.folder}: {batches} batches, {spans} spans waiting.")
        _print_table(_STATUS_COLUMNS, [_status_cells(row) for row in rows])
        print(f"Deliver them with: {_replay_command(args)}")
    if unreadable:
        print(f"{len(unreadable)} unreadable batch files were set aside (never replayed):")
        for path in unreadable:
            print(f"  {path}")
    return EXIT_OK


def _status_cells(row: dict[str, Any]) -> list[str]:
    age = _format_age(row["oldest_age_seconds"])
    counts = [str(row[name]) for name in ("batches", "spans")]
    return [row["kind"], row["target"], *counts, age, str(row["bytes"])]


def _replay_command(args: argparse.Namespace) -> str:
    command = ["threadline", "spool", "replay"]
    if args.spool_dir is not None:
        command += ["--spool-dir", str(args.spool_dir)]
    return shlex.join(command)


def _format_age(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


# --- replay --------------------------------------------------------------------------------
@dataclass
class _Outcome:
    """What the replay did for one destination."""

    kind: str
    target: str
    delivered_batches: int = 0
    delivered_spans: int = 0
    left_batches: int = 0
    left_spans: int = 0
    error: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> spans refused


def _replay(args: argparse.Namespace) -> int:
    spool = _open_spool(args)
    spool.release_orphans()
    keys = None
    if args.tracking_uri is not None:
        keys = {destination_key("store", absolute_uri(args.tracking_uri))}
    outcomes: dict[str, _Outcome] = {}
    unreadable = 0
    for path in spool.pending(keys):
        entry = spool.entry(path)
        if entry is None:  # replayed by a tracing process meanwhile
            continue
        outcome = outcomes.get(entry.key)
        if outcome is None:
            try:
                kind, target = destination_of(path)
            except (OSError, ValueError, KeyError):  # taken meanwhile, or unreadable
                kind, target = "?", "?"
            outcome = outcomes[entry.key] = _Outcome(kind, target)
        if outcome.error is not None:  # that destination is failing: leave the rest
            outcome.left_batches += 1
            outcome.left_spans += entry.spans
            continue
        replayed = replay_batch(spool, path)
        if replayed is None:  # a tracing process is replaying it right now
            continue
        if replayed.unreadable:
            unreadable += 1
        elif replayed.error is not None:
            outcome.error = f"{type(replayed.error).__name__}: {replayed.error}"
            outcome.left_batches += 1
            outcome.left_spans += replayed.spans
        else:
            outcome.delivered_batches += 1
            outcome.delivered_spans += replayed.delivered
            for reason, count in replayed.refused.items():
                outcome.dropped[reason] = outcome.dropped.get(reason, 0) + count
    results = [o for o in outcomes.values() if o.delivered_batches or o.left_batches]
    if args.output == "json":
        _print_json(
            {
                "folder": str(spool.folder),
                "destinations": [vars(o) for o in results],
                "unreadable": unreadable,
            }
        )
    else:
        _print_replay(spool, results, unreadable)
    failed = unreadable or any(o.left_batches or o.dropped for o in results)
    return EXIT_FAILURE if failed else EXIT_OK


def _print_replay(spool: Spool, results: list[_Outcome], unreadable: int) -> None:
    if not results and not unreadable:
        print(f"Nothing to replay in {spool.folder}.")
    for o in results:
        if o.delivered_batches:
            print(
                f"Delivered {o.delivered_batches} batches ({o.delivered_spans} spans) "
                f"to {o.target}."
            )
        for reason, count in o.dropped.items():
            print(f"Dropped {count} spans that {o.target} refused: {reason}")
        if o.left_batches:
            print(
                f"Could not deliver {o.left_batches} batches ({o.left_spans} spans) to "
                f"{o.target} ({o.error}); they stay in the spool {spool.folder}: run this "
                "again once it answers."
            )
    if unreadable:
        print(f"{unreadable} unreadable batch files were set aside (never replayed).")
