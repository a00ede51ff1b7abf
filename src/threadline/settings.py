"""Every environment variable threadline reads (``THREADLINE_*`` and the standard
``OTEL_*`` exporter ones), declared once as data.

No other module reads ``os.environ``. Values are read when used (never at import), and a
bad value raises ``InvalidArgumentError`` naming the variable, the value and what it takes.
"""

from __future__ import annotations

import os

from threadline.errors import InvalidArgumentError

TYPE_CHECKING = False  # typing/dataclasses are not imported at runtime: SDK import time matters
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar
    from typing import Generic as _Generic

    T = TypeVar("T")
else:

    class _Generic:
        """Runtime stand-in for ``typing.Generic`` (subscriptable, does nothing)."""

        def __class_getitem__(cls, item: object) -> type:
            return cls

    T = object

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def _parse_positive_int(text: str) -> int:
    value = int(text.strip())
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _parse_positive_float(text: str) -> float:
    value = float(text.strip())
    if not value > 0:
        raise ValueError("expected a positive number")
    return value


def _parse_non_negative_float(text: str) -> float:
    value = float(text.strip())
    if not value >= 0:
        raise ValueError("expected a number of seconds, 0 or more")
    return value


def _parse_ratio(text: str) -> float:
    value = float(text.strip())
    if not 0.0 <= value <= 1.0:
        raise ValueError("expected a number from 0 to 1")
    return value


def _parse_otlp_protocol(text: str) -> str:
    value = text.strip().lower()
    if value not in ("http/protobuf", "http/json"):
        raise ValueError("expected http/protobuf or http/json (grpc is not supported)")
    return value


def _parse_headers(text: str) -> dict[str, str]:
    """W3C-baggage-style ``key=value,key2=value2`` (values may be percent-encoded)."""
    from urllib.parse import unquote

    headers: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value pairs separated by commas, got {part.strip()!r}")
        headers[unquote(key.strip())] = unquote(value.strip())
    return headers


def _parse_tokens(text: str) -> tuple[str, ...]:
    tokens = tuple(part.strip() for part in text.split(",") if part.strip())
    if not tokens:
        raise ValueError("expected comma-separated tokens")
    return tokens


def _parse_port(text: str) -> int:
    value = int(text.strip())
    if not 0 <= value <= 65535:
        raise ValueError("expected a port from 0 to 65535")
    return value


