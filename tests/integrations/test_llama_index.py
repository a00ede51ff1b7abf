"""``threadline.llama_index.autolog()``: the real llama-index-core, offline.

Queries run over an in-memory ``VectorStoreIndex`` with LlamaIndex's own ``MockLLM`` and
``MockEmbedding``; agents use ``OpenAIChatLLM`` (``_llama_index_llm``), a function-calling
LlamaIndex model that talks to the local fake OpenAI server through the openai SDK (tool
call, then answer). Nothing is mocked: every span comes through LlamaIndex's dispatcher.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.llms import CustomLLM, MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Event, StartEvent, StopEvent, Workflow, step

import threadline
from tests.integrations import _fake_openai as fake
from tests.integrations._llama_index_llm import OpenAIChatLLM
from tests.integrations.conftest import API_KEY, all_spans, assert_no_secret, only_span
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.integrations import _chat_format as cf
from threadline.integrations import llama_index as tl_llama_index
from threadline.integrations.llama_index import INTEGRATION
from threadline.tracing import _safety

REPLY = "text text text text"  # MockLLM(max_tokens=4)
DOCS = [
    Document(text="Paris is the capital of France.", id_="doc-paris", metadata={"city": "Paris"}),
    Document(text="Rome is the capital of Italy.", id_="doc-rome", metadata={"city": "Rome"}),
    Document(text="Oslo is the capital of Norway.", id_="doc-oslo", metadata={"city": "Oslo"}),
]
# LlamaIndex's own code reads deprecated pydantic attributes (``inspect.getmembers`` over a
# workflow agent touches ``__fields__``), which the suite turns into errors.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The `__fields__` attribute is deprecated:DeprecationWarning",
    "ignore:The `__fields_set__` attribute is deprecated:DeprecationWarning",
    "ignore:Accessing the 'model_\\w+' attribute on the instance is deprecated:DeprecationWarning",
)


def usage_of(tokens: int) -> dict[str, int]:
    u = fake.usage(tokens)
    return {
        "input_tokens": u["prompt_tokens"],
        "output_tokens": u["completion_tokens"],
        "total_tokens": u["total_tokens"],
    }


TOOL_CALL_USAGE = usage_of(9)  # the fake's tool call reply
ANSWER_USAGE = usage_of(len(fake.pieces({})))  # the fake's text reply


@pytest.fixture(autouse=True)
def _no_tracing_errors() -> Iterator[None]:
    """LlamaIndex's dispatcher swallows whatever its handlers raise: a tracing failure
    would only show as missing spans, so every test also checks that none was reported."""
    yield
    failures = {kind: n for kind, n in _safety._counts.items() if kind.startswith("llama_index-")}
    assert failures == {}


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(DOCS, embed_model=MockEmbedding(embed_dim=8))


@pytest.fixture
def llm() -> MockLLM:
    return MockLLM(max_tokens=4)


@pytest.fixture
def models(openai_url: str) -> Iterator[Any]:
    """``models()`` makes an ``OpenAIChatLLM`` on the fake server; all are closed after."""
    made: list[OpenAIChatLLM] = []

    def make() -> OpenAIChatLLM:
        made.append(OpenAIChatLLM(base_url=openai_url, api_key=API_KEY))
        return made[-1]

    yield make
    for model in made:
        model.close()


def run_agent(agent: FunctionAgent, question: str) -> Any:
    """``agent.run`` in a new event loop, closing the model's async client in that loop."""

    async def main() -> Any:
        try:
            return await agent.run(user_msg=question)
        finally:
            await agent.llm.aclose()

    return asyncio.run(main())


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


WEATHER = FunctionTool.from_defaults(get_weather)


# --- helpers -------------------------------------------------------------------------------


def spans_named(spans: list[Any], name: str) -> list[Any]:
    return [s for s in spans if s.name == name]


def one(spans: list[Any], name: str) -> Any:
    found = spans_named(spans, name)
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def children(spans: list[Any], parent: Any) -> list[str]:
    return [s.name for s in spans if s.parent_id == parent.span_id]


