"""``/api/v1/sessions``: the sessions list (search) and one session with its traces.

A session is the traces of one experiment that share a ``session_id`` metadata value. The
list is newest activity first by default; its filter is the trace filter language (a
session is listed when one of its traces matches). A scoped token lists only the sessions
of its experiments; one session of another experiment is a 403, as for experiments.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator
from starlette.responses import Response

from threadline.errors import ResourceNotFoundError
from threadline.server.api import PrincipalDep, StoreDep, json_response
from threadline.server.api.assessment_schemas import SearchSessions, SessionList, SessionResponse
from threadline.server.api.schemas import Id, OrderBy, Text, storable_text
from threadline.server.auth import Principal
from threadline.store.base import Store

router = APIRouter(prefix="/sessions", tags=["sessions"])

SessionPath = Annotated[str, Path(min_length=1, max_length=8000), AfterValidator(storable_text)]


@router.post("/search", response_model=SessionList)
def search_sessions(body: SearchSessions, store: StoreDep, who: PrincipalDep) -> Response:
    """One page of sessions; ``include_traces`` adds each session's trace summaries."""
    return _search(store, who, body)


@router.get("", response_model=SessionList)
def list_sessions(
    store: StoreDep,
    who: PrincipalDep,
    experiment_id: Annotated[list[Id] | None, Query(max_length=400)] = None,
    filter_string: Annotated[Text | None, Query(max_length=10_000)] = None,
    max_results: Annotated[int, Query(ge=1, le=10_000)] = 100,
    order_by: Annotated[OrderBy | None, Query()] = None,
    page_token: Annotated[Text | None, Query(max_length=1000)] = None,
    include_traces: bool = False,
) -> Response:
    """``POST /sessions/search`` as a GET (``experiment_id`` and ``order_by`` repeat).

    ``order_by`` takes ``last_time_ms``, ``first_time_ms``, ``turns``, ``error_count`` or
    ``total_tokens``, each with ``ASC`` or ``DESC``.
    """
    query = SearchSessions(
        experiment_ids=experiment_id,
        filter_string=filter_string,
        max_results=max_results,
        order_by=order_by,
        page_token=page_token,
        include_traces=include_traces,
    )
    return _search(store, who, query)


@router.get("/{session_id:path}", response_model=SessionResponse)
def get_session(
    session_id: SessionPath,
    experiment_id: Annotated[Id, Query()],
    store: StoreDep,
    who: PrincipalDep,
) -> Response:
    """One session of ``experiment_id`` with every trace summary, in time order (its id
    percent-encoded in the path; a ``/`` in it may stay as it is)."""
    who.require_read(experiment_id)
    found = store.get_session(experiment_id, session_id)
    if found is None:
        raise ResourceNotFoundError(
            f"No session {session_id!r:.200} in experiment {experiment_id!r}."
        )
    return json_response({"session": found.to_dict()})


def _search(store: Store, who: Principal, query: SearchSessions) -> Response:
    sessions, token = store.search_sessions(
        experiment_ids=who.readable_ids(query.experiment_ids),
        filter_string=query.filter_string,
        max_results=query.max_results,
        order_by=query.order_by,
        page_token=query.page_token,
        include_traces=query.include_traces,
    )
    items = [s.to_dict(include_traces=query.include_traces) for s in sessions]
    return json_response({"sessions": items, "next_page_token": token})
