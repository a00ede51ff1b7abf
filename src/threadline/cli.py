"""The ``threadline`` command: read, tag and delete traces; list and create experiments;
see and replay the export spool (``_cli_spool.py``).

Every command takes ``--tracking-uri`` (default: the SDK's tracking URI, that is
``THREADLINE_TRACKING_URI`` or ``sqlite:///threadline.db`` in the current directory).
A failure prints one line, ``threadline: error: <message>``, and exits with 2 for bad
usage or 1 for an error at run time; never a traceback.

Each command group is added by one ``_add_<group>_commands`` function, so a new group
plugs in without touching the others. The store and the client are imported only when a
command runs, so ``threadline --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from threadline import __version__
from threadline.entities.keys import SpanAttributeKey, TraceMetadataKey
from threadline.errors import ResourceNotFoundError, ThreadlineError

if TYPE_CHECKING:
    from threadline.client import ThreadlineClient
    from threadline.entities.experiment import Experiment
    from threadline.entities.span import Span
    from threadline.entities.trace import Trace, TraceInfo

PROG = "threadline"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
STACK_LINES = 4  # lines of an exception's stack trace shown under an ERROR span


@dataclass(frozen=True)
class Column:
    """A table column. ``least``: narrowest width it may be clipped to (``None``: never
    clipped); ``drop``: rank at which it is left out when the terminal is too narrow."""

    header: str
    least: int | None = None
    drop: int | None = None


_TRACE_COLUMNS = (
    Column("TRACE ID"),
    Column("TIME"),
    Column("STATE"),
    Column("MS", drop=4),
    Column("NAME", least=8, drop=3),
    Column("REQUEST", least=12),
    Column("RESPONSE", least=12, drop=2),
    Column("TAGS", least=8, drop=1),
)
_EXPERIMENT_COLUMNS = (Column("ID"), Column("NAME", least=12), Column("STAGE"), Column("CREATED"))
_THREADLINE_FRAME = re.compile(r"[\\/]threadline[\\/]tracing[\\/]")


class UsageError(Exception):
    """The command line itself is wrong (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """Raises ``UsageError`` (one line) instead of printing the usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# --- entry point ---------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except UsageError as exc:
        return _fail(exc, EXIT_USAGE)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        return _fail(exc, EXIT_USAGE)
    except ThreadlineError as exc:
        return _fail(exc, EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # `threadline traces list | head`: stop quietly
        _silence_stdout()
        return EXIT_FAILURE
    except Exception as exc:  # an unexpected failure (a bug, a broken database): still one line
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE)


def _fail(message: object, code: int) -> int:
    text = " ".join(line.strip() for line in str(message).strip().splitlines())
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# --- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every command group)."""
    parser = _Parser(
        prog=PROG, description="Read and manage the traces and experiments of a threadline store."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    _add_traces_commands(groups)
    _add_experiments_commands(groups)
    _add_server_commands(groups)
    _add_spool_commands(groups)
    return parser


def _store_options() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--tracking-uri",
        metavar="URI",
        type=_tracking_uri,
        help="the store (default: $THREADLINE_TRACKING_URI, else sqlite:///threadline.db)",
    )
    return common


def _add_traces_commands(groups: Any) -> None:
    traces = groups.add_parser("traces", help="list, show, tag and delete traces")
    commands = traces.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_store_options()]

    cmd = commands.add_parser("list", parents=common, help="list traces, newest first")
    cmd.add_argument(
        "--experiment-id",
        dest="experiment_ids",
        action="extend",
        nargs="+",
        metavar="ID",
        help="only these experiments (default: every experiment)",
    )
    cmd.add_argument("--filter", metavar="STR", help="e.g. \"trace.status = 'ERROR'\"")
    cmd.add_argument("--max-results", type=_positive_int, default=25, metavar="N")
    cmd.add_argument(
        "--order-by", action="extend", nargs="+", metavar="STR", help='e.g. "timestamp_ms DESC"'
    )
    cmd.add_argument("--output", choices=("table", "json"), default="table")
    cmd.set_defaults(handler=_traces_list)

    cmd = commands.add_parser("show", parents=common, help="show a trace and its span tree")
    cmd.add_argument("trace_id", metavar="TRACE_ID")
    cmd.add_argument("--output", choices=("tree", "json"), default="tree")
    cmd.set_defaults(handler=_traces_show)

    cmd = commands.add_parser("delete", parents=common, help="delete traces by age or by id")
    cmd.add_argument("--experiment-id", required=True, metavar="ID")
    which = cmd.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--older-than-ms",
        type=_non_negative_int,
        metavar="TS",
        help="delete traces that started before this time (ms since the epoch), oldest first",
    )
    which.add_argument(
        "--older-than-days",
        type=_non_negative_float,
        metavar="DAYS",
        help="retention: delete traces that started more than DAYS days ago, oldest first",
    )
    which.add_argument("--trace-id", dest="trace_ids", action="extend", nargs="+", metavar="ID")
    cmd.add_argument(
        "--max-traces",
        type=_positive_int,
        metavar="N",
        help="with --older-than-ms/--older-than-days: at most N",
    )
    cmd.set_defaults(handler=_traces_delete)

    cmd = commands.add_parser("tag", parents=common, help="set a tag on a trace")
    cmd.add_argument("trace_id", metavar="TRACE_ID")
    cmd.add_argument("key", metavar="KEY")
    cmd.add_argument("value", metavar="VALUE")
    cmd.set_defaults(handler=_traces_tag)

    cmd = commands.add_parser("untag", parents=common, help="remove a tag from a trace")
    cmd.add_argument("trace_id", metavar="TRACE_ID")
    cmd.add_argument("key", metavar="KEY")
    cmd.set_defaults(handler=_traces_untag)


