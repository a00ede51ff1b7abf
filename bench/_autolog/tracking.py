"""Each contender's tracking setup in a worker: a SQLite store in a scratch folder, async
logging on, and a way to count the traces stored at the end."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def setup(contender: str, workdir: Path) -> Callable[[], int]:
    """Point ``contender`` (``threadline`` or ``mlflow``) at ``workdir``; returns the function
    that flushes and counts the stored traces."""
    if contender == "threadline":
        import threadline

        threadline.set_tracking_uri(f"sqlite:///{workdir / 'threadline.db'}")
        threadline.config.enable_async_logging()

        def count() -> int:
            threadline.flush_trace_async_logging()
            return len(threadline.search_traces(return_type="list", max_results=1_000_000))

        return count
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "true"
    import logging

    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    mlflow.create_experiment("bench", artifact_location=(workdir / "artifacts").as_uri())
    experiment_id = mlflow.set_experiment("bench").experiment_id
    mlflow.config.enable_async_logging()

    def count_mlflow() -> int:
        mlflow.flush_trace_async_logging()
        traces = mlflow.search_traces(
            locations=[experiment_id], max_results=1_000_000, return_type="list"
        )
        return len(traces)

    return count_mlflow
