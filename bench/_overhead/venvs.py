"""One venv per peer under ``bench/.venvs/<name>``, created once with pip from PyPI."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALL_TIMEOUT_S = 40 * 60


class PeerUnavailable(Exception):
    """A contender cannot be measured; the message says why."""


@dataclass(frozen=True)
class Peer:
    """A peer's venv: what to install and the import that proves the install works."""

    name: str
    packages: tuple[str, ...]
    probe: str


PEERS = {
    "mlflow": Peer(
        name="mlflow",
        packages=("mlflow",),
        probe="import mlflow, mlflow.store.tracking.sqlalchemy_store",
    ),
    "otel": Peer(
        name="otel",
        packages=("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"),
        probe=(
            "import opentelemetry.sdk.trace, "
            "opentelemetry.exporter.otlp.proto.http.trace_exporter, "
            "opentelemetry.proto.collector.trace.v1.trace_service_pb2"
        ),
    ),
}


def _probe(python: Path, statement: str) -> str | None:
    """None when ``statement`` runs in ``python``; else the last line of its error."""
    if not python.exists():
        return f"{python} does not exist"
    proc = subprocess.run(
        [str(python), "-c", statement], capture_output=True, text=True, timeout=300
    )
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


def _run_logged(what: str, cmd: list[str], log: Path) -> None:
    """Run ``cmd`` with its output appended to ``log``; raise PeerUnavailable on failure."""
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        try:
            proc = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerUnavailable(f"{what} timed out; see {log}") from exc
    if proc.returncode != 0:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = [line for line in lines if not line.startswith(("WARNING", "$ "))][-3:]
        raise PeerUnavailable(f"{what} failed ({' | '.join(tail)}); see {log}")


def ensure_venv(peer: Peer, root: Path) -> Path:
    """The python of ``peer``'s venv, creating and installing it on first use.

    Raises:
        PeerUnavailable: the venv could not be created or the install does not import.
    """
    venv = root / peer.name
    python = venv / "bin" / "python"
    if _probe(python, peer.probe) is None:
        return python
    root.mkdir(parents=True, exist_ok=True)
    log = root / f"{peer.name}-install.log"
    log.write_text("", encoding="utf-8")
    print(
        f"[setup] installing {' '.join(peer.packages)} into {venv} (minutes; log: {log})",
        file=sys.stderr,
        flush=True,
    )
    if not python.exists():
        _run_logged("python -m venv", [sys.executable, "-m", "venv", str(venv)], log)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    _run_logged(f"pip install {' '.join(peer.packages)}", [*pip, *peer.packages], log)
    error = _probe(python, peer.probe)
    if error is not None:
        raise PeerUnavailable(f"installed, but `{peer.probe}` fails: {error}")
    return python
