"""The web UI: ``/`` serves ``index.html``, ``/docs`` the API reference (``docs.html``),
``/ui/<file>`` their ES modules and CSS.

Plain files with no build step, read from the installed package: the UI's own files from
``threadline/server/ui/`` and the shared trace renderer (``trace_view.js`` / ``.css``) from
``threadline.ui``. Every UI response carries a strict Content-Security-Policy (no inline
script, no eval, no foreign origins) and ``X-Content-Type-Options: nosniff``. These files
need no token; the page's API calls carry the one the user pastes in when auth is on.

The API reference is our own page (``docs.js``) rendering ``/openapi.json``, instead of
FastAPI's Swagger UI and ReDoc pages, which load their scripts from a public CDN and could
not run under this policy; ``/redoc`` is not served.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

from threadline.server.api import stats
from threadline.server.errors import error_response
from threadline.ui import ASSET_NAMES, read_asset

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
_FILE_NAME = re.compile(r"^[a-z][a-z0-9_]*\.(js|css|html)$")


def ui_router() -> APIRouter:
    """The UI's pages and files, plus the stats API its experiments page reads."""
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/", index, methods=["GET", "HEAD"])
    router.add_api_route("/docs", api_reference, methods=["GET", "HEAD"])
    router.add_api_route("/ui/{name}", asset, methods=["GET", "HEAD"])
    outer = APIRouter()
    outer.include_router(router)
    outer.include_router(stats.router)
    return outer


def index() -> Response:
    """The single page; the URL hash picks what it shows."""
    return _file_response("index.html")


def api_reference() -> Response:
    """The API reference page: renders ``/openapi.json`` in the browser."""
    return _file_response("docs.html")


def asset(name: str) -> Response:
    """One of the UI's files, or 404 (pages are served at their own paths only)."""
    if not _FILE_NAME.match(name) or name.endswith(".html"):
        return _not_found(name)
    return _file_response(name)


def _file_response(name: str) -> Response:
    text = _read(name)
    if text is None:
        return _not_found(name)
    media_type = MEDIA_TYPES[name[name.rindex(".") :]]
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return Response(text, media_type=media_type, headers=headers)


@cache
def _read(name: str) -> str | None:
    """The file's text: the shared renderer from ``threadline.ui``, else ``server/ui/``."""
    if name in ASSET_NAMES:
        return read_asset(name)
    path = resources.files("threadline.server").joinpath("ui").joinpath(name)
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8")


def _not_found(name: str) -> Response:
    return error_response(404, f"No UI file named {name!r}.", headers=SECURITY_HEADERS)