def of_type(spans: list[Any], span_type: str) -> list[Any]:
    return [s for s in spans if s.span_type == span_type]


def only_trace(captured: Any) -> list[Any]:
    traces = captured.traces
    assert len(traces) == 1, [[s.name for s in t.data.spans] for t in traces]
    return traces[0].data.spans


# --- queries, retrievers, LLMs ------------------------------------------------------------


def test_query_engine_query(captured, index, llm):
    engine = index.as_query_engine(llm=llm, similarity_top_k=2)
    tl_llama_index.autolog()
    response = engine.query("What is the capital of France?")

    assert str(response) == REPLY
    spans = only_trace(captured)
    root = one(spans, "RetrieverQueryEngine.query")
    assert root.parent_id is None
    assert root.span_type == SpanType.CHAIN
    assert root.inputs == {"str_or_query_bundle": "What is the capital of France?"}
    assert root.outputs == REPLY
    assert children(spans, root) == ["VectorIndexRetriever.retrieve", "CompactAndRefine.synthesize"]
    private = [s.name for s in spans if s.name.rpartition(".")[2].startswith("_")]
    assert private == ["DefaultRefineProgram.__call__"]  # private methods are folded in

    retriever = one(spans, "VectorIndexRetriever.retrieve")
    assert retriever.span_type == SpanType.RETRIEVER
    docs = retriever.outputs["documents"]
    assert len(docs) == 2
    by_text = {d.text: d for d in DOCS}
    for doc in docs:
        assert set(doc) == {"id", "text", "score", "metadata"}
        assert isinstance(doc["score"], float)
        assert isinstance(doc["id"], str) and doc["id"]
        assert doc["metadata"] == by_text[doc["text"]].metadata
    embedding = one(spans, "MockEmbedding.get_query_embedding")
    assert embedding.span_type == SpanType.EMBEDDING
    assert embedding.parent_id == retriever.span_id
    assert embedding.inputs == {"query": "What is the capital of France?"}
    assert len(embedding.outputs) == 8

    (call,) = of_type(spans, SpanType.LLM)
    assert call.name == "MockLLM.predict"
    assert call.outputs == REPLY
    messages = call.attributes[cf.CHAT_MESSAGES]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert "What is the capital of France?" in messages[0]["content"]
    assert any(d["text"] in messages[0]["content"] for d in docs)
    assert messages[1] == {"role": "assistant", "content": REPLY}
    assert all(s.status.status_code == "OK" for s in spans)


def test_retrieve_then_complete_under_trace(captured, index, llm):
    retriever = index.as_retriever(similarity_top_k=1)
    tl_llama_index.autolog()

    @threadline.trace
    def answer(question: str) -> str:
        nodes = retriever.retrieve(question)
        return llm.complete(f"{nodes[0].get_content()}\n{question}").text

    assert answer("Which city?") == REPLY
    spans = only_trace(captured)
    root = one(spans, "answer")
    assert children(spans, root) == ["VectorIndexRetriever.retrieve", "MockLLM.complete"]
    call = one(spans, "MockLLM.complete")
    assert call.span_type == SpanType.LLM
    (doc,) = one(spans, "VectorIndexRetriever.retrieve").outputs["documents"]
    assert call.inputs == {"prompt": f"{doc['text']}\nWhich city?"}
    assert call.outputs == REPLY
    assert call.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": f"{doc['text']}\nWhich city?"},
        {"role": "assistant", "content": REPLY},
    ]


def test_span_processor_reads_documents_as_objects(captured, index):
    """The FAQ's processor: ``doc.id`` on a retriever span's documents."""

    def keep_ids(span: Any) -> None:
        if span.span_type == SpanType.RETRIEVAL:
            documents = span.outputs.get("documents")
            span.set_outputs({"document_ids": [doc.id for doc in documents]})

    threadline.tracing.configure(span_processors=[keep_ids])
    retriever = index.as_retriever(similarity_top_k=2)
    tl_llama_index.autolog()
    nodes = retriever.retrieve("capital")
    span = one(all_spans(captured), "VectorIndexRetriever.retrieve")
    assert span.outputs == {"document_ids": [n.node.node_id for n in nodes]}


