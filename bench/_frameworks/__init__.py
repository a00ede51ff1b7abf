"""Workloads of ``bench/frameworks.py``: one module per agent framework.

Each module is discovered by the driver (every ``<name>.py`` here not starting with ``_``)
and exposes::

    NAME = "langchain"                  # also the threadline integration: threadline.<NAME>
    PACKAGES = ["langchain-core", ...]  # pip names the worker needs (installed into MLflow's
                                        # venv, at this venv's versions where it has them)
    MLFLOW_FLAVOR = "langchain"         # mlflow.<MLFLOW_FLAVOR>.autolog()

    def setup(openai_base_url: str) -> Callable[[], object]:
        '''Build the framework objects (a fake model, or a client of the fake OpenAI
        server at that base URL, ``.../v1``); return the zero-argument call to time.'''

The module imports only the standard library at its top (the driver reads the constants
in a process that may not have the framework); the framework is imported inside
``setup``. The call must do the same work whether autologging is on or off, and one call
must make one trace. A workload module can be checked on its own with
``python bench/frameworks.py --only <NAME> --contenders threadline --quick``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

REQUIRED = ("NAME", "PACKAGES", "MLFLOW_FLAVOR", "setup")


def discover() -> dict[str, ModuleType]:
    """Every workload module in this folder, by its ``NAME``, in file name order."""
    found: dict[str, ModuleType] = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{path.stem}")
        missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
        if missing:
            raise TypeError(f"bench/_frameworks/{path.name} lacks {', '.join(missing)}")
        found[module.NAME] = module
    return found


def load(name: str) -> ModuleType:
    """The workload module whose ``NAME`` is ``name``."""
    modules = discover()
    if name not in modules:
        raise KeyError(f"no workload named {name!r} in bench/_frameworks ({', '.join(modules)})")
    return modules[name]
