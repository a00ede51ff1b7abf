"""Worker processes of ``threadline server --workers N`` end when their supervisor does.

uvicorn's supervisor stops its workers when it is stopped, but a supervisor killed outright
(SIGKILL, the OOM killer) leaves them serving with nobody to stop them, holding the port so
that a restarted server cannot bind it. So each worker watches its supervisor two ways:

- on Linux, the kernel's parent-death signal (``prctl(PR_SET_PDEATHSIG)``), and
- everywhere, the pipe multiprocessing opens from the supervisor to each worker it spawns:
  its far end closes when the supervisor dies, so a thread waiting on it wakes up.

Either way the worker gets SIGTERM, uvicorn's graceful shutdown: it stops listening, ends
the requests in flight and drains its ingest queue into the store. A supervisor that died
before the worker set this up is caught too: its pipe already reads as closed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.connection import wait

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
EXIT_SIGNAL = signal.SIGTERM


def exit_with_supervisor() -> bool:
    """In a process started by multiprocessing, arrange SIGTERM to self when the parent dies.

    Returns whether it applies (False in a process multiprocessing did not start).
    """
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return False
    set_parent_death_signal(EXIT_SIGNAL)
    sentinel = parent.sentinel
    threading.Thread(
        target=_exit_when_closed, args=(sentinel,), name="threadline-supervisor-watch", daemon=True
    ).start()
    return True


def set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):  # no libc by that name, or no prctl in it
        return False


def _exit_when_closed(sentinel: int) -> None:
    """Block until the supervisor's end of the pipe closes, then stop this worker."""
    wait([sentinel])
    os.kill(os.getpid(), EXIT_SIGNAL)