def test_chat_is_a_chat_model_span(captured, llm):
    tl_llama_index.autolog()
    reply = llm.chat([ChatMessage(role="system", content="Be brief."), ChatMessage(content="Hi")])
    span = only_span(captured)  # chat() calling complete() is one span
    assert span.name == "MockLLM.chat"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.inputs == {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    }
    assert span.outputs == {"role": "assistant", "content": reply.message.content}
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": REPLY}


def test_llm_error_reaches_caller_and_span_is_error(captured, index):
    failure = RuntimeError("model is down")

    class BrokenLLM(CustomLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="broken-1")

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            raise failure

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            raise failure

    engine = index.as_query_engine(llm=BrokenLLM(), similarity_top_k=1)
    tl_llama_index.autolog()
    with pytest.raises(RuntimeError) as raised:
        engine.query("anything")
    assert raised.value is failure
    spans = only_trace(captured)
    call = one(spans, "BrokenLLM.predict")
    assert call.status.status_code == "ERROR"
    assert call.events[0].name == "exception"
    assert call.events[0].attributes["exception.message"] == "model is down"
    assert call.attributes[cf.CHAT_MESSAGES][0]["role"] == "user"  # the request is kept
    assert one(spans, "RetrieverQueryEngine.query").status.status_code == "ERROR"


# --- streaming ------------------------------------------------------------------------------


def test_stream_chat_span_ends_when_the_stream_does(captured, llm):
    tl_llama_index.autolog()
    stream = llm.stream_chat([ChatMessage(content="Hi")])
    assert all_spans(captured) == []  # open while the stream is read
    deltas = [chunk.delta for chunk in stream]
    assert "".join(deltas).strip() == REPLY  # (MockLLM's spacing differs between releases)
    span = only_span(captured)
    assert span.name == "MockLLM.stream_chat"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.status.status_code == "OK"
    assert span.attributes[cf.CHAT_MESSAGES][0] == {"role": "user", "content": "Hi"}
    assert span.attributes[cf.CHAT_MESSAGES][-1]["role"] == "assistant"
    assert SpanAttributeKey.GENERATOR_CLOSED_EARLY not in span.attributes


def test_stream_closed_early(captured, llm):
    tl_llama_index.autolog()
    stream = llm.stream_complete("Hi")
    next(stream)
    stream.close()
    span = only_span(captured)
    assert span.status.status_code == "OK"
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_stream_dropped_unread_ends_its_span(captured, llm):
    tl_llama_index.autolog()
    stream = llm.stream_complete("Hi")
    next(stream)
    del stream
    gc.collect()
    assert only_span(captured).attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_streaming_query_spans_end_with_the_stream(captured, index, llm):
    engine = index.as_query_engine(llm=llm, similarity_top_k=1, streaming=True)
    tl_llama_index.autolog()
    response = engine.query("capital?")
    ended = [s.name for s in all_spans(captured)]
    assert "RetrieverQueryEngine.query" not in ended  # open while the stream is read
    assert "CompactAndRefine.synthesize" not in ended
    assert "VectorIndexRetriever.retrieve" in ended
    text = "".join(response.response_gen)

    spans = only_trace(captured)  # the LLM call made while reading is in the query's trace
    root = one(spans, "RetrieverQueryEngine.query")
    assert root.outputs == text
    synthesize = one(spans, "CompactAndRefine.synthesize")
    assert synthesize.outputs == text
    (call,) = of_type(spans, SpanType.LLM)
    assert call.name == "MockLLM.stream"
    assert call.parent_id == synthesize.span_id
    assert root.end_time_ns >= call.end_time_ns


def test_streaming_query_read_through_the_response(captured, index, llm):
    engine = index.as_query_engine(llm=llm, similarity_top_k=1, streaming=True)
    tl_llama_index.autolog()
    response = engine.query("capital?")
    assert response.get_response().response.strip()  # StreamingResponse's own reader
    assert one(only_trace(captured), "RetrieverQueryEngine.query").status.status_code == "OK"