def _add_experiments_commands(groups: Any) -> None:
    experiments = groups.add_parser("experiments", help="list and create experiments")
    commands = experiments.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_store_options()]

    cmd = commands.add_parser("list", parents=common, help="list experiments")
    cmd.add_argument("--all", action="store_true", help="include deleted experiments")
    cmd.add_argument("--output", choices=("table", "json"), default="table")
    cmd.set_defaults(handler=_experiments_list)

    cmd = commands.add_parser("create", parents=common, help="create an experiment")
    cmd.add_argument("name", metavar="NAME", type=_non_empty)
    cmd.set_defaults(handler=_experiments_create)


def _add_server_commands(groups: Any) -> None:
    from threadline.server.main import add_server_command  # FastAPI loads only when it runs

    add_server_command(groups)


def _add_spool_commands(groups: Any) -> None:
    from threadline._cli_spool import add_spool_commands

    add_spool_commands(groups)


def _tracking_uri(text: str) -> str:
    from threadline._tracking_uri import _validate

    try:
        return _validate(text)
    except ThreadlineError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    return _bounded_int(text, 1, "a positive integer")


def _non_negative_int(text: str) -> int:
    return _bounded_int(text, 0, "a non-negative integer")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def _bounded_int(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


# --- commands: traces ----------------------------------------------------------------------
def _traces_list(args: argparse.Namespace) -> int:
    traces = _search_traces(_open(args), args)
    if args.output == "json":
        _print_json([trace.info.to_dict() for trace in traces])
    elif not traces:
        print("No traces found.")
    else:
        _print_table(_TRACE_COLUMNS, [_trace_cells(t.info) for t in traces])
    return EXIT_OK


def _search_traces(client: ThreadlineClient, args: argparse.Namespace) -> list[Trace]:
    """Up to ``--max-results`` traces, paging through the store (spans are not loaded)."""
    found: list[Trace] = []
    token: str | None = None
    while len(found) < args.max_results:
        page = client.search_traces(
            experiment_ids=args.experiment_ids,
            filter_string=args.filter,
            max_results=args.max_results - len(found),
            order_by=args.order_by,
            page_token=token,
            include_spans=False,
        )
        found.extend(page)
        token = page.token
        if token is None or not page:
            break
    return found


def _trace_cells(info: TraceInfo) -> list[str]:
    return [
        info.trace_id,
        _format_time(info.request_time),
        str(info.state),
        _or_dash(info.execution_duration),
        _one_line(info.name),
        _one_line(info.request_preview),
        _one_line(info.response_preview),
        _format_pairs(info.tags),
    ]


def _traces_show(args: argparse.Namespace) -> int:
    client = _open(args)
    trace = client.get_trace(args.trace_id)
    if trace is None:
        raise ResourceNotFoundError(f"Trace {args.trace_id!r} not found in {client.tracking_uri}")
    if args.output == "json":
        print(trace.to_json(pretty=True))
        return EXIT_OK
    for label, value in _header_fields(trace.info, _experiment_name(client, trace.info)):
        print(f"{label:<11}{value}")
    print(f"\nSpans ({len(trace.data.spans)}):")
    for line in _span_tree_lines(trace.data.spans):
        print(line)
    return EXIT_OK


def _traces_delete(args: argparse.Namespace) -> int:
    cutoff = args.older_than_ms
    if args.older_than_days is not None:
        cutoff = int(time.time() * 1000 - args.older_than_days * 86_400_000)
    if args.max_traces is not None and cutoff is None:
        raise UsageError(
            "argument --max-traces: only allowed with --older-than-ms or --older-than-days "
            f"(see '{PROG} traces delete --help')"
        )
    count = _open(args).delete_traces(
        args.experiment_id,
        max_timestamp_millis=cutoff,
        max_traces=args.max_traces,
        trace_ids=args.trace_ids,
    )
    print(f"Deleted {count} traces")
    return EXIT_OK


def _traces_tag(args: argparse.Namespace) -> int:
    client = _open(args)
    _require_trace(client, args.trace_id)
    client.set_trace_tag(args.trace_id, args.key, args.value)
    print(f"Set tag {args.key}={args.value} on {args.trace_id}")
    return EXIT_OK


def _traces_untag(args: argparse.Namespace) -> int:
    client = _open(args)
    if args.key not in _require_trace(client, args.trace_id).tags:
        raise ResourceNotFoundError(f"Trace {args.trace_id} has no tag {args.key!r}")
    client.delete_trace_tag(args.trace_id, args.key)
    print(f"Removed tag {args.key} from {args.trace_id}")
    return EXIT_OK


def _require_trace(client: ThreadlineClient, trace_id: str) -> TraceInfo:
    info = client.store.get_trace_info(trace_id)
    if info is None:
        raise ResourceNotFoundError(f"Trace {trace_id!r} not found in {client.tracking_uri}")
    return info


# --- commands: experiments -----------------------------------------------------------------
def _experiments_list(args: argparse.Namespace) -> int:
    experiments = _all_experiments(_open(args), include_deleted=args.all)
    if args.output == "json":
        _print_json([experiment.to_dict() for experiment in experiments])
    else:
        rows = [
            [e.experiment_id, _one_line(e.name), e.lifecycle_stage, _format_time(e.creation_time)]
            for e in experiments
        ]
        _print_table(_EXPERIMENT_COLUMNS, rows)
    return EXIT_OK


def _all_experiments(client: ThreadlineClient, *, include_deleted: bool) -> list[Experiment]:
    found: list[Experiment] = []
    token: str | None = None
    while True:
        page = client.search_experiments(include_deleted=include_deleted, page_token=token)
        found.extend(page)
        token = page.token
        if token is None or not page:
            return found


def _experiments_create(args: argparse.Namespace) -> int:
    experiment_id = _open(args, create=True).create_experiment(args.name)
    print(f"Created experiment {args.name!r} with id {experiment_id}")
    return EXIT_OK


# --- the store -----------------------------------------------------------------------------
def _open(args: argparse.Namespace, *, create: bool = False) -> ThreadlineClient:
    """A client on the chosen store; a SQLite file must already exist unless ``create``.

    Reading a missing file would silently create an empty store (in the wrong folder,
    typically) and list nothing; saying so is more useful.
    """
    from threadline.client import ThreadlineClient

    client = ThreadlineClient(args.tracking_uri)
    uri = client.tracking_uri
    path = _sqlite_path(uri)
    if not create and path is not None and not path.exists():
        raise ResourceNotFoundError(
            f"No trace store at {uri} ({path.absolute()} does not exist). Run from the folder "
            "your program ran in, or pass --tracking-uri / set THREADLINE_TRACKING_URI."
        )
    return client


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``None`` for other stores and ``:memory:``)."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if raw in ("", ":memory:") else Path(raw).expanduser()


