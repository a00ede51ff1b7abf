"""Where threadline persists traces, experiments and runs: ``get_store(uri)``.

Importing this package is cheap: SQLAlchemy and Alembic load only when a store is opened.

Accepted URIs: ``sqlite:///relative/or/absolute.db`` (a relative path is resolved against
the current directory at call time), ``sqlite:///:memory:`` (one shared in-memory database,
for tests), ``postgresql://user:password@host:port/db`` and ``postgresql+psycopg://…``;
``http(s)://host:port`` is a threadline server (``RestStore``, standard library only).
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import TYPE_CHECKING

from threadline.errors import InvalidArgumentError
from threadline.store.base import SpanRow, Store, TraceRow

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["SpanRow", "Store", "TraceRow", "get_store", "reset_store_cache"]

ACCEPTED_URIS = (
    "sqlite:///path/to/file.db, sqlite:///:memory:, "
    "postgresql://user:password@host:port/database, postgresql+psycopg://…, "
    "http(s)://host:port (a threadline server)"
)
_SERVER_SCHEMES = ("http://", "https://")

_stores: dict[str, Store] = {}
_lock = threading.Lock()
_atexit_registered = False


def get_store(uri: str) -> Store:
    """The store for ``uri``, opened (and its schema upgraded) on first use, then cached.

    Raises ``InvalidArgumentError`` for an unsupported URI and ``StoreError`` when the
    database cannot be reached or upgraded. A server URI is not contacted until first used.
    """
    url: URL | None = None
    key = _server_uri(uri)
    if key is None:
        url = _resolve(uri)
        key = url.render_as_string(hide_password=False)
    global _atexit_registered
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _open(key, url)
            _stores[key] = store
            if not _atexit_registered:
                # Close pooled connections cleanly at exit (a store reconnects if still used).
                atexit.register(reset_store_cache)
                _atexit_registered = True
        return store


def reset_store_cache() -> None:
    """Close every cached store and forget it (tests use this between cases)."""
    with _lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()


def _open(key: str, url: URL | None) -> Store:
    if url is None:
        from threadline.store.rest import RestStore

        return RestStore(key)
    from threadline.store.sql import SqlStore

    return SqlStore(url)


def _server_uri(uri: str) -> str | None:
    """``uri`` without a trailing slash when it names a threadline server, else ``None``."""
    if isinstance(uri, str) and uri.strip().lower().startswith(_SERVER_SCHEMES):
        return uri.strip().rstrip("/")
    return None


def _resolve(uri: str) -> URL:
    """Parse and normalise ``uri`` into the SQLAlchemy URL of a supported back end."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not isinstance(uri, (str, os.PathLike)):
        raise InvalidArgumentError(f"Store URI must be a string, got {uri!r}.")
    text = os.fspath(uri).strip()
    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise _unsupported(text) from exc
    if url.drivername == "sqlite":
        return _sqlite_url(url, text)
    if url.drivername in ("postgresql", "postgresql+psycopg"):
        if not url.database:
            raise InvalidArgumentError(
                f"Store URI {_masked(url)!r} names no database; use "
                "postgresql://user:password@host:port/database."
            )
        return url.set(drivername="postgresql+psycopg")
    raise _unsupported(_masked(url))


def _sqlite_url(url: URL, text: str) -> URL:
    if url.database in (None, "", ":memory:"):
        return url.set(database=":memory:")
    return url.set(database=os.path.abspath(os.path.expanduser(url.database)))


def _masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _unsupported(uri: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Unsupported store URI {uri!r}. Accepted forms: {ACCEPTED_URIS}.")
