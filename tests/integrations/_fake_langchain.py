"""Offline LangChain parts for the tests: a tool-calling fake chat model and a tiny retriever.

langchain-core ships fake chat models (``FakeListChatModel``, ``GenericFakeChatModel``) but
none accepts ``bind_tools``, which agents call; ``ToolCallingFakeModel`` is
``GenericFakeChatModel`` with tools accepted (and ignored: its replies are scripted).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.retrievers import BaseRetriever

USAGE = {"input_tokens": 11, "output_tokens": 5, "total_tokens": 16}


def agent_spans(trace: Any) -> list[Any]:
    """An agent trace's spans in start order, without the runs of the agent graph's edge
    functions (``model_to_tools``…), which langchain 1.0 traced and later releases do not."""
    spans = sorted(trace.data.spans, key=lambda s: s.start_time_ns)
    return [s for s in spans if not re.fullmatch(r"[a-z]+_to_[a-z]+", s.name)]


class ToolCallingFakeModel(GenericFakeChatModel):
    """Replies with the scripted messages in turn; ``bind_tools`` keeps the same script."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCallingFakeModel:
        return self


def tool_call_then_answer(tool: str, args: dict[str, Any], answer: str) -> ToolCallingFakeModel:
    """A model whose first reply calls ``tool`` with ``args`` and whose second is ``answer``."""
    return ToolCallingFakeModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": tool, "args": args, "id": "call_1", "type": "tool_call"}],
                    usage_metadata=USAGE,  # type: ignore[arg-type]
                ),
                AIMessage(content=answer, usage_metadata=USAGE),  # type: ignore[arg-type]
            ]
        )
    )


class KeywordRetriever(BaseRetriever):
    """The documents whose text contains a word of the query."""

    documents: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        words = query.lower().split()
        return [d for d in self.documents if any(w in d.page_content.lower() for w in words)]


DOCUMENTS = [
    Document(page_content="Paris is the capital of France.", metadata={"source": "a"}, id="d1"),
    Document(page_content="Berlin is the capital of Germany.", metadata={"source": "b"}, id="d2"),
]
