"""Running the app under uvicorn: one process, or a supervisor of ``--workers N``.

Both use ``ServerConfig`` (uvicorn's configuration with the request-header deadline of
``slow_clients.py``) on a socket ``server/main.py`` has already bound. Imported only when
the server runs: uvicorn is not needed by the rest of the CLI.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threadline.server.slow_clients import ServerConfig

GRACEFUL_SHUTDOWN_SECONDS = 30


def serve_one(app: Any, sock: socket.socket, *, header_timeout: float) -> None:
    """Serve ``app`` in this process until SIGTERM/SIGINT (then exit cleanly)."""
    import uvicorn

    config = ServerConfig(
        app,
        header_timeout=header_timeout,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    with _signals_end_quietly():
        uvicorn.Server(config).run(sockets=[sock])


def serve_many(factory: str, workers: int, sock: socket.socket, *, header_timeout: float) -> None:
    """Supervise ``workers`` processes, each building its app with ``factory`` (an import
    string); each worker ends by itself if this supervisor dies (``supervision.py``)."""
    from uvicorn.supervisors import Multiprocess

    config = ServerConfig(
        factory,
        header_timeout=header_timeout,
        factory=True,
        workers=workers,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    Multiprocess(config, sockets=[sock]).run()


@contextmanager
def _signals_end_quietly() -> Iterator[None]:
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, to the handlers it found:
    make those no-ops so a clean shutdown exits 0 instead of dying of the signal."""
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
