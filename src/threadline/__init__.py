"""threadline: tracing and observability for LLM applications and agents.

``@threadline.trace`` or ``with threadline.start_span(...)`` record spans; traces go to the
store of the tracking URI (``sqlite:///threadline.db`` by default) and are read back with
``get_trace`` / ``search_traces``. Importing this package reads no environment, starts no
thread and imports no optional dependency; the tracing API is imported eagerly and the
rest (queries, experiments, runs, config) on first access, to keep ``import`` cheap.
"""

from threadline import tracing
from threadline._flush import flush_trace_async_logging
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

# Public names imported on first access: name -> module.
_LAZY = {
    "ActiveRun": "threadline._runs",
    "active_run": "threadline._runs",
    "end_run": "threadline._runs",
    "log_metric": "threadline._runs",
    "log_metrics": "threadline._runs",
    "log_param": "threadline._runs",
    "log_params": "threadline._runs",
    "set_tag": "threadline._runs",
    "set_tags": "threadline._runs",
    "start_run": "threadline._runs",
    "get_experiment": "threadline._experiments",
    "get_experiment_by_name": "threadline._experiments",
    "set_experiment": "threadline._experiments",
    "get_trace": "threadline._query",
    "search_sessions": "threadline._query",
    "search_traces": "threadline._query",
    "delete_assessment": "threadline._assessments",
    "get_assessment": "threadline._assessments",
    "log_assessment": "threadline._assessments",
    "log_expectation": "threadline._assessments",
    "log_feedback": "threadline._assessments",
    "override_feedback": "threadline._assessments",
    "update_assessment": "threadline._assessments",
    "autolog": "threadline.integrations",
}
_LAZY_MODULES = ("client", "config", "entities", "otel")
# ``threadline.openai`` etc.: one module per library under threadline.integrations,
# imported on first access (the library itself only inside its ``autolog()``).
_INTEGRATIONS = (
    "anthropic",
    "bedrock",
    "dspy",
    "gemini",
    "groq",
    "langchain",
    "litellm",
    "llama_index",
    "mistral",
    "ollama",
    "openai",
    "openai_agents",
    "pydantic_ai",
)

__all__ = [
    "ActiveRun",
    "ExperimentLocation",
    "SpanType",
    "__version__",
    "active_run",
    "autolog",
    "client",
    "config",
    "delete_assessment",
    "end_run",
    "entities",
    "flush_trace_async_logging",
    "get_assessment",
    "get_current_active_span",
    "get_experiment",
    "get_experiment_by_name",
    "get_last_active_trace_id",
    "get_trace",
    "get_tracking_uri",
    "log_assessment",
    "log_expectation",
    "log_feedback",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "override_feedback",
    "search_sessions",
    "search_traces",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "start_span",
    "trace",
    "tracing",
    "update_assessment",
    "update_current_trace",
]


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _LAZY_MODULES:
        value = importlib.import_module(f"threadline.{name}")
    elif name in _INTEGRATIONS:
        try:
            value = importlib.import_module(f"threadline.integrations.{name}")
        except ModuleNotFoundError as exc:
            if exc.name not in ("threadline.integrations", f"threadline.integrations.{name}"):
                raise
            raise AttributeError(f"threadline has no {name} integration in this version") from None
    else:
        raise AttributeError(f"module 'threadline' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
