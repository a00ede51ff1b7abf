"""The artifact repository contract: where span payloads too large for a database row go.

A repository stores opaque bytes under keys. Keys are relative, ``/``-separated paths of
plain segments (letters, digits, ``.``, ``_``, ``-``; never ``.`` or ``..``), checked here
once for every back end so no key can climb out of a folder or an S3 prefix. Errors are
``StoreError`` subclasses: a failing repository is a failing store (retryable, 503 on the
server), and a missing object is told apart so a reader can degrade instead of failing.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from threadline.errors import InvalidArgumentError, StoreError

MAX_KEY_CHARS = 1024
_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,255}")


class ArtifactStoreError(StoreError):
    """The artifact repository could not be reached, or refused a read or a write."""


class ArtifactNotFoundError(ArtifactStoreError):
    """No artifact under that key (deleted by hand, or never written)."""


@runtime_checkable
class ArtifactRepository(Protocol):
    """Bytes under keys: a local folder or an S3 prefix."""

    @property
    def location(self) -> str:
        """Where artifacts go, for messages (``/srv/artifacts``, ``s3://bucket/prefix``)."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there; readers never see a part."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; ``ArtifactNotFoundError`` when there are none."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every artifact whose key starts with ``prefix`` (a key ending in ``/``)."""


def check_key(key: str) -> str:
    """``key`` when it is a safe relative key, else ``InvalidArgumentError`` saying why."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise InvalidArgumentError(
            f"Artifact key must be a non-empty string of at most {MAX_KEY_CHARS} characters, "
            f"got {key!r:.80}."
        )
    for segment in key.split("/"):
        if segment in (".", "..") or not _SEGMENT.fullmatch(segment):
            raise InvalidArgumentError(
                f"Artifact key {key!r:.200} is not a safe relative path: use '/'-separated "
                "segments of letters, digits, '.', '_' and '-' (no empty, '.' or '..' segment)."
            )
    return key


def check_prefix(prefix: str) -> str:
    """``prefix`` when it is a safe key followed by ``/`` (so ``a/b/`` never matches ``a/bc``)."""
    if not isinstance(prefix, str) or not prefix.endswith("/"):
        raise InvalidArgumentError(f"Artifact prefix must end with '/', got {prefix!r:.200}.")
    check_key(prefix[:-1])
    return prefix
