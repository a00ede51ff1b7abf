"""Artifacts in Amazon S3 or any S3-compatible service, through boto3.

boto3 is imported when a repository is created (``pip install "threadline[s3]"``), never
by ``import threadline``. Where to connect and as whom is boto3's standard configuration,
which works the same in every worker process: credentials from the usual chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance role), the
region from ``AWS_DEFAULT_REGION``, and an S3-compatible endpoint (MinIO, moto, Ceph…) from
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, which botocore honours natively. The
client is made on first use and shared by threads (boto3 clients are thread-safe; making
one is not, hence the lock).
"""

from __future__ import annotations

import threading
from typing import Any

from threadline.artifacts.base import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    check_key,
    check_prefix,
)
from threadline.errors import InvalidArgumentError

INSTALL_HINT = 'pip install "threadline[s3]"'
DELETE_BATCH = 1000  # most keys one DeleteObjects call takes
_MISSING = ("NoSuchKey", "404", "NotFound")


class S3ArtifactRepository:
    """Artifacts as objects under ``s3://bucket/prefix/``."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        try:
            import boto3  # noqa: F401
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            raise InvalidArgumentError(
                f"An s3:// artifacts destination needs boto3: run {INSTALL_HINT}."
            ) from None
        if not bucket:
            raise InvalidArgumentError(
                "An s3:// artifacts destination needs a bucket: s3://bucket/prefix."
            )
        # What a failed call raises: botocore's own errors, and OSError from the socket.
        self._failures: tuple[type[Exception], ...] = (BotoCoreError, ClientError, OSError)
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}"

    def __repr__(self) -> str:
        return f"S3ArtifactRepository({self.location!r})"

    def put(self, key: str, data: bytes) -> None:
        name = self._name(check_key(key))
        self._call("write", key, "put_object", Bucket=self._bucket, Key=name, Body=data)

    def get(self, key: str) -> bytes:
        name = self._name(check_key(key))
        response = self._call("read", key, "get_object", Bucket=self._bucket, Key=name)
        try:
            body: bytes = response["Body"].read()
        except self._failures as exc:  # the connection broke while streaming the body
            raise self._error("read", key, exc) from None
        return body

    def delete_prefix(self, prefix: str) -> None:
        name = self._name(check_prefix(prefix))
        pages = self._call("list", prefix, "get_paginator", "list_objects_v2")
        try:
            keys = [
                item["Key"]
                for page in pages.paginate(Bucket=self._bucket, Prefix=name)
                for item in page.get("Contents", ())
            ]
        except self._failures as exc:
            raise self._error("list", prefix, exc) from None
        for start in range(0, len(keys), DELETE_BATCH):
            objects = [{"Key": k} for k in keys[start : start + DELETE_BATCH]]
            response = self._call(
                "delete",
                prefix,
                "delete_objects",
                Bucket=self._bucket,
                Delete={"Objects": objects, "Quiet": True},
            )
            failed = response.get("Errors") or []
            if failed:
                first = failed[0]
                raise ArtifactStoreError(
                    f"S3 refused to delete {len(failed)} artifacts under {self.location}{prefix}: "
                    f"{first.get('Code')}: {first.get('Message')}."
                )

    def _name(self, key: str) -> str:
        return self._prefix + key

    def _call(self, action: str, key: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._s3(), method)(*args, **kwargs)
        except self._failures as exc:
            if action == "read" and _error_code(exc) in _MISSING:
                raise ArtifactNotFoundError(
                    f"Artifact {key!r} is missing from {self.location}."
                ) from None
            raise self._error(action, key, exc) from None

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                config = Config(
                    retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=10,
                    read_timeout=60,
                )
                self._client = boto3.session.Session().client("s3", config=config)
            return self._client

    def _error(self, action: str, key: str, exc: Exception) -> ArtifactStoreError:
        return ArtifactStoreError(
            f"Cannot {action} artifact {key!r} at {self.location}: {type(exc).__name__}: {exc}. "
            "Check the bucket, the credentials and AWS_ENDPOINT_URL_S3; the request can be retried."
        )


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