def test_streaming_query_dropped_unread(captured, index, llm):
    engine = index.as_query_engine(llm=llm, similarity_top_k=1, streaming=True)
    tl_llama_index.autolog()
    response = engine.query("capital?")
    del response
    gc.collect()
    root = one(only_trace(captured), "RetrieverQueryEngine.query")
    assert root.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


# --- async ---------------------------------------------------------------------------------


def test_aquery_and_achat(captured, index, llm):
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    tl_llama_index.autolog()

    async def main() -> None:
        await engine.aquery("capital?")
        await llm.achat([ChatMessage(content="Hi")])

    asyncio.run(main())
    query, chat = captured.traces
    spans = query.data.spans
    root = one(spans, "RetrieverQueryEngine.aquery")
    assert root.outputs == REPLY
    assert children(spans, root) == [
        "VectorIndexRetriever.aretrieve",
        "CompactAndRefine.asynthesize",
    ]
    assert len(of_type(spans, SpanType.LLM)) == 1
    (span,) = chat.data.spans
    assert span.name == "MockLLM.achat"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": REPLY},
    ]


def test_async_streaming_query(captured, index, llm):
    engine = index.as_query_engine(llm=llm, similarity_top_k=1, streaming=True)
    tl_llama_index.autolog()

    async def main() -> str:
        response = await engine.aquery("capital?")
        return "".join([token async for token in response.async_response_gen()])

    text = asyncio.run(main())
    spans = only_trace(captured)
    assert one(spans, "RetrieverQueryEngine.aquery").outputs == text
    (call,) = of_type(spans, SpanType.LLM)
    assert call.parent_id == one(spans, "CompactAndRefine.asynthesize").span_id


# --- agents and tools ---------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_agent_with_a_tool_call(captured, models, streaming):
    agent = FunctionAgent(tools=[WEATHER], llm=models(), streaming=streaming)
    tl_llama_index.autolog()
    result = run_agent(agent, "Weather in Paris?")
    assert str(result) == fake.REPLY
    spans = only_trace(captured)
    root = one(spans, "FunctionAgent.run")
    assert root.parent_id is None
    assert root.span_type == SpanType.AGENT
    assert root.inputs["user_msg"] == "Weather in Paris?"
    assert root.outputs["content"] == fake.REPLY
    steps = [s for s in spans if s.parent_id == root.span_id]
    assert steps and all(s.span_type == SpanType.CHAIN for s in steps)
    assert "BaseWorkflowAgent.call_tool" in [s.name for s in steps]

    method = "astream_chat" if streaming else "achat"
    first, second = spans_named(spans, f"OpenAIChatLLM.{method}")
    for call in (first, second):
        assert call.span_type == SpanType.CHAT_MODEL
        assert call.attributes[SpanAttributeKey.MODEL] == "gpt-4o-mini" + fake.RESPONSE_MODEL_SUFFIX
        assert call.attributes[cf.CHAT_TOOLS] == [
            {
                "name": "get_weather",
                "description": WEATHER.metadata.description,
                "parameters": WEATHER.metadata.get_parameters_dict(),
            }
        ]
    assert first.attributes[SpanAttributeKey.TOKEN_USAGE] == TOOL_CALL_USAGE
    assert second.attributes[SpanAttributeKey.TOKEN_USAGE] == ANSWER_USAGE
    tool_call = cf.tool_call("call_fake1", "get_weather", {"city": "Paris"})
    assert first.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
    ]
    assert second.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}

    tool = one(spans, "get_weather")
    assert tool.span_type == SpanType.TOOL
    assert tool.inputs == {"city": "Paris"}
    assert tool.outputs == "sunny in Paris"
    assert one(spans, "BaseWorkflowAgent.call_tool").span_id == tool.parent_id
    assert_no_secret(captured)


def test_tool_exception_reaches_caller_and_span_is_error(captured):
    failure = ValueError("no such city")

    def lookup(city: str) -> str:
        """Look a city up."""
        raise failure

    tool = FunctionTool.from_defaults(lookup)
    tl_llama_index.autolog()
    with pytest.raises(ValueError) as raised:
        tool.call(city="Atlantis")
    assert raised.value is failure
    span = only_span(captured)
    assert span.name == "lookup"
    assert span.span_type == SpanType.TOOL
    assert span.status.status_code == "ERROR"
    assert span.events[0].attributes["exception.type"] == "ValueError"


