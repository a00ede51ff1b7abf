"""threadline: tracing and observability for LLM applications and agents.

``@threadline.trace`` or ``with threadline.start_span(...)`` record spans; traces go to the
store of the tracking URI (``sqlite:///threadline.db`` by default) and are read back with
``get_trace`` / ``search_traces``. Importing this package reads no environment, starts no
thread and imports no optional dependency.
"""

from threadline import config, entities, tracing
from threadline._experiments import get_experiment, get_experiment_by_name, set_experiment
from threadline._flush import flush_trace_async_logging
from threadline._query import get_trace, search_traces
from threadline._runs import (
    ActiveRun,
    active_run,
    end_run,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_tag,
    set_tags,
    start_run,
)
from threadline._tracking_uri import get_tracking_uri, set_tracking_uri
from threadline.entities.span import SpanType
from threadline.entities.trace_location import ExperimentLocation
from threadline.tracing._decorator import trace
from threadline.tracing._manual import (
    get_current_active_span,
    get_last_active_trace_id,
    start_span,
    update_current_trace,
)

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "ExperimentLocation",
    "SpanType",
    "__version__",
    "active_run",
    "config",
    "end_run",
    "entities",
    "flush_trace_async_logging",
    "get_current_active_span",
    "get_experiment",
    "get_experiment_by_name",
    "get_last_active_trace_id",
    "get_trace",
    "get_tracking_uri",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "search_traces",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "start_span",
    "trace",
    "tracing",
    "update_current_trace",
]