def _experiment_name(client: ThreadlineClient, info: TraceInfo) -> str | None:
    try:
        return client.get_experiment(info.experiment_id).name
    except ThreadlineError:
        return None


# --- rendering -----------------------------------------------------------------------------
def _header_fields(info: TraceInfo, experiment_name: str | None) -> list[tuple[str, str]]:
    derived = (TraceMetadataKey.TOKEN_USAGE, TraceMetadataKey.COST)
    metadata = {k: v for k, v in info.trace_metadata.items() if k not in derived}
    experiment = info.experiment_id + (f" ({experiment_name})" if experiment_name else "")
    fields = [
        ("Trace", info.trace_id),
        ("Experiment", experiment),
        ("State", str(info.state)),
        ("Time", _format_time(info.request_time)),
        ("Duration", f"{_or_dash(info.execution_duration)} ms"),
        ("Name", _one_line(info.name) or "-"),
        ("Request", _clip(_one_line(info.request_preview), _terminal_width() - 11) or "-"),
        ("Response", _clip(_one_line(info.response_preview), _terminal_width() - 11) or "-"),
        ("Tags", _format_pairs(info.tags) or "-"),
        ("Metadata", _format_pairs(metadata) or "-"),
        ("Tokens", _format_usage(info.token_usage) or "-"),
        ("Cost", _format_cost(info.trace_metadata.get(TraceMetadataKey.COST)) or "-"),
    ]
    if info.client_request_id:
        fields.insert(6, ("Client id", info.client_request_id))
    return fields