def test_tool_exception_inside_an_agent(captured, models):
    def get_weather(city: str) -> str:
        """The weather in a city."""
        raise ConnectionError("weather service unreachable")

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(get_weather)], llm=models(), streaming=False
    )
    tl_llama_index.autolog()
    # The agent hands the tool's error to the model, which answers.
    assert str(run_agent(agent, "Weather in Paris?")) == fake.REPLY
    spans = only_trace(captured)
    tool = one(spans, "get_weather")
    assert tool.status.status_code == "ERROR"
    assert tool.events[0].attributes["exception.message"] == "weather service unreachable"
    assert one(spans, "FunctionAgent.run").status.status_code == "OK"


# --- workflows ------------------------------------------------------------------------------


class Draft(Event):
    text: str


@threadline.trace
def polish(text: str) -> str:
    return text.upper()


class WriteFlow(Workflow):
    @step
    async def draft(self, ev: StartEvent) -> Draft:
        return Draft(text=f"about {ev.topic}")

    @step
    def finish(self, ev: Draft) -> StopEvent:  # a sync step: LlamaIndex runs it in a thread
        return StopEvent(result=polish(ev.text))


class FailingFlow(Workflow):
    failure = KeyError("missing")

    @step
    async def only(self, ev: StartEvent) -> StopEvent:
        raise self.failure


def test_workflow_run_and_steps(captured):
    tl_llama_index.autolog()

    async def main() -> Any:
        return await WriteFlow().run(topic="tides")

    assert asyncio.run(main()) == "ABOUT TIDES"
    spans = only_trace(captured)
    root = one(spans, "WriteFlow.run")
    assert root.span_type == SpanType.AGENT
    assert root.inputs == {"topic": "tides"}
    assert root.outputs == "ABOUT TIDES"
    draft, finish = one(spans, "WriteFlow.draft"), one(spans, "WriteFlow.finish")
    assert draft.parent_id == finish.parent_id == root.span_id
    assert draft.span_type == finish.span_type == SpanType.CHAIN
    assert draft.inputs == {"topic": "tides"}
    assert draft.outputs == {"text": "about tides"}
    assert one(spans, "polish").parent_id == finish.span_id  # @trace inside a step


def test_workflow_step_error(captured):
    tl_llama_index.autolog()

    async def main() -> Any:
        return await FailingFlow().run()

    with pytest.raises(KeyError) as raised:
        asyncio.run(main())
    assert raised.value is FailingFlow.failure
    spans = only_trace(captured)
    assert one(spans, "FailingFlow.only").status.status_code == "ERROR"
    assert one(spans, "FailingFlow.run").status.status_code == "ERROR"


# --- nesting --------------------------------------------------------------------------------


def test_nesting_both_ways(captured, index, llm):
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)

    @threadline.trace(span_type=SpanType.TOOL)
    def convert(amount: int) -> int:
        return amount * 2

    def lookup(question: str) -> str:
        """Answer a question from the index, then convert."""
        return f"{engine.query(question)} {convert(21)}"

    tool = FunctionTool.from_defaults(lookup)
    tl_llama_index.autolog()

    @threadline.trace
    def handle(question: str) -> str:
        return str(tool.call(question=question))

    assert handle("capital?") == f"{REPLY} 42"
    spans = only_trace(captured)
    root = one(spans, "handle")
    tool_span = one(spans, "lookup")
    assert tool_span.parent_id == root.span_id
    assert children(spans, tool_span) == ["RetrieverQueryEngine.query", "convert"]


