"""One thread that turns ingest request bodies into rows, in the order they arrived.

Decoding is pure Python that holds the interpreter, so several requests decoded at once in
a thread pool all finish together, late: the writer then sits idle while they decode and
their clients all wait for the same commit. Decoded one at a time, each request reaches the
writer as soon as it is ready, and the writer commits it while the next one decodes, which
keeps ack-after-commit as fast as answering on arrival. It also keeps the shared thread
pool free for the read API during ingest load.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class DecodeLane:
    """A single-thread executor for the decode step of every ingest route."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the lane's thread, after the requests queued before it."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-decode")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def close(self) -> None:
        """Let the thread end once its work is done (at app shutdown); reusable afterwards."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
