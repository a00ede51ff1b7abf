"""Artifact repositories: where span payloads too large for a database row are kept.

``get_artifact_repository(destination)`` takes what ``threadline server
--artifacts-destination`` takes: a folder path (relative paths are resolved against the
current directory), ``file:///absolute/path``, or ``s3://bucket/prefix``. Importing this
package imports neither boto3 nor anything heavy.
"""

from __future__ import annotations

import os
import urllib.parse

from threadline.artifacts.base import (
    ArtifactNotFoundError,
    ArtifactRepository,
    ArtifactStoreError,
    check_key,
)
from threadline.errors import InvalidArgumentError

__all__ = [
    "ACCEPTED_DESTINATIONS",
    "ArtifactNotFoundError",
    "ArtifactRepository",
    "ArtifactStoreError",
    "check_key",
    "get_artifact_repository",
    "resolve_destination",
]

ACCEPTED_DESTINATIONS = "a folder path, file:///absolute/path, or s3://bucket/prefix"


def get_artifact_repository(destination: str | os.PathLike[str]) -> ArtifactRepository:
    """The repository for ``destination``; ``InvalidArgumentError`` for one it cannot use.

    A folder is created if missing. S3 is not contacted until the first read or write.
    """
    text = resolve_destination(destination)
    if text.startswith("s3://"):
        from threadline.artifacts.s3 import S3ArtifactRepository

        parts = urllib.parse.urlsplit(text)
        return S3ArtifactRepository(parts.netloc, parts.path)
    from threadline.artifacts.local import LocalArtifactRepository

    return LocalArtifactRepository(text)


def resolve_destination(destination: str | os.PathLike[str]) -> str:
    """``destination`` normalised: ``s3://…`` as given, anything else an absolute folder path.

    Worker processes get this form, so a relative folder means the same in all of them.
    """
    if not isinstance(destination, (str, os.PathLike)):
        raise InvalidArgumentError(f"Artifacts destination must be a string, got {destination!r}.")
    text = os.fspath(destination).strip()
    if not text:
        raise InvalidArgumentError(f"Artifacts destination is empty; use {ACCEPTED_DESTINATIONS}.")
    scheme = urllib.parse.urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme == "s3":
        parts = urllib.parse.urlsplit(text)
        if not parts.netloc or parts.query or parts.fragment:
            raise InvalidArgumentError(f"Artifacts destination {text!r} is not s3://bucket/prefix.")
        return f"s3://{parts.netloc}{parts.path}"
    if scheme == "file":
        parts = urllib.parse.urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise InvalidArgumentError(
                f"Artifacts destination {text!r} names a remote host; file:// URIs must be local "
                "(file:///absolute/path)."
            )
        return os.path.abspath(urllib.parse.unquote(parts.path))
    if scheme:
        raise InvalidArgumentError(
            f"Unsupported artifacts destination {text!r}: use {ACCEPTED_DESTINATIONS}."
        )
    return os.path.abspath(os.path.expanduser(text))
