"""``RestStore``: the ``Store`` of a threadline server (``http(s)://host:port`` tracking URI).

Every method is one call to the server's REST API (``/api/v1``); entities come back with
``from_dict`` of the server's JSON. ``log_batch`` posts the export pipeline's rows to
``/api/v1/traces/batch`` (gzip-compressed) and waits until the server has written them, so
the pipeline's retries, spool and replay work unchanged and a flush before a read gives
read-your-writes. A batch the server refuses as data (400, 413) is split until the refused
rows are isolated: the rest is written and ``BatchRefused`` names only those rows. HTTP and
the mapping of errors live in ``_rest_http.py``; assessments, sessions and the overview in
``_rest_assessments.py``.
"""

from __future__ import annotations

import dataclasses
import operator
import urllib.parse
from collections.abc import Sequence
from typing import Any

from threadline.entities.experiment import Experiment
from threadline.entities.run import Metric, Run, RunData, RunInfo
from threadline.entities.span import Span
from threadline.entities.trace import Trace, TraceInfo
from threadline.errors import InvalidArgumentError, ResourceNotFoundError, StoreError
from threadline.store._rest_assessments import RestAssessments
from threadline.store._rest_http import (
    NOT_THREADLINE,
    TIMEOUT_SECONDS,
    HttpClient,
    RemoteStoreError,
)
from threadline.store.base import SpanRow, TraceRow

_SPAN_FIELDS = tuple(f.name for f in dataclasses.fields(SpanRow))
_TRACE_FIELDS = tuple(f.name for f in dataclasses.fields(TraceRow))
_span_values = operator.attrgetter(*_SPAN_FIELDS)
_trace_values = operator.attrgetter(*_TRACE_FIELDS)
_SYNC = {"x-threadline-sync": "1"}  # answer once written: a flush then a read sees the rows
_BATCH_PATH = "/api/v1/traces/batch"
_REFUSED_DATA = (400, 413)  # the rows themselves are refused: sending them again cannot work
_REASON_CHARS = 200


class BatchRefused(StoreError):
    """The server refused some rows of a batch as data (400/413); the others were written.

    ``refused`` holds the refused trace rows and span rows, ``reasons`` the server's
    reasons with the number of span rows each (a refused trace row counts 0). ``retryable`` is ``False``: those rows would be
    refused again.
    """

    retryable = False

    def __init__(
        self,
        url: str,
        refused: tuple[list[TraceRow], list[SpanRow]],
        reasons: dict[str, int],
    ) -> None:
        traces, spans = refused
        first = next(iter(reasons), "")
        super().__init__(
            f"The threadline server at {url} refused {len(spans)} span rows and "
            f"{len(traces)} trace rows of a batch: {first}"
        )
        self.refused = refused
        self.reasons = reasons