def _parse_names(text: str) -> tuple[str, ...]:
    """Comma-separated names (e.g. OpenTelemetry instrumentation scopes); blanks ignored."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _parse_choice(text: str, choices: tuple[str, ...]) -> str:
    value = text.strip().lower()
    if value not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}")
    return value


def _parse_str(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("expected a non-empty value")
    return value


class Setting(_Generic[T]):
    """One environment variable: its name, parser, default and documentation."""

    __slots__ = ("default", "doc", "name", "parse")

    def __init__(self, name: str, parse: Callable[[str], T], default: T, doc: str) -> None:
        self.name = name
        self.parse = parse
        self.default = default
        self.doc = doc

    def get(self) -> T:
        """The current value: parsed from the environment, else the default."""
        raw = os.environ.get(self.name)
        if raw is None or raw == "":
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"Environment variable {self.name}={raw!r} is invalid: {exc}. {self.doc}"
            ) from None

    def is_set(self) -> bool:
        return bool(os.environ.get(self.name))

    def export(self, value: str | None) -> None:
        """Set (or with ``None`` remove) the variable for child processes, e.g. server workers."""
        if value is None:
            os.environ.pop(self.name, None)
        else:
            os.environ[self.name] = value


TRACKING_URI: Setting[str | None] = Setting(
    "THREADLINE_TRACKING_URI",
    _parse_str,
    None,
    "Where traces go: sqlite:///path.db, postgresql://user@host:port/db or the URL of a "
    "threadline server, http(s)://host:port. "
    "Default: sqlite:///threadline.db in the current directory.",
)
TRACKING_TOKEN: Setting[str | None] = Setting(
    "THREADLINE_TRACKING_TOKEN",
    _parse_str,
    None,
    "Bearer token sent to a threadline server tracking URI (when the server requires one).",
)
EXPERIMENT_ID: Setting[str | None] = Setting(
    "THREADLINE_EXPERIMENT_ID",
    _parse_str,
    None,
    "Experiment that traces go to when set_experiment() was not called. Default: '0'.",
)
TRACING_ENABLED: Setting[bool] = Setting(
    "THREADLINE_TRACING_ENABLED",
    _parse_bool,
    True,
    "Set to false to turn tracing off without changing code (decorated code still runs).",
)
ASYNC_TRACE_LOGGING: Setting[bool] = Setting(
    "THREADLINE_ASYNC_TRACE_LOGGING",
    _parse_bool,
    False,
    "Set to true to export traces in the background (like config.enable_async_logging()).",
)
ASYNC_MAX_WORKERS: Setting[int] = Setting(
    "THREADLINE_ASYNC_TRACE_LOGGING_MAX_WORKERS",
    _parse_positive_int,
    10,
    "Most export threads used by async trace logging.",
)
ASYNC_MAX_QUEUE_SIZE: Setting[int] = Setting(
    "THREADLINE_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE",
    _parse_positive_int,
    1000,
    "Most finished traces waiting for export before the traced program is slowed down.",
)
ASYNC_RETRY_TIMEOUT: Setting[float] = Setting(
    "THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT",
    _parse_positive_float,
    500.0,
    "Seconds to keep retrying a failed export in memory before the batch goes to the spool; "
    "also how long flush_trace_async_logging() waits by default.",
)
EXIT_FLUSH_TIMEOUT: Setting[float] = Setting(
    "THREADLINE_EXIT_FLUSH_TIMEOUT",
    _parse_non_negative_float,
    10.0,
    "Seconds the export keeps retrying at interpreter exit and on SIGTERM before what is "
    "still undelivered goes to the spool (then one line on stderr says how to replay it).",
)
SYNC_EXPORT_TIMEOUT: Setting[float] = Setting(
    "THREADLINE_SYNC_EXPORT_TIMEOUT_SECONDS",
    _parse_positive_float,
    3.0,
    "Longest time a traced call (sync mode) or a read's flush waits for tracing export on "
    "its own thread; past it that destination is written in the background (retried, then "
    "spooled) until it answers again.",
)
MAX_PAYLOAD_CHARS: Setting[int] = Setting(
    "THREADLINE_MAX_PAYLOAD_CHARS",
    _parse_positive_int,
    10_000_000,
    "Largest JSON text kept for one span's inputs, outputs or attributes; larger values "
    "are stored truncated with a marker.",
)

SQLITE_SYNCHRONOUS: Setting[str] = Setting(
    "THREADLINE_SQLITE_SYNCHRONOUS",
    lambda text: _parse_choice(text, ("normal", "full")),
    "normal",
    "How SQLite stores (WAL mode) make a commit durable: 'normal' survives a killed process, "
    "'full' also survives a power loss or operating-system crash, at some cost per commit.",
)
TRACE_TIMEOUT_SECONDS: Setting[float | None] = Setting(
    "THREADLINE_TRACE_TIMEOUT_SECONDS",
    _parse_positive_float,
    None,
    "Traces running longer than this many seconds are ended with status ERROR and exported "
    "(their open spans marked aborted); the program keeps running. Unset: no timeout.",
)
TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS: Setting[float] = Setting(
    "THREADLINE_TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS",
    _parse_positive_float,
    1.0,
    "How often the stuck-trace watchdog looks for traces past THREADLINE_TRACE_TIMEOUT_SECONDS.",
)
TRACE_SAMPLING_RATIO: Setting[float] = Setting(
    "THREADLINE_TRACE_SAMPLING_RATIO",
    _parse_ratio,
    1.0,
    "Share of traces recorded, from 0 to 1, decided at the root span; children follow it.",
)
MAX_TRACES_TO_DISPLAY_IN_NOTEBOOK: Setting[int] = Setting(
    "THREADLINE_MAX_TRACES_TO_DISPLAY_IN_NOTEBOOK",
    _parse_positive_int,
    10,
    "Most traces rendered inline in one Jupyter cell output.",
)
SPOOL_DIR: Setting[str | None] = Setting(
    "THREADLINE_SPOOL_DIR",
    _parse_str,
    None,
    "Folder where traces that could not be exported wait to be replayed (also by the next "
    "process, or `threadline spool replay`). Default: ~/.cache/threadline/spool.",
)
SPOOL_MAX_BYTES: Setting[int] = Setting(
    "THREADLINE_SPOOL_MAX_BYTES",
    _parse_positive_int,
    512 * 1024 * 1024,
    "Largest size of the spool in bytes; past it new failed batches are dropped and counted.",
)
OTLP_EXPORT_ONLY: Setting[bool] = Setting(
    "THREADLINE_OTLP_EXPORT_ONLY",
    _parse_bool,
    False,
    "With an OTLP endpoint set, send traces only there, not to the tracking store.",
)
OTEL_TRACES_ENDPOINT: Setting[str | None] = Setting(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    _parse_str,
    None,
    "Full URL of an OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces); spans "
    "are exported there as well as to the tracking store.",
)
OTEL_ENDPOINT: Setting[str | None] = Setting(
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    _parse_str,
    None,
    "Base URL of an OTLP/HTTP collector; traces go to <base>/v1/traces. Used when "
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is not set.",
)
OTEL_HEADERS: Setting[dict[str, str]] = Setting(
    "OTEL_EXPORTER_OTLP_HEADERS",
    _parse_headers,
    {},
    "Extra HTTP headers for OTLP export, as key=value pairs separated by commas.",
)
OTEL_TRACES_HEADERS: Setting[dict[str, str]] = Setting(
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    _parse_headers,
    {},
    "Like OTEL_EXPORTER_OTLP_HEADERS, for the traces endpoint only (these win).",
)
OTEL_PROTOCOL: Setting[str] = Setting(
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    _parse_otlp_protocol,
    "http/protobuf",
    "OTLP encoding: http/protobuf (default) or http/json.",
)
OTEL_TRACES_PROTOCOL: Setting[str | None] = Setting(
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    _parse_otlp_protocol,
    None,
    "Like OTEL_EXPORTER_OTLP_PROTOCOL, for traces only (wins when set).",
)
OTEL_SERVICE_NAME: Setting[str] = Setting(
    "OTEL_SERVICE_NAME",
    _parse_str,
    "threadline",
    "service.name resource attribute of exported OTLP spans.",
)
OTEL_DENY_SCOPES: Setting[tuple[str, ...]] = Setting(
    "THREADLINE_OTEL_DENY_SCOPES",
    _parse_names,
    (),
    "Comma-separated OpenTelemetry instrumentation scopes (each covers its dotted "
    "sub-scopes) whose spans threadline.otel drops, besides its built-in list of HTTP, "
    "database, queue and web-framework instrumentations; kept child spans attach to the "
    "nearest kept ancestor.",
)
OTEL_ALLOW_SCOPES: Setting[tuple[str, ...]] = Setting(
    "THREADLINE_OTEL_ALLOW_SCOPES",
    _parse_names,
    (),
    "Comma-separated OpenTelemetry instrumentation scopes that threadline.otel keeps even "
    "when a deny list names them (e.g. opentelemetry.instrumentation.httpx); * keeps all.",
)

SERVER_BACKEND_STORE_URI: Setting[str | None] = Setting(
    "THREADLINE_SERVER_BACKEND_STORE_URI",
    _parse_str,
    None,
    "Store of `threadline server` (sqlite:///… or postgresql://…). "
    "Default: sqlite:///threadline.db in the current directory.",
)
SERVER_AUTH_TOKENS: Setting[tuple[str, ...]] = Setting(
    "THREADLINE_SERVER_AUTH_TOKENS",
    _parse_tokens,
    (),
    "Comma-separated bearer tokens with full access to `threadline server` (unset: no auth).",
)
SERVER_AUTH_TOKENS_FILE: Setting[str | None] = Setting(
    "THREADLINE_SERVER_AUTH_TOKENS_FILE",
    _parse_str,
    None,
    "File of `threadline server` tokens, one per line: token read|write ids,…|* (all "
    "required; `#` comments as whole lines).",
)
SERVER_MAX_BODY_BYTES: Setting[int] = Setting(
    "THREADLINE_SERVER_MAX_BODY_BYTES",
    _parse_positive_int,
    32 * 1024 * 1024,
    "Largest request body `threadline server` accepts, after gzip decompression (413 above).",
)
SERVER_INGEST_QUEUE_SIZE: Setting[int] = Setting(
    "THREADLINE_SERVER_INGEST_QUEUE_SIZE",
    _parse_positive_int,
    50_000,
    "Span and trace rows `threadline server` holds before writing (with `--workers N`, each "
    "worker holds its share); when full, ingest gets 503. About 1 KB of memory per row; "
    "50,000 rows are a few seconds of ingest at full speed.",
)
SERVER_ARTIFACTS_DESTINATION: Setting[str | None] = Setting(
    "THREADLINE_SERVER_ARTIFACTS_DESTINATION",
    _parse_str,
    None,
    "Where `threadline server` keeps span payloads larger than "
    "THREADLINE_SERVER_ARTIFACT_THRESHOLD_BYTES: a folder (relative to the current directory), "
    "file:///path or s3://bucket/prefix (or --artifacts-destination). Unset: in the database.",
)
SERVER_ARTIFACT_THRESHOLD_BYTES: Setting[int] = Setting(
    "THREADLINE_SERVER_ARTIFACT_THRESHOLD_BYTES",
    _parse_positive_int,
    64 * 1024,
    "Span inputs, outputs or events larger than this many bytes (UTF-8 JSON) go to the "
    "artifacts destination of `threadline server`, when one is set.",
)
SERVER_MAX_PAYLOAD_BYTES: Setting[int] = Setting(
    "THREADLINE_SERVER_MAX_PAYLOAD_BYTES",
    _parse_positive_int,
    16 * 1024 * 1024,
    "Largest inputs, outputs, attributes or events of one span that `threadline server` "
    "accepts, in bytes of JSON; a request with a larger one gets 413 and nothing is stored.",
)
SERVER_MAX_FUTURE_SECONDS: Setting[float] = Setting(
    "THREADLINE_SERVER_MAX_FUTURE_SECONDS",
    _parse_positive_float,
    86_400.0,
    "`threadline server` refuses trace and span times further than this many seconds ahead "
    "of its clock, and before 2000 (a 400 naming the field; OTLP rejects just those spans).",
)
SERVER_HEADER_TIMEOUT_SECONDS: Setting[float] = Setting(
    "THREADLINE_SERVER_HEADER_TIMEOUT_SECONDS",
    _parse_positive_float,
    10.0,
    "Seconds `threadline server` waits for a request's line and headers (from the connection "
    "or from the first byte of the next request); a slower client gets 408 and is disconnected.",
)
SERVER_BODY_TIMEOUT_SECONDS: Setting[float] = Setting(
    "THREADLINE_SERVER_BODY_TIMEOUT_SECONDS",
    _parse_positive_float,
    30.0,
    "Seconds `threadline server` waits for a request body, plus one second per 64 KiB "
    "received (a large body on a slow link arrives, a trickle does not); then 408, disconnected.",
)
SERVER_INGEST_MAX_INFLIGHT_BYTES: Setting[int] = Setting(
    "THREADLINE_SERVER_INGEST_MAX_INFLIGHT_BYTES",
    _parse_positive_int,
    64 * 1024 * 1024,
    "Request bodies (after gzip decompression) `threadline server` reads and decodes at once "
    "on its ingest routes, per process; a request that does not fit gets 503 with Retry-After "
    "before its body is kept. Decoding takes a few times the body's size in memory.",
)
SERVER_OTLP_GRPC_PORT: Setting[int | None] = Setting(
    "THREADLINE_SERVER_OTLP_GRPC_PORT",
    _parse_port,
    None,
    "Port of `threadline server`'s OTLP/gRPC ingest (or --otlp-grpc-port; 4317 is the "
    "convention, 0 any free port). Unset: no gRPC ingest.",
)
SERVER_OTLP_GRPC_HOST: Setting[str] = Setting(
    "THREADLINE_SERVER_OTLP_GRPC_HOST",
    _parse_str,
    "127.0.0.1",
    "Address `threadline server`'s OTLP/gRPC ingest listens on (the server's --host).",
)

ALL_SETTINGS: tuple[Setting[Any], ...] = (
    TRACKING_URI,
    TRACKING_TOKEN,
    EXPERIMENT_ID,
    TRACING_ENABLED,
    ASYNC_TRACE_LOGGING,
    ASYNC_MAX_WORKERS,
    ASYNC_MAX_QUEUE_SIZE,
    ASYNC_RETRY_TIMEOUT,
    EXIT_FLUSH_TIMEOUT,
    SYNC_EXPORT_TIMEOUT,
    MAX_PAYLOAD_CHARS,
    SQLITE_SYNCHRONOUS,
    TRACE_TIMEOUT_SECONDS,
    TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS,
    TRACE_SAMPLING_RATIO,
    MAX_TRACES_TO_DISPLAY_IN_NOTEBOOK,
    SPOOL_DIR,
    SPOOL_MAX_BYTES,
    OTLP_EXPORT_ONLY,
    OTEL_TRACES_ENDPOINT,
    OTEL_ENDPOINT,
    OTEL_HEADERS,
    OTEL_TRACES_HEADERS,
    OTEL_PROTOCOL,
    OTEL_TRACES_PROTOCOL,
    OTEL_SERVICE_NAME,
    OTEL_DENY_SCOPES,
    OTEL_ALLOW_SCOPES,
    SERVER_BACKEND_STORE_URI,
    SERVER_AUTH_TOKENS,
    SERVER_AUTH_TOKENS_FILE,
    SERVER_MAX_BODY_BYTES,
    SERVER_INGEST_QUEUE_SIZE,
    SERVER_ARTIFACTS_DESTINATION,
    SERVER_ARTIFACT_THRESHOLD_BYTES,
    SERVER_MAX_PAYLOAD_BYTES,
    SERVER_MAX_FUTURE_SECONDS,
    SERVER_HEADER_TIMEOUT_SECONDS,
    SERVER_BODY_TIMEOUT_SECONDS,
    SERVER_INGEST_MAX_INFLIGHT_BYTES,
    SERVER_OTLP_GRPC_PORT,
    SERVER_OTLP_GRPC_HOST,
)
