"""Bearer-token authentication and per-experiment access.

Off when no token is configured. With tokens, ``AuthMiddleware`` answers 401 to any API or
ingest call without a known ``Authorization: Bearer …`` token (before the body is read) and
puts the caller's ``Principal`` in the request state; routes then check rights with
``require_read`` / ``require_write`` (403) and narrow searches with ``readable_ids``.

Lookups by trace or run id answer 404, not 403, for objects in experiments the token cannot
see: such a token learns nothing about them, not even that they exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from threadline.server.config import TokenGrant
from threadline.server.errors import ApiError, error_response

PROTECTED_PREFIXES = ("/api/", "/v1/")
_bearer = HTTPBearer(auto_error=False, description="A token given to `threadline server`.")


@dataclass(frozen=True)
class Principal:
    """The rights of the caller: write or read only, every experiment (``None``) or some."""

    write: bool = True
    experiment_ids: frozenset[str] | None = None

    @property
    def scoped(self) -> bool:
        return self.experiment_ids is not None

    def can_read(self, experiment_id: str) -> bool:
        return self.experiment_ids is None or str(experiment_id) in self.experiment_ids

    def can_write(self, experiment_id: str) -> bool:
        return self.write and self.can_read(experiment_id)

    def require_read(self, experiment_id: str) -> None:
        if not self.can_read(experiment_id):
            raise ApiError(403, f"This token may not access experiment {experiment_id!r}.")

    def require_write(self, experiment_id: str) -> None:
        self.require_read(experiment_id)
        if not self.write:
            raise ApiError(403, "This token is read-only.")

    def require_global_write(self) -> None:
        """Creating experiments needs a write token for every experiment."""
        if not self.write:
            raise ApiError(403, "This token is read-only.")
        if self.scoped:
            raise ApiError(403, "This token is limited to some experiments; it cannot create one.")

    def readable_ids(self, requested: Iterable[str] | None) -> list[str] | None:
        """The experiments to search: all requested (each must be readable), or all visible."""
        if requested is None:
            return None if self.experiment_ids is None else sorted(self.experiment_ids)
        ids = [str(e) for e in requested]
        for experiment_id in ids:
            self.require_read(experiment_id)
        return ids


FULL_ACCESS = Principal()


class AuthMiddleware:
    """401 for API and ingest calls without a valid token; records the caller's rights."""

    def __init__(self, app: ASGIApp, grants: tuple[TokenGrant, ...]) -> None:
        self.app = app
        self.grants = grants

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        principal: Principal | None = FULL_ACCESS
        if self.grants and scope["path"].startswith(PROTECTED_PREFIXES):
            principal = self._authenticate(_header(scope, b"authorization"))
            if principal is None:
                response = error_response(
                    401,
                    "Missing or unknown bearer token: send 'Authorization: Bearer <token>'.",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _authenticate(self, header: str | None) -> Principal | None:
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        found = None
        for grant in self.grants:  # compare with every grant: timing reveals nothing
            if hmac.compare_digest(grant.token.encode(), token.encode("utf-8", "replace")):
                found = grant
        if found is None:
            return None
        return Principal(write=found.write, experiment_ids=found.experiment_ids)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def principal(
    request: Request,
    _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> Principal:
    """The caller's rights (a dependency; declares the bearer scheme in the OpenAPI).

    ``async`` though it never waits: FastAPI runs a plain function dependency in its
    thread pool, a hop that costs more than the lookup itself on every request."""
    found = getattr(request.state, "principal", None)
    if not isinstance(found, Principal):  # the middleware did not run: fail closed
        raise ApiError(401, "The request was not authenticated.")
    return found
