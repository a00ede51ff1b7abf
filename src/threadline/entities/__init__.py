"""Public value objects: traces, spans, experiments, runs, trace locations."""

from threadline.entities.experiment import Experiment
from threadline.entities.run import Metric, Run, RunData, RunInfo, RunStatus
from threadline.entities.span import Span, SpanEvent, SpanStatus, SpanStatusCode, SpanType
from threadline.entities.trace import Trace, TraceData, TraceInfo, TraceState
from threadline.entities.trace_location import ExperimentLocation

__all__ = [
    "Experiment",
    "ExperimentLocation",
    "Metric",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "Span",
    "SpanEvent",
    "SpanStatus",
    "SpanStatusCode",
    "SpanType",
    "Trace",
    "TraceData",
    "TraceInfo",
    "TraceState",
]