def test_workflow_and_agent_nest_under_trace(captured, models):
    agent = FunctionAgent(tools=[WEATHER], llm=models(), streaming=False)
    tl_llama_index.autolog()

    @threadline.trace
    async def handle(topic: str) -> str:
        try:
            written = await WriteFlow().run(topic=topic)
            answer = await agent.run(user_msg="Weather in Paris?")
        finally:
            await agent.llm.aclose()
        return f"{written} {answer}"

    assert asyncio.run(handle("tides")) == f"ABOUT TIDES {fake.REPLY}"
    spans = only_trace(captured)
    root = one(spans, "handle")
    assert children(spans, root) == ["WriteFlow.run", "FunctionAgent.run"]
    assert one(spans, "get_weather").parent_id == one(spans, "BaseWorkflowAgent.call_tool").span_id


def test_disabled_tracing_records_nothing(captured, index, llm):
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    tl_llama_index.autolog()
    threadline.tracing.disable()
    assert str(engine.query("capital?")) == REPLY
    threadline.tracing.enable()
    assert captured.traces == []


# --- concurrency ----------------------------------------------------------------------------


class RendezvousLLM(CustomLLM):
    """Answers with the last line of its prompt, after both concurrent callers arrived."""

    def model_post_init(self, context: Any) -> None:
        self._barrier = threading.Barrier(2, timeout=20)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="rendezvous")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self._barrier.wait()
        return CompletionResponse(text=_question(prompt))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        await _meet()
        return CompletionResponse(text=_question(prompt))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        raise NotImplementedError


def _question(prompt: str) -> str:
    return next(line for line in prompt.splitlines() if line.startswith("Query:"))[7:]


_arrived: list[asyncio.Event] = []


async def _meet() -> None:
    """Both tasks wait here until the other one has arrived too."""
    mine = asyncio.Event()
    _arrived.append(mine)
    if len(_arrived) == 2:
        for event in _arrived:
            event.set()
    await asyncio.wait_for(mine.wait(), timeout=20)


def _check_unmixed(captured: Any, questions: list[str]) -> None:
    traces = captured.traces
    assert len(traces) == len(questions)
    seen = []
    for trace in traces:
        spans = trace.data.spans
        (root,) = [s for s in spans if s.parent_id is None]
        question = root.inputs["question"]
        seen.append(question)
        ids = {s.span_id for s in spans}
        assert all(s.parent_id in ids for s in spans if s is not root)
        (query,) = [s for s in spans if s.name.startswith("RetrieverQueryEngine.")]
        assert query.parent_id == root.span_id
        assert query.inputs["str_or_query_bundle"] == question
        assert query.outputs == question
        (call,) = of_type(spans, SpanType.LLM)
        assert question in call.attributes[cf.CHAT_MESSAGES][0]["content"]
    assert sorted(seen) == sorted(questions)


def test_concurrent_queries_in_threads(captured, index):
    engine = index.as_query_engine(llm=RendezvousLLM(), similarity_top_k=1)
    tl_llama_index.autolog()

    @threadline.trace
    def ask(question: str) -> str:
        return str(engine.query(question))

    questions = ["first question", "second question"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda q: copy_context().run(ask, q), questions))
    assert answers == questions
    _check_unmixed(captured, questions)


def test_concurrent_queries_in_asyncio(captured, index):
    engine = index.as_query_engine(llm=RendezvousLLM(), similarity_top_k=1)
    tl_llama_index.autolog()
    _arrived.clear()

    @threadline.trace
    async def ask(question: str) -> str:
        return str(await engine.aquery(question))

    questions = ["first question", "second question"]

    async def main() -> list[str]:
        return list(await asyncio.gather(*(ask(q) for q in questions)))

    assert asyncio.run(main()) == questions
    _check_unmixed(captured, questions)


# --- autolog, disable, other integrations --------------------------------------------------


