"""MLflow's venv (``bench/.venvs/mlflow``) with the packages a workload needs in it.

The venv itself is created by ``_overhead.venvs`` (the overhead benchmark, or
``frameworks.py`` on first use); packages are installed into it at this venv's versions
when this venv has them, so that both contenders run the same library code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MLFLOW_PYTHON = ROOT / "bench" / ".venvs" / "mlflow" / "bin" / "python"


def pinned(package: str) -> str:
    """``package==<this venv's version>``, or the bare name when it is not installed here."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return package


def ensure_packages(packages: list[str], probe: str, what: str) -> str | None:
    """None when ``probe`` (an import statement) runs in MLflow's venv, after installing
    ``packages`` there if it did not; else the reason MLflow cannot be measured."""
    if not MLFLOW_PYTHON.exists():
        return f"{MLFLOW_PYTHON} does not exist (the overhead benchmark creates it)"
    check = [str(MLFLOW_PYTHON), "-c", probe]
    if subprocess.run(check, capture_output=True).returncode == 0:
        return None
    specs = [pinned(p) for p in packages]
    spec = " ".join(specs)
    print(f"installing {spec} into the MLflow venv…", file=sys.stderr, flush=True)
    install = [str(MLFLOW_PYTHON), "-m", "pip", "install", "-q", *specs]
    done = subprocess.run(install, capture_output=True, text=True)
    if done.returncode != 0:
        return f"pip install {spec} into the MLflow venv failed: {done.stderr.strip()[-300:]}"
    if subprocess.run(check, capture_output=True).returncode != 0:
        return f"{what} does not import in the MLflow venv"
    return None


def create_venv() -> str | None:
    """Create MLflow's venv if missing (minutes); None when it is there, else why not."""
    if MLFLOW_PYTHON.exists():
        return None
    sys.path.insert(0, str(ROOT / "bench"))
    from _overhead.venvs import PEERS, PeerUnavailable, ensure_venv

    try:
        ensure_venv(PEERS["mlflow"], ROOT / "bench" / ".venvs")
    except PeerUnavailable as exc:
        return str(exc)
    return None
