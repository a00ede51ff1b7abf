"""The tracking URI: where traces, experiments and runs are stored.

``set_tracking_uri`` > ``THREADLINE_TRACKING_URI`` > ``sqlite:///threadline.db`` in the
current directory. The store behind it is opened on first use.
"""

from __future__ import annotations

import os

from threadline import settings
from threadline.errors import InvalidArgumentError
from threadline.tracing._runtime import RT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from threadline.store.base import Store

DEFAULT_TRACKING_URI = "sqlite:///threadline.db"
_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "http://", "https://")


def set_tracking_uri(uri: str | os.PathLike[str]) -> None:
    """Send traces to ``uri``: ``sqlite:///path.db``, ``postgresql://…`` (or a tracking server).

    Pending traces are written to the previous destination first.
    """
    text = _validate(os.fspath(uri))
    pipeline = RT.pipeline
    if pipeline is not None:
        pipeline.flush()
    RT.tracking_uri = text


def get_tracking_uri() -> str:
    """The URI in effect now."""
    if RT.tracking_uri is not None:
        return RT.tracking_uri
    from_env = settings.TRACKING_URI.get()
    if from_env is not None:
        return _validate(from_env)
    return DEFAULT_TRACKING_URI


def _validate(uri: str) -> str:
    uri = uri.strip()
    if not uri.startswith(_SCHEMES):
        if "://" not in uri and uri:
            raise InvalidArgumentError(
                f"Tracking URI {uri!r} has no scheme. Did you mean 'sqlite:///{uri}'? "
                "Accepted: sqlite:///path.db, postgresql://user@host:port/db, "
                "http(s)://host:port (a threadline server)."
            )
        raise InvalidArgumentError(
            f"Tracking URI {uri!r} is not supported. "
            "Accepted: sqlite:///path.db, postgresql://user@host:port/db, "
            "http(s)://host:port (a threadline server)."
        )
    return uri


def current_store() -> Store:
    """The store of the current tracking URI (opened, and migrated, on first use)."""
    from threadline.store import get_store

    return get_store(get_tracking_uri())
