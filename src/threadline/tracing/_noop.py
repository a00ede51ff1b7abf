"""The span handed out when tracing is disabled: every method does nothing."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class NoOpSpan:
    """Stands in for a live span so ``with start_span(...) as span:`` code runs unchanged.

    Also the current span of a trace that is not recorded (not sampled, or aborted), so
    that the spans under it are not recorded either.
    """

    trace_id = None
    span_id = None
    parent_id = None
    name = None
    span_type = None
    inputs = None
    outputs = None
    start_time_ns = None
    end_time_ns = None
    status = None
    is_ended = True
    _ended = True  # end_span() returns at once for it
    is_remote_parent = False

    @property
    def attributes(self) -> dict[str, Any]:
        return {}

    @property
    def events(self) -> list[Any]:
        return []

    def set_inputs(self, inputs: Any) -> None:
        pass

    def set_outputs(self, outputs: Any) -> None:
        pass

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        pass

    def add_event(self, event: Any) -> None:
        pass

    def set_status(self, status: Any, description: str = "") -> None:
        pass

    def record_exception(self, exc: BaseException) -> None:
        pass

    def __repr__(self) -> str:
        return "NoOpSpan()"


NOOP_SPAN = NoOpSpan()
