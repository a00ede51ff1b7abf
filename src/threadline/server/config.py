"""The tracking server's settings: one frozen value handed to ``create_app``.

The CLI builds it from its flags; worker processes (``--workers N``) rebuild it from the
``THREADLINE_SERVER_*`` environment variables the CLI exported for them. Access tokens are
``TokenGrant`` values: a token, whether it may write, and the experiments it may use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threadline import settings
from threadline.errors import InvalidArgumentError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DEFAULT_STORE_URI = "sqlite:///threadline.db"
MiB = 1024 * 1024


STORE_URI = settings.SERVER_BACKEND_STORE_URI
AUTH_TOKENS = settings.SERVER_AUTH_TOKENS
AUTH_TOKENS_FILE = settings.SERVER_AUTH_TOKENS_FILE
MAX_BODY_BYTES = settings.SERVER_MAX_BODY_BYTES
INGEST_QUEUE_SIZE = settings.SERVER_INGEST_QUEUE_SIZE
ARTIFACTS_DESTINATION = settings.SERVER_ARTIFACTS_DESTINATION
ARTIFACT_THRESHOLD_BYTES = settings.SERVER_ARTIFACT_THRESHOLD_BYTES
MAX_PAYLOAD_BYTES = settings.SERVER_MAX_PAYLOAD_BYTES
HEADER_TIMEOUT_SECONDS = settings.SERVER_HEADER_TIMEOUT_SECONDS
BODY_TIMEOUT_SECONDS = settings.SERVER_BODY_TIMEOUT_SECONDS
INGEST_MAX_INFLIGHT_BYTES = settings.SERVER_INGEST_MAX_INFLIGHT_BYTES
SERVER_SETTINGS = (
    STORE_URI,
    AUTH_TOKENS,
    AUTH_TOKENS_FILE,
    MAX_BODY_BYTES,
    INGEST_QUEUE_SIZE,
    ARTIFACTS_DESTINATION,
    ARTIFACT_THRESHOLD_BYTES,
    MAX_PAYLOAD_BYTES,
    HEADER_TIMEOUT_SECONDS,
    BODY_TIMEOUT_SECONDS,
    INGEST_MAX_INFLIGHT_BYTES,
)


@dataclass(frozen=True)
class TokenGrant:
    """What one bearer token may do: write or only read, in every experiment or some."""

    token: str
    write: bool = True
    experiment_ids: frozenset[str] | None = None  # None: every experiment

    def __repr__(self) -> str:  # never print the secret
        scope = "*" if self.experiment_ids is None else ",".join(sorted(self.experiment_ids))
        return f"TokenGrant(<hidden>, {'write' if self.write else 'read'}, {scope})"


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``create_app`` needs besides the store."""

    auth_tokens: tuple[TokenGrant, ...] = ()
    max_body_bytes: int = 32 * MiB
    ingest_queue_rows: int = 50_000
    ingest_batch_rows: int = 5_000
    sync_wait_seconds: float = 30.0
    shutdown_drain_seconds: float = 60.0
    retry_after_seconds: int = 1
    # Span payloads above the threshold go to the artifacts destination (None: stay inline);
    # one above max_payload_bytes gets the whole request a 413.
    artifacts_destination: str | None = None
    artifact_threshold_bytes: int = 64 * 1024
    max_payload_bytes: int = 16 * MiB
    # A request body slower than this (plus a second per 64 KiB received) gets a 408.
    body_timeout_seconds: float = 30.0
    # Ingest request bodies read and decoded at once; one that does not fit gets a 503.
    ingest_max_inflight_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "ingest_queue_rows",
            "ingest_batch_rows",
            "artifact_threshold_bytes",
            "max_payload_bytes",
            "ingest_max_inflight_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}.")
        seconds = self.body_timeout_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise InvalidArgumentError(
                f"body_timeout_seconds must be a positive number, got {seconds!r}."
            )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_tokens)


def grants_from_tokens(tokens: Iterable[str]) -> list[TokenGrant]:
    """Full-access grants for plain tokens (``--auth-token``)."""
    return [TokenGrant(_check_token(token, "--auth-token")) for token in tokens]


def grants_from_file(path: str | os.PathLike[str]) -> list[TokenGrant]:
    """Grants from a tokens file: ``token [read|write] [experiment_id,…|*]`` per line.

    Blank lines and ``#`` comments are skipped; access defaults to ``write`` and the
    experiments to ``*`` (all). A malformed line raises ``InvalidArgumentError`` naming it.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"Cannot read the tokens file {str(path)!r}: {exc}") from None
    return [
        _grant_line(line, f"{path}:{number}")
        for number, raw in enumerate(text.splitlines(), start=1)
        if (line := raw.split("#", 1)[0].strip())
    ]


def _grant_line(line: str, where: str) -> TokenGrant:
    parts = line.split()
    if len(parts) > 3:
        raise InvalidArgumentError(
            f"{where}: expected 'token [read|write] [experiment_id,...|*]', got {len(parts)} fields."
        )
    token = _check_token(parts[0], where)
    access = parts[1].lower() if len(parts) > 1 else "write"
    if access not in ("read", "write"):
        raise InvalidArgumentError(f"{where}: access must be 'read' or 'write', got {parts[1]!r}.")
    scope = parts[2] if len(parts) > 2 else "*"
    experiment_ids = None
    if scope != "*":
        experiment_ids = frozenset(e.strip() for e in scope.split(",") if e.strip())
        if not experiment_ids or "*" in experiment_ids:
            raise InvalidArgumentError(
                f"{where}: experiments must be '*' or comma-separated ids, got {scope!r}."
            )
    return TokenGrant(token, write=access == "write", experiment_ids=experiment_ids)


def _check_token(token: str, where: str) -> str:
    if not token or any(c.isspace() or c == "," for c in token) or not token.isprintable():
        raise InvalidArgumentError(f"{where}: a token must be printable, without spaces or commas.")
    return token


def settings_from_environment() -> tuple[str, ServerSettings]:
    """The store URI and settings from ``THREADLINE_SERVER_*`` (how worker processes start)."""
    grants = grants_from_tokens(AUTH_TOKENS.get())
    tokens_file = AUTH_TOKENS_FILE.get()
    if tokens_file is not None:
        grants.extend(grants_from_file(tokens_file))
    server_settings = ServerSettings(
        auth_tokens=tuple(grants),
        max_body_bytes=MAX_BODY_BYTES.get(),
        ingest_queue_rows=INGEST_QUEUE_SIZE.get(),
        artifacts_destination=ARTIFACTS_DESTINATION.get(),
        artifact_threshold_bytes=ARTIFACT_THRESHOLD_BYTES.get(),
        max_payload_bytes=MAX_PAYLOAD_BYTES.get(),
        body_timeout_seconds=BODY_TIMEOUT_SECONDS.get(),
        ingest_max_inflight_bytes=INGEST_MAX_INFLIGHT_BYTES.get(),
    )
    return STORE_URI.get() or DEFAULT_STORE_URI, server_settings


def export_for_workers(values: Mapping[settings.Setting[Any], str | None]) -> None:
    """Hand settings to worker processes through their environment (``Setting.export``)."""
    for setting, value in values.items():
        setting.export(value)
