"""The span and event handlers given to LlamaIndex's dispatcher, built once LlamaIndex is
imported (their base classes are LlamaIndex's); they pass every notification to a
``Tracer``.

The span handler overrides ``span_enter`` / ``span_exit`` / ``span_drop`` themselves, the
dispatcher's entry points, rather than ``new_span`` and friends: those would make a
LlamaIndex span object per call and keep it in the handler's ``open_spans`` under a lock,
work that threadline's own table makes unnecessary.
"""

from __future__ import annotations

import importlib
from typing import Any

from threadline.integrations._llm_call import Config
from threadline.integrations.llama_index._tracer import Classes, Tracer


def make_handlers(config: Config) -> tuple[Any, Any]:
    """A new ``(span handler, event handler)`` pair sharing one ``Tracer``."""
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.span.base import BaseSpan
    from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

    tracer = Tracer(config, _classes())
    _register_events(tracer)
    enter, leave, drop, on_event = tracer.enter, tracer.exit, tracer.drop, tracer.event

    class ThreadlineSpanHandler(BaseSpanHandler[BaseSpan]):
        """Opens and ends threadline spans for LlamaIndex's spans."""

        @classmethod
        def class_name(cls) -> str:
            return "ThreadlineSpanHandler"

        def span_enter(
            self,
            id_: str,
            bound_args: Any,
            instance: Any = None,
            parent_id: str | None = None,
            tags: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            enter(id_, bound_args, instance, parent_id, tags)

        def span_exit(
            self, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kwargs: Any
        ) -> None:
            leave(id_, instance, result)

        def span_drop(
            self,
            id_: str,
            bound_args: Any,
            instance: Any = None,
            err: BaseException | None = None,
            **kwargs: Any,
        ) -> None:
            drop(id_, err)

        # Required by the base class; never called, since the three methods above are.
        def new_span(self, *args: Any, **kwargs: Any) -> None:
            return None

        def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
            return None

        def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
            return None

    class ThreadlineEventHandler(BaseEventHandler):
        """Adds what LlamaIndex's events tell (model, messages, usage) to the spans."""

        @classmethod
        def class_name(cls) -> str:
            return "ThreadlineEventHandler"

        def handle(self, event: Any, **kwargs: Any) -> None:
            on_event(event)

    return ThreadlineSpanHandler(), ThreadlineEventHandler()


def _import(module: str, name: str) -> type | None:
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return found if isinstance(found, type) else None


def _some(*found: type | None) -> tuple[type, ...]:
    return tuple(c for c in found if c is not None)


def _classes() -> Classes:
    core = "llama_index.core"
    return Classes(
        llm=_some(
            _import(f"{core}.base.llms.base", "BaseLLM"),
            _import(f"{core}.multi_modal_llms.base", "MultiModalLLM"),
        ),
        embedding=_some(_import(f"{core}.base.embeddings.base", "BaseEmbedding")),
        retriever=_some(_import(f"{core}.base.base_retriever", "BaseRetriever")),
        tool=_some(_import(f"{core}.tools.types", "BaseTool")),
        workflow=_some(
            _import("workflows", "Workflow"), _import(f"{core}.workflow.workflow", "Workflow")
        ),
        parser=_some(
            _import(f"{core}.node_parser.interface", "NodeParser"),
            _import(f"{core}.types", "BaseOutputParser"),
        ),
        postprocessor=_some(_import(f"{core}.postprocessor.types", "BaseNodePostprocessor")),
    )


def _register_events(tracer: Tracer) -> None:
    events = "llama_index.core.instrumentation.events"
    llm = f"{events}.llm"
    tracer.on(_import(llm, "LLMChatStartEvent"), tracer.chat_start)
    tracer.on(_import(llm, "LLMCompletionStartEvent"), tracer.completion_start)
    tracer.on(_import(llm, "LLMChatEndEvent"), tracer.llm_end)
    tracer.on(_import(llm, "LLMCompletionEndEvent"), tracer.llm_end)
    tracer.on(_import(f"{events}.exception", "ExceptionEvent"), tracer.exception)
    tracer.on(_import(f"{events}.embedding", "EmbeddingStartEvent"), tracer.embedding_start)
    tracer.on(_import(f"{events}.embedding", "SparseEmbeddingStartEvent"), tracer.embedding_start)
    tracer.on(_import(f"{events}.rerank", "ReRankStartEvent"), tracer.rerank_start)
