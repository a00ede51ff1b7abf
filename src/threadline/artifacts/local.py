"""Artifacts in a local folder: one file per key, written atomically.

A write goes to a temporary file next to its target, is flushed to disk, then renamed over
it (``os.replace``), so a reader sees the old bytes or the new ones, never a part, and a
crash leaves at most a stray ``.tmp-*`` file. Keys are checked by ``check_key`` and the
resolved path is verified to stay inside the folder, so no key reaches outside it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from threadline.artifacts.base import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    check_key,
    check_prefix,
)
from threadline.errors import InvalidArgumentError

_TEMP_PREFIX = ".tmp-"


class LocalArtifactRepository:
    """Artifacts as files under ``root`` (created if missing)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgumentError(
                f"Cannot use {str(self._root)!r} as the artifacts folder: "
                f"{exc.strerror or exc}. Give a folder this process may create and write."
            ) from None
        if not self._root.is_dir():
            raise InvalidArgumentError(
                f"The artifacts destination {str(self._root)!r} is not a folder."
            )

    @property
    def location(self) -> str:
        return str(self._root)

    @property
    def root(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"LocalArtifactRepository({self.location!r})"

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            try:
                self._write(path, data)
            except FileNotFoundError:  # a concurrent delete removed the emptied folder
                self._write(path, data)
        except OSError as exc:
            raise self._error("write", key, exc) from None

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"Artifact {key!r} is missing from {self.location!r}."
            ) from None
        except OSError as exc:
            raise self._error("read", key, exc) from None

    def delete_prefix(self, prefix: str) -> None:
        folder = self._path(check_prefix(prefix)[:-1])
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error("delete", prefix, exc) from None
        self._prune(folder.parent)

    def _path(self, key: str) -> Path:
        path = self._root.joinpath(*check_key(key).split("/"))
        # Segments are plain names, but a symlink placed inside the folder could still lead out.
        if not os.path.realpath(path).startswith(os.path.realpath(self._root) + os.sep):
            raise InvalidArgumentError(f"Artifact key {key!r} resolves outside {self.location!r}.")
        return path

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp, path)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise

    def _prune(self, folder: Path) -> None:
        """Remove folders left empty, up to (not including) the root; best effort."""
        while folder != self._root and self._root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def _error(self, action: str, key: str, exc: OSError) -> ArtifactStoreError:
        return ArtifactStoreError(
            f"Cannot {action} artifact {key!r} in {self.location!r}: {exc.strerror or exc}. "
            "Check that the artifacts folder exists and is writable; the request can be retried."
        )
