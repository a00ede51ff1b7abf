"""``threadline.llama_index.autolog()``: trace LlamaIndex through its instrumentation API.

Nothing is patched: ``autolog()`` adds one span handler and one event handler to
LlamaIndex's root dispatcher (``llama_index.core.instrumentation.get_dispatcher()``), which
every LlamaIndex module reports to, and ``autolog(disable=True)`` removes exactly those two,
leaving any other handler (LlamaIndex's own, OpenInference's…) where it was.

Recorded (see ``_tracer``): query and chat engines, synthesizers and other components as
CHAIN spans; retrievers as RETRIEVER spans whose outputs are ``{"documents": [Document]}``
(text, score, id, metadata); embeddings; LLM completion and chat calls (LLM / CHAT_MODEL)
with the model, token usage and the conversation; tools; node parsers; rerankers; a
workflow or agent run as an AGENT span with a CHAIN span per step. Streamed LLM calls and
streaming queries end their spans when the stream ends. Spans nest under the current
threadline span, and ``@threadline.trace`` code inside a LlamaIndex tool or workflow step
nests under that tool's or step's span. LlamaIndex's exceptions reach the caller unchanged;
the span is ERROR with the exception. With the LLM client's autologging on as well
(``threadline.openai.autolog()``), the client call an LLM span makes is not recorded again.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from threadline.errors import InvalidArgumentError
from threadline.integrations._base import Integration, _log

__all__ = ["INTEGRATION", "autolog"]


class _LlamaIndexIntegration(Integration):
    """An integration that registers handlers with LlamaIndex instead of patching."""

    def __init__(self) -> None:
        super().__init__(
            name="llama_index",
            import_name="llama_index.core",
            distribution="llama-index-core",
            minimum_version="0.14.0",
            targets=lambda module: [],
            hides_inner_calls=True,
        )
        self._handlers: tuple[Any, Any] | None = None
        self._dispatcher: Any = None

    @property
    def enabled(self) -> bool:
        return self._handlers is not None

    def autolog(self, disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
        """Trace every LlamaIndex call (see the module docstring)."""
        for option, value in (("disable", disable), ("log_traces", log_traces), ("silent", silent)):
            if not isinstance(value, bool):
                raise InvalidArgumentError(
                    f"threadline.{self.name}.autolog({option}=...) must be True or False, "
                    f"got {value!r}."
                )
        with self._lock:
            self.config.silent = silent
            if disable or not log_traces:
                self._remove()
                return
            if self._handlers is not None:
                return
            module = self._import()
            self._check_version(module)
            from llama_index.core.instrumentation import get_dispatcher

            from threadline.integrations.llama_index._handlers import make_handlers

            dispatcher = get_dispatcher()
            spans, events = make_handlers(self.config)
            dispatcher.add_span_handler(spans)
            dispatcher.add_event_handler(events)
            self._handlers = (spans, events)
            self._dispatcher = dispatcher
            self.config.active = True
        if not silent:
            _log(f"threadline: autologging enabled for {self.name} {self.version(module)}.")

    def version(self, module: ModuleType) -> str:
        """The installed distribution's version: ``llama_index.core.__version__`` can lag
        behind it (0.14.0 reports 0.13.6)."""
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            return dist_version(self.distribution)
        except PackageNotFoundError:
            return super().version(module)

    def _remove(self) -> None:
        """Take threadline's two handlers off the dispatcher (by identity, in place)."""
        self.config.active = False
        handlers, dispatcher = self._handlers, self._dispatcher
        if handlers is None:
            return
        spans, events = handlers
        dispatcher.span_handlers[:] = [h for h in dispatcher.span_handlers if h is not spans]
        dispatcher.event_handlers[:] = [h for h in dispatcher.event_handlers if h is not events]
        self._handlers = self._dispatcher = None
        if not self.config.silent:
            _log(f"threadline: autologging disabled for {self.name}.")


INTEGRATION = _LlamaIndexIntegration()


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace LlamaIndex: queries, retrievers, embeddings, LLM calls, tools, agents, workflows.

    ``disable=True`` (or ``log_traces=False``) removes threadline's handlers again.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