def _span_tree_lines(spans: Sequence[Span]) -> Iterator[str]:
    """The spans as an indented tree (children by start time), with errors under ERROR spans.

    Spans whose parent is not in the trace are shown as extra roots.
    """
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[Span]] = {}
    for span in sorted(spans, key=lambda s: s.start_time_ns):
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    # Iterative depth-first walk: (span, prefix of its own line, prefix of what is below it).
    stack = [(span, "", "") for span in reversed(children.get(None, []))]
    while stack:
        span, lead, below = stack.pop()
        kids = children.get(span.span_id, [])
        yield lead + _span_summary(span)
        detail = below + ("│ " if kids else "  ")
        for line in _error_lines(span):
            yield (detail + line).rstrip()
        for index, kid in reversed(list(enumerate(kids))):
            last = index == len(kids) - 1
            stack.append(
                (kid, below + ("└── " if last else "├── "), below + ("    " if last else "│   "))
            )


def _span_summary(span: Span) -> str:
    duration = "open" if span.duration_ns is None else f"{span.duration_ns / 1e6:.1f} ms"
    text = f"{_one_line(span.name)}  [{span.span_type}]  {duration}  {span.status.status_code}"
    usage = _format_usage(span.get_attribute(SpanAttributeKey.TOKEN_USAGE))
    text = f"{text}  tokens: {usage}" if usage else text
    cost = _format_cost(span.get_attribute(SpanAttributeKey.COST))
    return f"{text}  cost: {cost}" if cost else text


def _error_lines(span: Span) -> list[str]:
    """The error message and the last lines of the stack trace of an ERROR span."""
    if span.status.status_code != "ERROR":
        return []
    lines: list[str] = []
    for event in span.events:
        if event.name != "exception":
            continue
        attrs = event.attributes
        lines.append(
            f"error: {attrs.get('exception.type', '?')}: {attrs.get('exception.message', '')}"
        )
        lines.extend(_stack_tail(str(attrs.get("exception.stacktrace") or "")))
    if not lines and span.status.description:
        lines.append(f"error: {span.status.description}")
    return lines