def test_autolog_is_idempotent_and_disable_removes_only_its_handlers(captured, llm):
    dispatcher = get_dispatcher()
    span_handlers, event_handlers = dispatcher.span_handlers, dispatcher.event_handlers
    before = (list(span_handlers), list(event_handlers))
    tl_llama_index.autolog()
    tl_llama_index.autolog()
    assert INTEGRATION.enabled
    assert len(span_handlers) == len(before[0]) + 1
    assert len(event_handlers) == len(before[1]) + 1
    theirs = SimpleSpanHandler()
    dispatcher.add_span_handler(theirs)  # someone else's, added after ours
    try:
        tl_llama_index.autolog(disable=True)
        assert not INTEGRATION.enabled
        assert dispatcher.span_handlers is span_handlers  # the same lists, edited in place
        assert dispatcher.event_handlers is event_handlers
        assert span_handlers == [*before[0], theirs]
        assert all(a is b for a, b in zip(span_handlers, [*before[0], theirs]))
        assert event_handlers == before[1]
        llm.complete("Hi")
        assert captured.traces == []
        assert len(theirs.completed_spans) == 1  # theirs still works
    finally:
        dispatcher.span_handlers.remove(theirs)
    tl_llama_index.autolog(log_traces=False)  # off when off: no error
    tl_llama_index.autolog()
    llm.complete("Hi")
    assert only_span(captured).name == "MockLLM.complete"


def test_threadline_autolog_includes_llama_index():
    threadline.autolog(silent=True)
    assert INTEGRATION.enabled
    threadline.autolog(disable=True, silent=True)
    assert not INTEGRATION.enabled


def test_autolog_rejects_bad_options():
    with pytest.raises(threadline.errors.InvalidArgumentError, match="disable"):
        tl_llama_index.autolog(disable="yes")  # type: ignore[arg-type]


def test_no_call_recorded_twice_with_openai_autolog(captured, models, openai_server):
    agent_model = models()
    threadline.openai.autolog()
    agent_model.chat([ChatMessage(content="Hi")])
    (client_span,) = all_spans(captured)  # the openai integration alone records the call
    assert client_span.span_type == SpanType.CHAT_MODEL
    captured.clear()

    tl_llama_index.autolog()
    openai_server.requests.clear()
    run_agent(FunctionAgent(tools=[WEATHER], llm=models(), streaming=False), "Weather in Paris?")
    agent_model.chat([ChatMessage(content="Hi")])
    calls = [s for s in all_spans(captured) if s.span_type == SpanType.CHAT_MODEL]
    assert len(calls) == len(openai_server.requests) == 3  # one span per model call
    assert all(s.name.startswith("OpenAIChatLLM.") for s in calls)
    assert [s.attributes[SpanAttributeKey.TOKEN_USAGE] for s in calls] == [
        TOOL_CALL_USAGE,
        ANSWER_USAGE,
        ANSWER_USAGE,
    ]
    call_ids = {s.span_id for s in calls}
    assert not [s for s in all_spans(captured) if s.parent_id in call_ids]


def test_client_call_of_a_tool_run_by_an_llm_call_is_recorded(captured, models, openai_client):
    """``predict_and_call`` runs the tool inside the LLM call's span: the tool's own model
    call is not the LLM call's request, so the openai integration records it."""

    def get_weather(city: str) -> str:
        """The weather in a city."""
        reply = openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": city}]
        )
        return reply.choices[0].message.content

    threadline.openai.autolog()
    tl_llama_index.autolog()
    output = models().predict_and_call(
        [FunctionTool.from_defaults(get_weather)], user_msg="Weather in Paris?"
    )
    assert output.response == fake.REPLY
    spans = only_trace(captured)
    outer = one(spans, "OpenAIChatLLM.predict_and_call")
    tool = one(spans, "get_weather")
    assert tool.parent_id == outer.span_id
    (client_call,) = [s for s in spans if s.parent_id == tool.span_id]
    assert client_call.span_type == SpanType.CHAT_MODEL
    assert client_call.attributes[SpanAttributeKey.TOKEN_USAGE] == ANSWER_USAGE
    assert not [s for s in spans if s.parent_id == outer.span_id and s is not tool]


def test_version_is_the_distributions_and_too_old_is_refused(monkeypatch):
    from importlib.metadata import version

    import llama_index.core

    assert INTEGRATION.version(llama_index.core) == version("llama-index-core")
    monkeypatch.setattr(INTEGRATION, "minimum_version", "99.0.0")
    with pytest.raises(threadline.errors.InvalidArgumentError, match='pip install "llama-index'):
        tl_llama_index.autolog()
    assert not INTEGRATION.enabled
