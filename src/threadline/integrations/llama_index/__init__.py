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

from threadline.integrations._framework import FrameworkIntegration
from threadline.integrations._llm_call import Config

__all__ = ["INTEGRATION", "autolog"]


def _install(module: ModuleType, config: Config) -> Any:
    """Add threadline's span and event handlers to the root dispatcher; returns them."""
    from llama_index.core.instrumentation import get_dispatcher

    from threadline.integrations.llama_index._handlers import make_handlers

    dispatcher = get_dispatcher()
    spans, events = make_handlers(config)
    dispatcher.add_span_handler(spans)
    dispatcher.add_event_handler(events)
    return dispatcher, spans, events


def _uninstall(installed: Any) -> None:
    """Take threadline's two handlers off the dispatcher (by identity, in place)."""
    dispatcher, spans, events = installed
    dispatcher.span_handlers[:] = [h for h in dispatcher.span_handlers if h is not spans]
    dispatcher.event_handlers[:] = [h for h in dispatcher.event_handlers if h is not events]


INTEGRATION = FrameworkIntegration(
    name="llama_index",
    import_name="llama_index.core",
    distribution="llama-index-core",
    minimum_version="0.14.0",
    install=_install,
    uninstall=_uninstall,
    hides_inner_calls=True,
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace LlamaIndex: queries, retrievers, embeddings, LLM calls, tools, agents, workflows.

    ``disable=True`` (or ``log_traces=False``) removes threadline's handlers again.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
