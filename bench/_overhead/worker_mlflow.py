"""Worker for MLflow Tracing: ``@mlflow.trace`` to a SQLite tracking store, async logging.

Async trace logging is on by default in MLflow 3 (``MLFLOW_ENABLE_ASYNC_TRACE_LOGGING``,
default true); the worker sets the variable explicitly and also calls
``mlflow.config.enable_async_logging()`` as MLflow's docs suggest.
"""

from __future__ import annotations

import argparse
import logging
import os
from importlib.metadata import version
from pathlib import Path

from _overhead.harness import Contender, build_workload, main

os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "true"

import mlflow  # after the variable above is set


def build(args: argparse.Namespace) -> Contender:
    """MLflow tracing into ``<workdir>/mlflow.db``, experiment ``bench``."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    workdir = Path(args.workdir)
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    mlflow.create_experiment("bench", artifact_location=(workdir / "artifacts").as_uri())
    experiment_id = mlflow.set_experiment("bench").experiment_id
    mlflow.config.enable_async_logging()

    def count_stored() -> tuple[int, int]:
        traces = mlflow.search_traces(
            locations=[experiment_id], max_results=1_000_000, return_type="list"
        )
        return len(traces), sum(len(t.data.spans) for t in traces)

    return Contender(
        traced=build_workload(mlflow.trace),
        flush=mlflow.flush_trace_async_logging,
        disable=mlflow.tracing.disable,
        count_stored=count_stored,
        versions={"mlflow": version("mlflow")},
    )


if __name__ == "__main__":
    main(build)
