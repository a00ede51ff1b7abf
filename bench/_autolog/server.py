"""The test suite's fake OpenAI server (``tests/integrations/_fake_openai.py``), in a process
of its own so that its work is not charged to the contender being measured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_server() -> tuple[subprocess.Popen[str], str]:
    """The server process and its base URL (``url + "/v1"`` is the API base); closing the
    process's stdin stops it."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from tests.integrations._fake_openai import serve\n"
        "server = serve(); print(server.url, flush=True); sys.stdin.read(); server.stop()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def stop_server(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)
