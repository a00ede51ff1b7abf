"""The tracking server (the ``[server]`` extra): REST API, OTLP ingest, ``threadline server``.

``create_app(settings, store)`` builds the ASGI app (``server/app.py``); ``ServerSettings``
is its configuration (``server/config.py``). FastAPI loads only when they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threadline.server.app import create_app
    from threadline.server.config import ServerSettings, TokenGrant

__all__ = ["ServerSettings", "TokenGrant", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from threadline.server.app import create_app

        return create_app
    if name in ("ServerSettings", "TokenGrant"):
        from threadline.server import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
