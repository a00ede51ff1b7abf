"""The assessment, session and overview calls of ``RestStore`` (``rest.py``), one REST call
each: ``/api/v1/traces/{id}/assessments…``, ``/api/v1/sessions…`` and
``/api/v1/experiments/{id}/overview``; entities come back with ``from_dict``."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

from threadline.entities.assessment import Assessment, Feedback
from threadline.entities.overview import Overview
from threadline.entities.session import Session
from threadline.errors import ResourceNotFoundError
from threadline.store._rest_http import HttpClient


class RestAssessments:
    """Assessments, sessions and the overview over the server's REST API."""

    _http: HttpClient

    # --- assessments ---------------------------------------------------------------------
    def log_assessment(self, trace_id: str, assessment: Assessment) -> Assessment:
        body = {
            "kind": assessment.kind,
            "name": assessment.name,
            "value": assessment.value,
            "error": None if assessment.error is None else assessment.error.to_dict(),
            "source": assessment.source.to_dict(),
            "rationale": assessment.rationale,
            "metadata": dict(assessment.metadata),
            "span_id": assessment.span_id,
            "run_id": assessment.run_id,
            "overrides": assessment.overrides,
            "create_time_ms": assessment.create_time_ms,
        }
        if assessment.kind == "expectation":
            del body["error"], body["rationale"]
        found = self._http.call("POST", _assessments(trace_id), body=body)
        return Assessment.from_dict(found["assessment"])

    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment:
        found = self._http.call("GET", _assessments(trace_id, assessment_id))
        return Assessment.from_dict(found["assessment"])

    def list_assessments(self, trace_id: str) -> list[Assessment]:
        found = self._http.call("GET", _assessments(trace_id))
        return [Assessment.from_dict(a) for a in found["assessments"]]

    def update_assessment(
        self, trace_id: str, assessment_id: str, assessment: Assessment
    ) -> Assessment:
        body: dict[str, Any] = {"name": assessment.name, "metadata": dict(assessment.metadata)}
        if assessment.error is not None:
            body["error"] = assessment.error.to_dict()
        else:
            body["value"] = assessment.value
        if assessment.kind == "feedback":
            body["rationale"] = assessment.rationale
        path = _assessments(trace_id, assessment_id)
        return Assessment.from_dict(self._http.call("PATCH", path, body=body)["assessment"])

    def override_feedback(
        self, trace_id: str, assessment_id: str, feedback: Feedback
    ) -> Assessment:
        body = {
            "value": feedback.value,
            "error": None if feedback.error is None else feedback.error.to_dict(),
            "rationale": feedback.rationale,
            "source": feedback.source.to_dict(),
            "metadata": dict(feedback.metadata),
        }
        path = _assessments(trace_id, assessment_id, "override")
        return Assessment.from_dict(self._http.call("POST", path, body=body)["assessment"])

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        self._http.call("DELETE", _assessments(trace_id, assessment_id))

    # --- sessions and overview -----------------------------------------------------------
    def search_sessions(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        include_traces: bool = True,
    ) -> tuple[list[Session], str | None]:
        body = {
            "experiment_ids": None if experiment_ids is None else [str(e) for e in experiment_ids],
            "filter_string": filter_string,
            "max_results": max_results,
            "order_by": list(order_by) if order_by else None,
            "page_token": page_token,
            "include_traces": include_traces,
        }
        found = self._http.call("POST", "/api/v1/sessions/search", body=body)
        sessions = [Session.from_dict(s) for s in found["sessions"]]
        return sessions, found.get("next_page_token")

    def get_session(self, experiment_id: str, session_id: str) -> Session | None:
        path = "/api/v1/sessions/" + _quoted(session_id)
        try:
            found = self._http.call("GET", path, query={"experiment_id": str(experiment_id)})
        except ResourceNotFoundError:
            return None
        return Session.from_dict(found["session"])

    def get_overview(
        self,
        experiment_id: str,
        filter_string: str | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        bucket: str = "hour",
    ) -> Overview:
        query = {
            "bucket": bucket,
            "start_time_ms": start_time_ms,
            "end_time_ms": end_time_ms,
            "filter_string": filter_string,
        }
        path = f"/api/v1/experiments/{_quoted(str(experiment_id))}/overview"
        return Overview.from_dict(self._http.call("GET", path, query=query)["overview"])


def _quoted(part: str) -> str:
    return urllib.parse.quote(str(part), safe="")


def _assessments(trace_id: str, *parts: str) -> str:
    tail = "".join("/" + _quoted(p) for p in parts)
    return f"/api/v1/traces/{_quoted(trace_id)}/assessments{tail}"
