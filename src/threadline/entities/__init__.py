"""Public value objects: traces, spans, assessments, sessions, experiments, runs, trace
locations.

Names resolve on first access so that ``import threadline`` stays cheap.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "Assessment": "assessment",
    "AssessmentError": "assessment",
    "AssessmentSource": "assessment",
    "AssessmentSourceType": "assessment",
    "Expectation": "assessment",
    "Feedback": "assessment",
    "FeedbackSummary": "assessment",
    "Overview": "overview",
    "OverviewBucket": "overview",
    "Session": "session",
    "Experiment": "experiment",
    "ExperimentLocation": "trace_location",
    "Metric": "run",
    "Run": "run",
    "RunData": "run",
    "RunInfo": "run",
    "RunStatus": "run",
    "Span": "span",
    "SpanEvent": "span",
    "SpanStatus": "span",
    "SpanStatusCode": "span",
    "SpanType": "span",
    "Trace": "trace",
    "TraceData": "trace",
    "TraceInfo": "trace",
    "TraceState": "trace",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'threadline.entities' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"threadline.entities.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
