"""The export pipeline's process hooks: interpreter exit, SIGTERM and fork.

At exit and on SIGTERM every pipeline keeps retrying for up to
``THREADLINE_EXIT_FLUSH_TIMEOUT`` seconds, spools what is still undelivered, and, when
spans of its destinations wait in the spool, prints one line on stderr naming the folder,
the span count and the command that replays them. After ``os.fork()`` the child starts
with an empty queue and fresh locks.
"""

from __future__ import annotations

import atexit
import os
import shlex
import sys
import threading
import weakref
from typing import TYPE_CHECKING

from threadline import settings
from threadline.tracing import _safety

if TYPE_CHECKING:
    from threadline.export._pipeline import ExportPipeline

_pipelines: weakref.WeakSet[ExportPipeline] = weakref.WeakSet()
_hooks_registered = False


def register(pipeline: ExportPipeline) -> None:
    """Flush ``pipeline`` at exit and on SIGTERM; reinitialise it in a forked child."""
    global _hooks_registered
    _pipelines.add(pipeline)
    if _hooks_registered:
        return
    _hooks_registered = True
    atexit.register(flush_all, "exit")
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reinit_all_after_fork)
    _install_sigterm_flush()


def flush_all(why: str) -> None:
    """Shut every pipeline down (retry, then spool), saying how to replay what is left."""
    for pipeline in list(_pipelines):
        try:
            pipeline.shutdown()
            notice = exit_notice(pipeline)
        except Exception as exc:
            _safety.log_once("export-exit", f"threadline: flush at {why} failed: {exc}", exc)
            continue
        if notice is not None and sys.stderr is not None:
            try:
                print(notice, file=sys.stderr, flush=True)
            except (OSError, ValueError):  # stderr closed: the spool is still there
                pass


def exit_notice(pipeline: ExportPipeline) -> str | None:
    """One line about the spans of ``pipeline``'s destinations left in the spool, if any."""
    spool = pipeline.spool
    keys = pipeline.destination_keys()
    if spool is None or not keys:
        return None
    backlogs = spool.backlogs(keys)
    spans = sum(b.spans for b in backlogs)
    if not spans:
        return None
    from threadline.store._redact import hide_password

    command = ["threadline", "spool", "replay"]
    if len(backlogs) == 1 and backlogs[0].kind == "store":
        command += ["--tracking-uri", hide_password(backlogs[0].target)]
    if settings.SPOOL_DIR.is_set():
        command += ["--spool-dir", str(spool.folder)]
    where = " and ".join(sorted({hide_password(b.target) for b in backlogs}))
    return (
        f"threadline: {spans} spans for {where} were not delivered within "
        f"{settings.EXIT_FLUSH_TIMEOUT.name}={pipeline.exit_timeout:g} s and wait in the "
        f"spool {spool.folder}; replay them with: {shlex.join(command)}"
    )


def _install_sigterm_flush() -> None:
    """On SIGTERM, flush (within the deadline) and then terminate as the default would.

    Installed only from the main thread and only if no SIGTERM handler was set, so an
    application's own handling always wins.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        flush_all("SIGTERM")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


def _reinit_all_after_fork() -> None:
    for pipeline in list(_pipelines):
        pipeline._after_fork_in_child()
