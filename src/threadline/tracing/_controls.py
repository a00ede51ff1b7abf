"""Process-wide switches: enable/disable, span processors, trace destinations."""

from __future__ import annotations

from threadline.entities.trace_location import ExperimentLocation
from threadline.errors import InvalidArgumentError
from threadline.tracing import _context
from threadline.tracing._runtime import RT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType
    from typing import Any

    SpanProcessor = Callable[[Any], None]


def enable() -> None:
    """Turn tracing on (again)."""
    RT.ensure_initialized()
    RT.enabled = True


def disable() -> None:
    """Turn tracing off: decorated code runs untraced at the cost of a flag check."""
    RT.ensure_initialized()
    RT.enabled = False


def is_enabled() -> bool:
    RT.ensure_initialized()
    return RT.enabled


class configure:
    """Set the span processors run when each span ends (``[]`` clears them).

    Each processor gets the live span before its values are serialised and may change it
    in place. Used as ``with configure(span_processors=[...]):`` the previous processors
    come back when the block exits.
    """

    def __init__(self, span_processors: Sequence[SpanProcessor] | None = None) -> None:
        self._previous = RT.processors
        if span_processors is not None:
            if isinstance(span_processors, (str, bytes)) or not all(
                callable(p) for p in span_processors
            ):
                raise InvalidArgumentError(
                    "configure(span_processors=...) takes a list of callables fn(span)."
                )
            RT.processors = tuple(span_processors)

    def __enter__(self) -> configure:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        RT.processors = self._previous


def set_destination(destination: ExperimentLocation | None, *, context_local: bool = False) -> None:
    """Route new traces to ``destination``: for this thread/task only with ``context_local``.

    ``None`` clears it. Cheap enough to call in every request handler.
    """
    if destination is not None and not isinstance(destination, ExperimentLocation):
        raise InvalidArgumentError(
            f"set_destination() takes an ExperimentLocation, got {type(destination).__name__}."
        )
    if context_local:
        _context.destination.set(destination)
    else:
        RT.destination = destination


def enable_notebook_display() -> None:
    """Render traces inline in Jupyter (the default)."""
    RT.notebook_display = True


def disable_notebook_display() -> None:
    """Stop rendering traces inline in Jupyter."""
    RT.notebook_display = False