def _stack_tail(stacktrace: str) -> list[str]:
    """The last lines of a formatted traceback's frames, leaving out threadline's own frames."""
    frames: list[list[str]] = []
    for line in stacktrace.splitlines():
        if line.startswith("  File "):
            frames.append([line])
        elif frames and line.startswith("    ") and not set(line.strip()) <= {"^", "~"}:
            frames[-1].append(line)
    user = [f for f in frames if not _THREADLINE_FRAME.search(f[0])] or frames
    return [line.rstrip() for frame in user for line in frame][-STACK_LINES:]


def _print_table(columns: Sequence[Column], rows: list[list[str]]) -> None:
    """Print aligned columns that fit the terminal: clip the clippable ones (with …), then
    drop the least important."""
    natural = [max([len(c.header), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    width = _terminal_width()
    shown = _columns_that_fit(columns, natural, width)
    least: dict[int, int] = {}
    for i in shown:
        minimum = columns[i].least
        if minimum is not None:
            least[i] = minimum
    widths = _fit_widths({i: natural[i] for i in shown}, least, width - 2 * (len(shown) - 1))
    for cells in [[c.header for c in columns], *rows]:
        print("  ".join(_clip(cells[i], widths[i]).ljust(widths[i]) for i in shown).rstrip())


def _columns_that_fit(columns: Sequence[Column], natural: list[int], width: int) -> list[int]:
    shown = list(range(len(columns)))
    droppable = sorted((c.drop, i) for i, c in enumerate(columns) if c.drop is not None)
    for _, index in droppable:
        narrowest = sum(min(natural[i], columns[i].least or natural[i]) for i in shown)
        if narrowest + 2 * (len(shown) - 1) <= width:
            break
        shown.remove(index)
    return shown


def _fit_widths(widths: dict[int, int], least: dict[int, int], available: int) -> dict[int, int]:
    """Shrink the widest clippable column, step by step, until the total fits."""
    widths = dict(widths)
    excess = sum(widths.values()) - available
    while excess > 0:
        shrinkable = [i for i, narrowest in least.items() if widths[i] > narrowest]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        second = max([least[widest], *(widths[i] for i in shrinkable if i != widest)])
        step = min(excess, max(1, widths[widest] - second))
        widths[widest] -= step
        excess -= step
    return widths


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=repr))


def _terminal_width() -> int:
    return max(40, shutil.get_terminal_size((160, 24)).columns)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _one_line(text: str | None) -> str:
    return " ".join(str(text).split()) if text is not None else ""


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def _format_time(ms: int | None) -> str:
    """Local time of a ms timestamp, to the second."""
    if ms is None:
        return "-"
    try:
        return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # a bad time stored long ago: show it raw
        return f"{ms} ms (out of range)"


def _format_pairs(pairs: dict[str, str]) -> str:
    return ", ".join(f"{key}={_one_line(value)}" for key, value in sorted(pairs.items()))


def _format_usage(usage: object) -> str:
    if not isinstance(usage, dict) or not usage:
        return ""
    names = (("input_tokens", "in"), ("output_tokens", "out"), ("total_tokens", "total"))
    return " ".join(f"{short}={usage[key]}" for key, short in names if usage.get(key) is not None)


def _format_cost(cost: object) -> str:
    """The total of a cost (``{"total_cost": …}`` or its JSON text) in USD, 4 significant digits."""
    if isinstance(cost, str):
        try:
            cost = json.loads(cost)
        except ValueError:
            return ""
    total = cost.get("total_cost") if isinstance(cost, dict) else None
    if isinstance(total, bool) or not isinstance(total, (int, float)):
        return ""
    if not (math.isfinite(total) and total >= 0):
        return ""
    if total == 0:
        return "$0.00"
    decimals = min(12, max(2, 3 - math.floor(math.log10(total))))
    text = f"{total:.{decimals}f}".rstrip("0")
    places = len(text) - text.index(".") - 1
    return "$" + text + "0" * max(0, 2 - places)


if __name__ == "__main__":
    sys.exit(main())
