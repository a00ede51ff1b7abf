"""LlamaIndex workload for ``bench/frameworks.py``: one retrieve + complete.

A ``VectorStoreIndex`` over a few documents in memory with LlamaIndex's ``MockEmbedding``
and ``MockLLM`` (no model server: ``openai_base_url`` is not used). One timed call
retrieves two nodes for a question and completes a prompt built from them, as a RAG
step does: LlamaIndex reports a retriever span (with its query embedding) and an LLM
call, both traced by ``threadline.llama_index.autolog()`` and ``mlflow.llama_index.autolog()``.
"""

from __future__ import annotations

from collections.abc import Callable

NAME = "llama_index"
PACKAGES = ["llama-index-core"]
MLFLOW_FLAVOR = "llama_index"

_TEXTS = [
    "Paris is the capital of France.",
    "Rome is the capital of Italy.",
    "Oslo is the capital of Norway.",
    "Lisbon is the capital of Portugal.",
]


def setup(openai_base_url: str) -> Callable[[], object]:
    """Build the index, retriever and model; return the call to time."""
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    index = VectorStoreIndex.from_documents(
        [Document(text=text) for text in _TEXTS], embed_model=MockEmbedding(embed_dim=16)
    )
    retriever = index.as_retriever(similarity_top_k=2)
    llm = MockLLM(max_tokens=16)

    def call() -> object:
        nodes = retriever.retrieve("What is the capital of France?")
        context = "\n".join(node.get_content() for node in nodes)
        return llm.complete(f"{context}\nWhat is the capital of France?").text

    return call
