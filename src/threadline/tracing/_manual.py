"""Manual tracing: ``start_span`` as a context manager, and the current-trace helpers."""

from __future__ import annotations

from threadline.entities.keys import TraceMetadataKey
from threadline.entities.span import SpanType
from threadline.entities.trace_location import ExperimentLocation
from threadline.errors import InvalidArgumentError
from threadline.tracing import _safety
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import begin_span, end_span
from threadline.tracing._noop import NOOP_SPAN, NoOpSpan
from threadline.tracing._runtime import RT
from threadline.tracing._span import LiveSpan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any


class start_span:
    """Open a span for the ``with`` block and make it current; yields the live span.

    An exception leaving the block marks the span ERROR, records it, and propagates.
    With tracing disabled it yields a span whose methods do nothing.
    """

    __slots__ = ("_attributes", "_destination", "_name", "_span", "_span_type", "_token")

    def __init__(
        self,
        name: str = "span",
        span_type: str = SpanType.UNKNOWN,
        attributes: dict[str, Any] | None = None,
        trace_destination: ExperimentLocation | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise InvalidArgumentError(f"start_span(name=...) must be a string, got {name!r}.")
        if not isinstance(span_type, str):
            raise InvalidArgumentError(
                f"start_span(span_type=...) must be a string, got {span_type!r}."
            )
        if attributes is not None and not isinstance(attributes, dict):
            raise InvalidArgumentError("start_span(attributes=...) must be a dict.")
        if trace_destination is not None and not isinstance(trace_destination, ExperimentLocation):
            raise InvalidArgumentError(
                "start_span(trace_destination=...) takes an ExperimentLocation."
            )
        self._name = name
        self._span_type = span_type
        self._attributes = attributes
        self._destination = trace_destination
        self._span: LiveSpan | NoOpSpan | None = None
        self._token: Any = None

    def __enter__(self) -> LiveSpan | NoOpSpan:
        if not RT.enabled:
            return NOOP_SPAN
        span = begin_span(self._name, self._span_type, self._attributes, self._destination)
        if span is None:
            return NOOP_SPAN
        self._span = span  # may be the non-recording span: it is made current all the same
        self._token = current_span.set(span)
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if span is None:
            return
        self._span = None
        try:
            current_span.reset(self._token)
        except ValueError:  # exited in another context than entered: restore by hand
            current_span.set(None)
        end_span(span, exc=exc)

    async def __aenter__(self) -> LiveSpan | NoOpSpan:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def get_current_active_span() -> LiveSpan | None:
    """The innermost open span in this thread or task, or ``None``."""
    span = current_span.get()
    if not isinstance(span, LiveSpan) or span.is_remote_parent:
        return None  # no span, a trace that is not recorded, or another process's span
    return span


def get_last_active_trace_id() -> str | None:
    """The id of the trace that most recently finished in this process."""
    return RT.last_trace_id


def update_current_trace(
    request_preview: str | None = None,
    response_preview: str | None = None,
    tags: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    client_request_id: str | None = None,
    session_id: str | None = None,
    user: str | None = None,
) -> None:
    """Set previews, tags, metadata or ids of the trace the current span belongs to.

    ``session_id`` and ``user`` are kept in the trace metadata. Outside a trace this logs a
    warning and does nothing.
    """
    for label, value in (
        ("request_preview", request_preview),
        ("response_preview", response_preview),
        ("client_request_id", client_request_id),
        ("session_id", session_id),
        ("user", user),
    ):
        if value is not None and not isinstance(value, str):
            raise InvalidArgumentError(
                f"update_current_trace({label}=...) must be a string, got {type(value).__name__}."
            )
    for label, mapping in (("tags", tags), ("metadata", metadata)):
        if mapping is not None and not isinstance(mapping, dict):
            raise InvalidArgumentError(
                f"update_current_trace({label}=...) must be a dict, got {type(mapping).__name__}."
            )
    span = current_span.get()
    if span is NOOP_SPAN:
        return  # inside a trace that is not recorded
    if span is None:
        _safety.log_once(
            "update-no-trace",
            "threadline: update_current_trace() was called outside a trace; nothing was "
            "updated. Call it inside a @trace function or a start_span block.",
        )
        return
    assert isinstance(span, LiveSpan)
    state = span._trace_state
    if state.ended:
        _safety.log_once(
            "update-ended-trace",
            "threadline: update_current_trace() on a trace that already ended is ignored; "
            "use ThreadlineClient().set_trace_tag() to tag it afterwards.",
        )
        return
    if request_preview is not None:
        state.request_preview = request_preview
    if response_preview is not None:
        state.response_preview = response_preview
    if client_request_id is not None:
        state.client_request_id = client_request_id
    if tags:
        state.tags.update({str(k): _text(v) for k, v in tags.items()})
    if metadata:
        state.metadata.update({str(k): _text(v) for k, v in metadata.items()})
    if session_id is not None:
        state.metadata[TraceMetadataKey.SESSION_ID] = session_id
    if user is not None:
        state.metadata[TraceMetadataKey.USER] = user


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
