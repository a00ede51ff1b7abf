"""The facade exports exactly the public API, sorted, and the SPEC's names resolve."""

from __future__ import annotations

import threadline


def test_all_is_sorted_and_every_name_resolves():
    assert threadline.__all__ == sorted(threadline.__all__)
    for name in threadline.__all__:
        assert getattr(threadline, name) is not None, name
    eager = {n for n in vars(threadline) if not n.startswith("_")}
    modules = {n for n in eager if type(getattr(threadline, n)).__name__ == "module"}
    assert (eager - modules) <= set(threadline.__all__)


def test_unknown_name_is_an_attribute_error():
    try:
        threadline.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_spec_names_exist():
    for name in (
        "trace",
        "start_span",
        "get_current_active_span",
        "get_last_active_trace_id",
        "update_current_trace",
        "set_tracking_uri",
        "get_tracking_uri",
        "flush_trace_async_logging",
        "set_experiment",
        "start_run",
        "search_traces",
        "get_trace",
        "log_param",
        "log_params",
        "log_metric",
        "log_metrics",
        "set_tag",
        "set_tags",
    ):
        assert callable(getattr(threadline, name)), name
    for name in (
        "configure",
        "enable",
        "disable",
        "set_destination",
        "enable_notebook_display",
        "disable_notebook_display",
    ):
        assert callable(getattr(threadline.tracing, name)), name
    assert callable(threadline.config.enable_async_logging)
    assert callable(threadline.config.disable_async_logging)
    from threadline.client import ThreadlineClient
    from threadline.entities.span import Span, SpanType
    from threadline.entities.trace_location import ExperimentLocation

    assert SpanType.RETRIEVAL == SpanType.RETRIEVER
    assert ThreadlineClient and Span and ExperimentLocation
