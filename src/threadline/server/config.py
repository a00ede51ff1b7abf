"""The tracking server's settings: one frozen value handed to ``create_app``.

The CLI builds it from its flags; worker processes (``--workers N``) rebuild it from the
``THREADLINE_SERVER_*`` environment variables the CLI exported for them. Access tokens are
``TokenGrant`` values: a token, whether it may write, and the experiments it may use.
"""

from __future__ import annotations

import os
import re
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
MAX_FUTURE_SECONDS = settings.SERVER_MAX_FUTURE_SECONDS
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
    MAX_FUTURE_SECONDS,
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
    # Trace and span times before 2000 or further ahead of the server's clock are refused.
    max_future_seconds: float = 86_400.0
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


MIN_TOKEN_CHARS = 16
MAX_SCOPE_ID_CHARS = 256  # the longest experiment id the server accepts
_TOKENS_FILE_FORM = "token read|write experiment_id,...|*"
_TOKEN_SOURCE = "--auth-token / THREADLINE_SERVER_AUTH_TOKENS"
_FIELD_SEPARATOR = re.compile(r"[ \t]+")


def grants_from_tokens(tokens: Iterable[str]) -> list[TokenGrant]:
    """Full-access grants for plain tokens (``--auth-token``, ``THREADLINE_SERVER_AUTH_TOKENS``).

    Each token is checked as a tokens file's are (``_check_token``); an error names the
    token by its position, never by its value.
    """
    grants = []
    for position, token in enumerate(tokens, start=1):
        grants.append(TokenGrant(_check_token(token, f"{_TOKEN_SOURCE}, token {position}")))
    return grants


def grants_from_file(path: str | os.PathLike[str]) -> list[TokenGrant]:
    """Grants from a tokens file: ``token read|write experiment_id,…|*`` on each line.

    Strict, because a line read loosely can grant more than it says: every line is blank,
    a comment (``#`` first, after optional spaces) or exactly those three fields, separated
    by spaces or tabs. Nothing is assumed: a line without its rights or its experiments is
    refused, not read as full access. Any other line, a token given twice, or a file with no
    token at all (auth would be off) raises ``InvalidArgumentError`` naming the file and the
    line, so the server stops before it listens. Messages never contain a token.
    """
    try:
        # Bytes decoded here: text mode would also break lines at a lone "\r".
        text = Path(path).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"Cannot read the tokens file {str(path)!r}: {exc}") from None
    grants: list[TokenGrant] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        where = f"{path}:{number}"
        if not line.strip(" \t") or line.lstrip(" \t").startswith("#"):
            _check_printable(line, where)
            continue
        grant = _grant_line(line, where)
        if grant.token in seen:
            raise InvalidArgumentError(
                f"{where}: this token is already granted on line {seen[grant.token]}; "
                "give each token one line."
            )
        seen[grant.token] = number
        grants.append(grant)
    if not grants:
        raise InvalidArgumentError(
            f"{path}: the tokens file grants no token, so auth would be off; add a line "
            f"'{_TOKENS_FILE_FORM}' or do not pass the file."
        )
    return grants


def _grant_line(line: str, where: str) -> TokenGrant:
    """One non-comment line of a tokens file: exactly ``token access scope``."""
    _check_printable(line, where)
    if "#" in line:
        raise InvalidArgumentError(
            f"{where}: '#' at column {line.index('#') + 1}; a comment is a whole line starting "
            "with '#', and tokens cannot contain '#'."
        )
    parts = _FIELD_SEPARATOR.split(line.strip(" \t"))
    if len(parts) != 3:
        raise InvalidArgumentError(
            f"{where}: expected 3 fields '{_TOKENS_FILE_FORM}', got {len(parts)}; "
            "rights and experiments are never assumed."
        )
    token = _check_token(parts[0], where)
    if parts[1] not in ("read", "write"):
        raise InvalidArgumentError(f"{where}: the second field must be 'read' or 'write'.")
    return TokenGrant(token, write=parts[1] == "write", experiment_ids=_scope(parts[2], where))


def _scope(field: str, where: str) -> frozenset[str] | None:
    """``*`` (every experiment, ``None``) or experiment ids separated by single commas."""
    if field == "*":
        return None
    ids = field.split(",")
    for experiment_id in ids:
        if not experiment_id or "*" in experiment_id or len(experiment_id) > MAX_SCOPE_ID_CHARS:
            raise InvalidArgumentError(
                f"{where}: the third field must be '*' or experiment ids separated by commas "
                f"(each 1 to {MAX_SCOPE_ID_CHARS} characters, no '*', no empty id)."
            )
    return frozenset(ids)


def _check_printable(line: str, where: str) -> None:
    for column, char in enumerate(line, start=1):
        if char != "\t" and not char.isprintable():
            raise InvalidArgumentError(
                f"{where}: non-printable character U+{ord(char):04X} at column {column}."
            )


def _check_token(token: str, where: str) -> str:
    """A bearer token: at least ``MIN_TOKEN_CHARS`` visible ASCII characters, no ',' or '#'.

    ASCII only because a request header reaches the server as Latin-1 (a longer character
    could never match); ',' separates tokens in the environment, '#' starts comments.
    """
    if any(not "!" <= c <= "~" or c in ",#" for c in token):
        raise InvalidArgumentError(
            f"{where}: a token must be visible ASCII characters, without spaces, ',' or '#'."
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise InvalidArgumentError(
            f"{where}: the token has {len(token)} characters; a token needs at least "
            f'{MIN_TOKEN_CHARS} (make one with: python -c "import secrets; '
            f'print(secrets.token_urlsafe(32))").'
        )
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
        max_future_seconds=MAX_FUTURE_SECONDS.get(),
        body_timeout_seconds=BODY_TIMEOUT_SECONDS.get(),
        ingest_max_inflight_bytes=INGEST_MAX_INFLIGHT_BYTES.get(),
    )
    return STORE_URI.get() or DEFAULT_STORE_URI, server_settings


def export_for_workers(values: Mapping[settings.Setting[Any], str | None]) -> None:
    """Hand settings to worker processes through their environment (``Setting.export``)."""
    for setting, value in values.items():
        setting.export(value)