class RestStore(RestAssessments):
    """The store behind a threadline tracking server, over its REST API."""

    def __init__(self, uri: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self._http = HttpClient(uri, timeout=timeout)

    @property
    def url(self) -> str:
        return self._http.url

    def __repr__(self) -> str:
        return f"RestStore({self.url!r})"

    # --- traces: write -------------------------------------------------------------------
    def log_batch(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        """Send the rows; a batch the server refuses is split to isolate the refused rows
        (raises ``BatchRefused`` naming them once the others are written)."""
        if not traces and not spans:
            return
        refused: tuple[list[TraceRow], list[SpanRow]] = ([], [])
        reasons: dict[str, int] = {}
        self._send_rows(traces, spans, refused, reasons)
        if reasons:
            raise BatchRefused(self.url, refused, reasons)

    def _send_rows(
        self,
        traces: Sequence[TraceRow],
        spans: Sequence[SpanRow],
        refused: tuple[list[TraceRow], list[SpanRow]],
        reasons: dict[str, int],
    ) -> None:
        try:
            self._post_batch(traces, spans)
        except (RemoteStoreError, InvalidArgumentError) as exc:
            status = getattr(exc, "status", None)
            if status not in _REFUSED_DATA or getattr(exc, "retryable", True):
                raise
            if len(traces) + len(spans) > 1:
                self._send_in_parts(traces, spans, refused, reasons)
                return
            refused[0].extend(traces)
            refused[1].extend(spans)
            reason = f"{status}: {getattr(exc, 'server_message', exc)}"[:_REASON_CHARS]
            reasons[reason] = reasons.get(reason, 0) + len(spans)

    def _send_in_parts(
        self,
        traces: Sequence[TraceRow],
        spans: Sequence[SpanRow],
        refused: tuple[list[TraceRow], list[SpanRow]],
        reasons: dict[str, int],
    ) -> None:
        """Trace rows before spans (so no span lands in a trace the server does not know)."""
        if traces and spans:
            self._send_rows(traces, [], refused, reasons)
            self._send_rows([], spans, refused, reasons)
            return
        rows: Sequence[Any] = traces or spans
        half = len(rows) // 2
        for part in (rows[:half], rows[half:]):
            self._send_rows(part if traces else [], [] if traces else part, refused, reasons)

    def _post_batch(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        body = {
            "traces": [dict(zip(_TRACE_FIELDS, _trace_values(row))) for row in traces],
            "spans": [dict(zip(_SPAN_FIELDS, _span_values(row))) for row in spans],
        }
        try:
            answer = self._http.call("POST", _BATCH_PATH, body=body, headers=_SYNC)
        except ResourceNotFoundError as exc:  # threadline always serves this path
            raise RemoteStoreError(
                f"The server at {self.url} has no {_BATCH_PATH} (404: {exc}): is the "
                "tracking URI the threadline server's own URL (no extra path)?",
                status=404,
                cause=NOT_THREADLINE,
            ) from None
        if not isinstance(answer, dict) or "spans" not in answer:
            raise RemoteStoreError(
                f"The server at {self.url} accepted the batch with an answer that is not a "
                f"threadline server's ({str(answer)[:80]!r}): is the tracking URI the "
                "threadline server's own URL?",
                cause=NOT_THREADLINE,
            )

    # --- traces: read --------------------------------------------------------------------
    def get_trace(self, trace_id: str) -> Trace | None:
        try:
            found = self._http.call("GET", _path("traces", trace_id))
        except ResourceNotFoundError:
            return None
        return Trace.from_dict(found["trace"])

    def get_trace_info(self, trace_id: str) -> TraceInfo | None:
        try:
            found = self._http.call("GET", _path("traces", trace_id, "info"))
        except ResourceNotFoundError:
            return None
        return TraceInfo.from_dict(found["trace_info"])

    def get_trace_structure(self, trace_id: str) -> Trace | None:
        try:
            found = self._http.call("GET", _path("traces", trace_id, "structure"))
        except ResourceNotFoundError:
            return None
        return Trace.from_dict(found["trace"])

    def get_span(self, trace_id: str, span_id: str) -> Span | None:
        try:
            found = self._http.call("GET", _path("traces", trace_id, "spans", span_id))
        except ResourceNotFoundError:
            return None
        return Span.from_dict(found["span"])

    def search_traces(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        run_id: str | None = None,
        include_spans: bool = True,
    ) -> tuple[list[Trace], str | None]:
        body = {
            "experiment_ids": _ids(experiment_ids),
            "filter_string": filter_string,
            "max_results": max_results,
            "order_by": list(order_by) if order_by else None,
            "page_token": page_token,
            "run_id": run_id,
            "include_spans": include_spans,
        }
        found = self._http.call("POST", "/api/v1/traces/search", body=body)
        return [Trace.from_dict(t) for t in found["traces"]], found.get("next_page_token")

    def delete_traces(
        self,
        experiment_id: str,
        max_timestamp_millis: int | None = None,
        max_traces: int | None = None,
        trace_ids: Sequence[str] | None = None,
    ) -> int:
        body = {
            "experiment_id": str(experiment_id),
            "max_timestamp_millis": max_timestamp_millis,
            "max_traces": max_traces,
            "trace_ids": _ids(trace_ids),
        }
        return int(self._http.call("POST", "/api/v1/traces/delete", body=body)["deleted"])

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        body = {"key": key, "value": value}
        self._http.call("POST", _path("traces", trace_id, "tags"), body=body)

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        self._http.call("DELETE", _path("traces", trace_id, "tags"), query={"key": key})

    # --- experiments ---------------------------------------------------------------------
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> str:
        """Create an experiment; the server assigns its id."""
        if experiment_id is not None:
            raise InvalidArgumentError(
                f"A threadline server assigns experiment ids; create {name!r} without "
                f"experiment_id={experiment_id!r}."
            )
        body = {"name": name, "artifact_location": artifact_location, "tags": tags or {}}
        return str(self._http.call("POST", "/api/v1/experiments", body=body)["experiment_id"])

    def get_experiment(self, experiment_id: str) -> Experiment:
        return _experiment(self._http.call("GET", _path("experiments", experiment_id)))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            found = self._http.call("GET", "/api/v1/experiments/by-name", query={"name": name})
        except ResourceNotFoundError:
            return None
        return _experiment(found)

    def search_experiments(
        self,
        name_like: str | None = None,
        include_deleted: bool = False,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> tuple[list[Experiment], str | None]:
        query = {
            "name_like": name_like,
            "include_deleted": "true" if include_deleted else "false",
            "max_results": max_results,
            "page_token": page_token,
        }
        found = self._http.call("GET", "/api/v1/experiments", query=query)
        experiments = [Experiment.from_dict(e) for e in found["experiments"]]
        return experiments, found.get("next_page_token")

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        body = {"new_name": new_name}
        self._http.call("PATCH", _path("experiments", experiment_id), body=body)

    def delete_experiment(self, experiment_id: str) -> None:
        self._http.call("DELETE", _path("experiments", experiment_id))

    def restore_experiment(self, experiment_id: str) -> None:
        self._http.call("POST", _path("experiments", experiment_id, "restore"))

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        body = {"key": key, "value": value}
        self._http.call("POST", _path("experiments", experiment_id, "tags"), body=body)

    # --- runs ----------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        start_time: int | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> Run:
        body = {
            "experiment_id": str(experiment_id),
            "run_name": run_name,
            "start_time": start_time,
            "tags": tags or {},
            "parent_run_id": parent_run_id,
        }
        return _run(self._http.call("POST", "/api/v1/runs", body=body)["run"])

    def get_run(self, run_id: str) -> Run:
        return _run(self._http.call("GET", _path("runs", run_id))["run"])

    def update_run(
        self,
        run_id: str,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        body = {"status": status, "end_time": end_time, "run_name": run_name}
        found = self._http.call("PATCH", _path("runs", run_id), body=_present(body))
        return RunInfo(**found["run_info"])

    def delete_run(self, run_id: str) -> None:
        self._http.call("DELETE", _path("runs", run_id))

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        self._log_run(run_id, {"params": params})

    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        self._log_run(run_id, {"metrics": [dataclasses.asdict(m) for m in metrics]})

    def set_run_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._log_run(run_id, {"tags": tags})

    def _log_run(self, run_id: str, body: dict[str, Any]) -> None:
        self._http.call("POST", _path("runs", run_id, "log-batch"), body=body)

    def delete_run_tag(self, run_id: str, key: str) -> None:
        self._http.call("DELETE", _path("runs", run_id, "tags"), query={"key": key})

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        body = {
            "experiment_ids": _ids(experiment_ids),
            "filter_string": filter_string,
            "max_results": max_results,
            "order_by": list(order_by) if order_by else None,
            "page_token": page_token,
        }
        found = self._http.call("POST", "/api/v1/runs/search", body=body)
        return [_run(r) for r in found["runs"]], found.get("next_page_token")

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        path = _path("runs", run_id, "metrics", "history")
        found = self._http.call("GET", path, query={"key": key})
        return [
            Metric(m["key"], _number(m["value"]), int(m["timestamp"]), int(m["step"]))
            for m in found["metrics"]
        ]

    # --- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close idle connections (the store reconnects if used again)."""
        self._http.close()


def _path(resource: str, *parts: str) -> str:
    """``/api/v1/<resource>/<id>/…`` with each part percent-encoded."""
    quoted = "/".join(urllib.parse.quote(str(p), safe="") for p in parts)
    return f"/api/v1/{resource}/{quoted}"


def _ids(ids: Sequence[str] | None) -> list[str] | None:
    return None if ids is None else [str(i) for i in ids]


def _present(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _experiment(found: dict[str, Any]) -> Experiment:
    return Experiment.from_dict(found["experiment"])


def _run(data: dict[str, Any]) -> Run:
    """A run from JSON (non-finite metrics arrive as the strings "NaN", "Infinity")."""
    run_data = data.get("data") or {}
    metrics = {k: _number(v) for k, v in (run_data.get("metrics") or {}).items()}
    return Run(
        info=RunInfo(**data["info"]),
        data=RunData(
            params=dict(run_data.get("params") or {}),
            metrics=metrics,
            tags=dict(run_data.get("tags") or {}),
        ),
    )


def _number(value: float | str) -> float:
    return float(value)
