"""LangChain: one ``invoke`` of a prompt | fake chat model | output parser chain.

Four runs per call (the sequence, the prompt, the chat model, the parser), so four spans,
all in-process: the figure is the tracing cost per framework call, with no network.
"""

from __future__ import annotations

from collections.abc import Callable

NAME = "langchain"
PACKAGES = ["langchain-core", "langchain"]
MLFLOW_FLAVOR = "langchain"


def setup(openai_base_url: str) -> Callable[[], object]:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer in one sentence."), ("user", "{question}")]
    )
    model = FakeListChatModel(responses=["Paris is the capital of France."])
    chain = prompt | model | StrOutputParser()
    question = {"question": "What is the capital of France?"}

    def call() -> object:
        answer = chain.invoke(question)
        assert answer == "Paris is the capital of France."
        return answer

    return call
