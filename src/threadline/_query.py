"""Reading traces back: ``get_trace``, ``search_traces`` (DataFrame or list) and
``search_sessions``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from threadline._flush import flush_pending_for_read
from threadline._tracking_uri import current_store
from threadline.entities.experiment import DEFAULT_EXPERIMENT_ID
from threadline.entities.trace import Trace
from threadline.errors import InvalidArgumentError
from threadline.tracing._runtime import RT

if TYPE_CHECKING:
    import pandas as pd

    from threadline.client import PagedList
    from threadline.store.base import Store

SEARCH_COLUMNS = (
    "trace_id",
    "trace",
    "client_request_id",
    "state",
    "request_time",
    "execution_duration",
    "request",
    "response",
    "request_preview",
    "response_preview",
    "trace_metadata",
    "tags",
    "spans",
    "experiment_id",
    "run_id",
    "assessments",
    "expectations",
)
_PAGE = 1000


def get_trace(trace_id: str) -> Trace | None:
    """The trace with this id, or ``None``; traces this process finished are visible at once."""
    flush_pending_for_read()
    return current_store().get_trace(trace_id)


def search_traces(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str | None = None,
    max_results: int | None = None,
    order_by: Sequence[str] | None = None,
    run_id: str | None = None,
    return_type: str = "pandas",
) -> pd.DataFrame | list[Trace]:
    """Traces matching ``filter_string`` in the given (default: active) experiments.

    ``return_type="pandas"`` gives a DataFrame with one row per trace; ``"list"`` gives
    ``Trace`` objects. ``max_results=None`` returns every match.
    """
    if return_type not in ("pandas", "list"):
        raise InvalidArgumentError(
            f"search_traces(return_type={return_type!r}): use 'pandas' or 'list'."
        )
    if max_results is not None and (not isinstance(max_results, int) or max_results <= 0):
        raise InvalidArgumentError(
            f"search_traces(max_results={max_results!r}) must be a positive integer or None."
        )
    if isinstance(experiment_ids, str):
        experiment_ids = [experiment_ids]
    if experiment_ids is None and run_id is None:
        experiment_ids = [_active_experiment()]
    flush_pending_for_read()
    traces = collect_traces(
        current_store(), experiment_ids, filter_string, max_results, order_by, run_id
    )
    if return_type == "list":
        return traces
    return traces_to_dataframe(traces)


def search_sessions(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str | None = None,
    max_results: int = 100,
    order_by: Sequence[str] | None = None,
    page_token: str | None = None,
) -> PagedList:
    """Sessions (traces sharing a ``session_id``) of the given (default: active) experiments.

    A ``Session`` has its ``session_id``, ``user``, ``traces`` (summaries, in time order),
    first and last time, ``turns``, tokens, ``cost``, ``error_count`` and a ``feedback``
    summary by name. ``filter_string`` is the trace filter language: a session is listed when
    one of its traces matches. ``order_by`` takes ``last_time_ms`` (the default, ``DESC``),
    ``first_time_ms``, ``turns``, ``error_count``, ``total_tokens``. The result is a list
    of at most ``max_results``; its ``.token`` is the ``page_token`` of the next page.
    """
    from threadline.client import ThreadlineClient

    if experiment_ids is None:
        experiment_ids = [_active_experiment()]
    return ThreadlineClient().search_sessions(
        experiment_ids=experiment_ids,
        filter_string=filter_string,
        max_results=max_results,
        order_by=order_by,
        page_token=page_token,
    )


def _active_experiment() -> str:
    from threadline import settings

    return RT.active_experiment_id or settings.EXPERIMENT_ID.get() or DEFAULT_EXPERIMENT_ID


def collect_traces(
    store: Store,
    experiment_ids: Sequence[str] | None,
    filter_string: str | None,
    max_results: int | None,
    order_by: Sequence[str] | None,
    run_id: str | None,
    include_spans: bool = True,
) -> list[Trace]:
    """Every match (or the first ``max_results``), paging through the store."""
    found: list[Trace] = []
    token: str | None = None
    while True:
        want = _PAGE if max_results is None else min(_PAGE, max_results - len(found))
        page, token = store.search_traces(
            experiment_ids=list(experiment_ids) if experiment_ids is not None else None,
            filter_string=filter_string,
            max_results=want,
            order_by=list(order_by) if order_by else None,
            page_token=token,
            run_id=run_id,
            include_spans=include_spans,
        )
        found.extend(page)
        if token is None or (max_results is not None and len(found) >= max_results):
            return found


def traces_to_dataframe(traces: Sequence[Trace]) -> pd.DataFrame:
    """One row per trace with the columns of ``SEARCH_COLUMNS``."""
    try:
        import pandas as pd
    except ImportError:
        raise InvalidArgumentError(
            "search_traces(return_type='pandas') needs pandas: pip install 'threadline[pandas]', "
            "or pass return_type='list'."
        ) from None
    rows = [_row(trace) for trace in traces]
    return pd.DataFrame(rows, columns=list(SEARCH_COLUMNS))


def _row(trace: Trace) -> dict[str, Any]:
    info = trace.info
    root = trace.data.root_span
    return {
        "trace_id": info.trace_id,
        "trace": trace,
        "client_request_id": info.client_request_id,
        "state": info.state.value,
        "request_time": info.request_time,
        "execution_duration": info.execution_duration,
        "request": root.inputs if root is not None else None,
        "response": root.outputs if root is not None else None,
        "request_preview": info.request_preview,
        "response_preview": info.response_preview,
        "trace_metadata": dict(info.trace_metadata),
        "tags": dict(info.tags),
        "spans": list(trace.data.spans),
        "experiment_id": info.experiment_id,
        "run_id": info.run_id,
        "assessments": list(info.assessments),
        "expectations": info.expectations,
    }
