"""``ThreadlineClient``: explicit access to the store, and the low-level span API.

The low-level API (``start_trace`` / ``start_span`` / ``end_span`` / ``end_trace``) is for
code where a ``with`` block does not fit, such as callbacks and streaming: spans are
addressed by ids and never become the "current" span.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from threadline._assessments import AssessmentMethods
from threadline._flush import flush_pending_for_read
from threadline._tracking_uri import _validate, get_tracking_uri
from threadline.entities.experiment import Experiment
from threadline.entities.overview import Overview
from threadline.entities.run import Metric, Run, RunInfo
from threadline.entities.session import Session
from threadline.entities.span import SpanStatus, SpanStatusCode, SpanType
from threadline.entities.trace import Trace
from threadline.entities.trace_location import ExperimentLocation
from threadline.errors import InvalidArgumentError
from threadline.store.base import Store
from threadline.tracing._lifecycle import begin_span, end_span
from threadline.tracing._noop import NOOP_SPAN, NoOpSpan
from threadline.tracing._runtime import RT
from threadline.tracing._span import LiveSpan


class PagedList(list):
    """A page of results; ``token`` fetches the next page (``None`` on the last)."""

    def __init__(self, items: Sequence[Any], token: str | None) -> None:
        super().__init__(items)
        self.token = token


class ThreadlineClient(AssessmentMethods):
    """Reads and writes traces, their assessments, experiments and runs in one tracking
    store; lists sessions and the overview figures."""

    def __init__(self, tracking_uri: str | os.PathLike[str] | None = None) -> None:
        self._tracking_uri = _validate(os.fspath(tracking_uri)) if tracking_uri else None

    @property
    def tracking_uri(self) -> str:
        return self._tracking_uri or get_tracking_uri()

    @property
    def store(self) -> Store:
        from threadline.store import get_store

        return get_store(self.tracking_uri)

    # --- traces --------------------------------------------------------------------------
    def get_trace(self, trace_id: str) -> Trace | None:
        flush_pending_for_read()
        return self.store.get_trace(trace_id)

    def search_traces(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        run_id: str | None = None,
        include_spans: bool = True,
    ) -> PagedList:
        """One page of traces; pass ``.token`` of the result as ``page_token`` for the next."""
        flush_pending_for_read()
        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        traces, token = self.store.search_traces(
            experiment_ids=list(experiment_ids) if experiment_ids is not None else None,
            filter_string=filter_string,
            max_results=max_results,
            order_by=list(order_by) if order_by else None,
            page_token=page_token,
            run_id=run_id,
            include_spans=include_spans,
        )
        return PagedList(traces, token)

    def delete_traces(
        self,
        experiment_id: str,
        max_timestamp_millis: int | None = None,
        max_traces: int | None = None,
        trace_ids: Sequence[str] | None = None,
    ) -> int:
        """Delete traces older than a time (oldest first, at most ``max_traces``) or by id."""
        flush_pending_for_read()
        return self.store.delete_traces(
            str(experiment_id),
            max_timestamp_millis=max_timestamp_millis,
            max_traces=max_traces,
            trace_ids=list(trace_ids) if trace_ids is not None else None,
        )

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        flush_pending_for_read()
        self.store.set_trace_tag(trace_id, key, str(value))

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        flush_pending_for_read()
        self.store.delete_trace_tag(trace_id, key)

    # --- sessions and overview ------------------------------------------------------------
    def search_sessions(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        """One page of ``Session``s (every experiment when ``experiment_ids`` is ``None``),
        newest activity first; a session is listed when one of its traces matches the
        filter. Pass ``.token`` of the result as ``page_token`` for the next page."""
        flush_pending_for_read()
        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        sessions, token = self.store.search_sessions(
            experiment_ids=[str(e) for e in experiment_ids] if experiment_ids is not None else None,
            filter_string=filter_string,
            max_results=max_results,
            order_by=list(order_by) if order_by else None,
            page_token=page_token,
        )
        return PagedList(sessions, token)

    def get_session(self, experiment_id: str, session_id: str) -> Session | None:
        """One session of an experiment, with its traces in time order, or ``None``."""
        flush_pending_for_read()
        return self.store.get_session(str(experiment_id), session_id)

    def get_overview(
        self,
        experiment_id: str,
        filter_string: str | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        bucket: str = "hour",
    ) -> Overview:
        """Figures per UTC hour or day (``bucket``) of the experiment's traces."""
        flush_pending_for_read()
        return self.store.get_overview(
            str(experiment_id),
            filter_string=filter_string,
            start_time_ms=start_time_ms,
            end_time_ms=end_time_ms,
            bucket=bucket,
        )

    # --- low-level span API --------------------------------------------------------------
    def start_trace(
        self,
        name: str,
        span_type: str = SpanType.UNKNOWN,
        inputs: Any = None,
        attributes: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> LiveSpan | NoOpSpan:
        """Open the root span of a new trace; end it with ``end_trace(span.trace_id)``."""
        destination = ExperimentLocation(str(experiment_id)) if experiment_id is not None else None
        span = begin_span(name, span_type, attributes, destination, parent=None)
        if not isinstance(span, LiveSpan):  # tracing off, or the trace is not sampled
            return NOOP_SPAN
        if inputs is not None:
            span.set_inputs(inputs)
        if tags:
            span._trace_state.tags.update({str(k): str(v) for k, v in tags.items()})
        RT.client_spans[(span.trace_id, span.span_id)] = span
        return span

    def start_span(
        self,
        name: str,
        trace_id: str,
        parent_id: str,
        span_type: str = SpanType.UNKNOWN,
        inputs: Any = None,
        attributes: dict[str, Any] | None = None,
    ) -> LiveSpan | NoOpSpan:
        """Open a child of span ``parent_id`` in trace ``trace_id``."""
        if not RT.enabled:
            return NOOP_SPAN
        parent = RT.client_spans.get((trace_id, parent_id))
        if parent is None:
            raise InvalidArgumentError(
                f"No open span {parent_id!r} in trace {trace_id!r}: start_span() needs the ids "
                "of a span opened with start_trace()/start_span() that has not ended."
            )
        span = begin_span(name, span_type, attributes, parent=parent)
        if not isinstance(span, LiveSpan):
            return NOOP_SPAN
        if inputs is not None:
            span.set_inputs(inputs)
        RT.client_spans[(trace_id, span.span_id)] = span
        return span

    def end_span(
        self,
        trace_id: str,
        span_id: str,
        outputs: Any = None,
        attributes: dict[str, Any] | None = None,
        status: SpanStatus | str = SpanStatusCode.OK,
    ) -> None:
        """End a span opened with ``start_span``."""
        if not RT.enabled and (trace_id, span_id) not in RT.client_spans:
            return
        span = RT.client_spans.pop((trace_id, span_id), None)
        if span is None:
            raise InvalidArgumentError(
                f"No open span {span_id!r} in trace {trace_id!r} (already ended, or not "
                "started with this client's start_trace()/start_span())."
            )
        self._finish(span, outputs, attributes, status)

    def end_trace(
        self,
        trace_id: str,
        outputs: Any = None,
        attributes: dict[str, Any] | None = None,
        status: SpanStatus | str = SpanStatusCode.OK,
    ) -> None:
        """End the root span of ``trace_id`` (and any of its spans still open)."""
        spans = [s for (t, _), s in list(RT.client_spans.items()) if t == trace_id]
        root = next((s for s in spans if s.parent_id is None), None)
        if root is None:
            if not RT.enabled:
                return
            raise InvalidArgumentError(
                f"No open trace {trace_id!r}: end_trace() takes the trace_id of a span "
                "returned by start_trace() that has not ended."
            )
        for span in sorted(spans, key=lambda s: -s.start_time_ns):
            RT.client_spans.pop((trace_id, span.span_id), None)
            if span is not root:
                end_span(span)
        self._finish(root, outputs, attributes, status)

    @staticmethod
    def _finish(
        span: LiveSpan, outputs: Any, attributes: dict[str, Any] | None, status: SpanStatus | str
    ) -> None:
        if attributes:
            span.set_attributes(attributes)
        span.set_status(status)
        end_span(span, outputs if outputs is not None else span._outputs)

    # --- experiments ---------------------------------------------------------------------
    def create_experiment(self, name: str, tags: dict[str, str] | None = None) -> str:
        return self.store.create_experiment(name, tags=tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(str(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def search_experiments(
        self,
        name_like: str | None = None,
        include_deleted: bool = False,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> PagedList:
        items, token = self.store.search_experiments(
            name_like=name_like,
            include_deleted=include_deleted,
            max_results=max_results,
            page_token=page_token,
        )
        return PagedList(items, token)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.store.rename_experiment(str(experiment_id), new_name)

    def delete_experiment(self, experiment_id: str) -> None:
        self.store.delete_experiment(str(experiment_id))

    def restore_experiment(self, experiment_id: str) -> None:
        self.store.restore_experiment(str(experiment_id))

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.store.set_experiment_tag(str(experiment_id), key, str(value))

    # --- runs ----------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        start_time: int | None = None,
    ) -> Run:
        return self.store.create_run(
            str(experiment_id), run_name=run_name, start_time=start_time, tags=tags
        )

    def get_run(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def update_run(
        self,
        run_id: str,
        status: str | None = None,
        end_time: int | None = None,
        name: str | None = None,
    ) -> RunInfo:
        return self.store.update_run(run_id, status=status, end_time=end_time, run_name=name)

    def delete_run(self, run_id: str) -> None:
        self.store.delete_run(run_id)

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.store.log_params(run_id, {str(key): str(value)})

    def log_metric(
        self, run_id: str, key: str, value: float, timestamp: int | None = None, step: int = 0
    ) -> None:
        import time

        ts = timestamp if timestamp is not None else int(time.time() * 1000)
        self.store.log_metrics(run_id, [Metric(key, float(value), ts, step)])

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.store.set_run_tags(run_id, {str(key): str(value)})

    def delete_tag(self, run_id: str, key: str) -> None:
        self.store.delete_run_tag(run_id, key)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        runs, token = self.store.search_runs(
            [str(e) for e in experiment_ids],
            filter_string=filter_string,
            max_results=max_results,
            order_by=list(order_by) if order_by else None,
            page_token=page_token,
        )
        return PagedList(runs, token)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.store.get_metric_history(run_id, key)
