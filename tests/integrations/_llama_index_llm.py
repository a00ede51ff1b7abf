"""A LlamaIndex function-calling LLM that talks to an OpenAI-compatible server with the
openai SDK, for tests and the benchmark.

``llama-index-llms-openai`` requires ``openai<3``, which conflicts with the openai release
this project is tested against, so the tests use this small model instead. It does what
that package does on the wire (chat completions, OpenAI tool definitions, tool calls in the
reply) and hands LlamaIndex the SDK's response object as ``raw``; against the fake server
(``_fake_openai``) it is a deterministic model: with tools it first calls the first tool,
after the tool's result it answers ``REPLY``. Tool calls are ``ToolCallBlock``s where
LlamaIndex has them, else OpenAI-style ``additional_kwargs["tool_calls"]`` (older releases).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import openai
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

try:  # llama-index-core 0.14.x with tool calls as message blocks
    from llama_index.core.base.llms.types import ToolCallBlock
except ImportError:  # older: OpenAI-style ``additional_kwargs["tool_calls"]``
    ToolCallBlock = None


class OpenAIChatLLM(FunctionCallingLLM):
    """Chat completions over HTTP through the openai SDK (sync and async, streamed or not)."""

    model: str = "gpt-4o-mini"
    base_url: str
    api_key: str
    _client: Any = PrivateAttr()
    _aclient: Any = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0)
        self._aclient = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, max_retries=0
        )

    @classmethod
    def class_name(cls) -> str:
        return "OpenAIChatLLM"

    def close(self) -> None:
        """Close the synchronous client's connections."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the async client's connections (in the event loop that used them)."""
        await self._aclient.close()

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            model_name=self.model, is_chat_model=True, is_function_calling_model=True
        )

    # --- requests and replies

    def _request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "messages": [_wire(m) for m in messages]}
        if kwargs.get("tools"):
            request["tools"] = kwargs["tools"]
        return request

    def _reply(self, completion: Any) -> ChatResponse:
        message = completion.choices[0].message
        calls = [
            (call.id, call.function.name, call.function.arguments or "{}")
            for call in message.tool_calls or []
        ]
        return ChatResponse(message=_assistant(message.content or "", calls), raw=completion)

    # --- chat

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        completion = self._client.chat.completions.create(**self._request(messages, kwargs))
        return self._reply(completion)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        completion = await self._aclient.chat.completions.create(**self._request(messages, kwargs))
        return self._reply(completion)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        stream = self._client.chat.completions.create(
            **self._request(messages, kwargs),
            stream=True,
            stream_options={"include_usage": True},
        )

        def gen() -> Iterator[ChatResponse]:
            acc = _StreamAccumulator()
            for chunk in stream:
                delta = acc.add(chunk)
                yield acc.response(delta)

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        stream = await self._aclient.chat.completions.create(
            **self._request(messages, kwargs),
            stream=True,
            stream_options={"include_usage": True},
        )

        async def gen() -> AsyncIterator[ChatResponse]:
            acc = _StreamAccumulator()
            async for chunk in stream:
                delta = acc.add(chunk)
                yield acc.response(delta)

        return gen()

    # --- completion, through chat

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        reply = self.chat([ChatMessage(role=MessageRole.USER, content=prompt)])
        return CompletionResponse(text=reply.message.content or "", raw=reply.raw)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        reply = await self.achat([ChatMessage(role=MessageRole.USER, content=prompt)])
        return CompletionResponse(text=reply.message.content or "", raw=reply.raw)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        raise NotImplementedError("stream_complete is not used by the tests")

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        raise NotImplementedError("astream_complete is not used by the tests")

    # --- tools

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        return {
            "messages": messages,
            "tools": [tool.metadata.to_openai_tool() for tool in tools],
            **kwargs,
        }

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        calls = [
            ToolSelection(tool_id=call_id or "", tool_name=name, tool_kwargs=arguments)
            for call_id, name, arguments in _tool_calls(response.message)
        ]
        if not calls and error_on_no_tool_call:
            raise ValueError("the model called no tool")
        return calls


def _wire(message: ChatMessage) -> dict[str, Any]:
    """A LlamaIndex message as the chat completions API takes it."""
    role = message.role.value
    out: dict[str, Any] = {"role": role, "content": message.content or ""}
    calls = _tool_calls(message)
    if calls:
        out["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in calls
        ]
    if role == "tool":
        out["tool_call_id"] = message.additional_kwargs.get("tool_call_id")
    return out


class _StreamAccumulator:
    """Chat completion chunks → the growing LlamaIndex reply (text and tool calls)."""

    def __init__(self) -> None:
        self.text = ""
        self.calls: dict[int, dict[str, Any]] = {}
        self.last: Any = None

    def add(self, chunk: Any) -> str:
        self.last = chunk
        if not chunk.choices:
            return ""
        delta = chunk.choices[0].delta
        for call in delta.tool_calls or []:
            entry = self.calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
            if call.id:
                entry["id"] = call.id
            if call.function is not None:
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
        self.text += delta.content or ""
        return delta.content or ""

    def response(self, delta: str) -> ChatResponse:
        calls = [(e["id"], e["name"], e["arguments"]) for e in self.calls.values()]
        return ChatResponse(message=_assistant(self.text, calls), delta=delta, raw=self.last)


def _arguments(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text or "{}")
    except ValueError:  # a stream cut in the middle of the arguments
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _assistant(text: str, calls: list[tuple[Any, str, str]]) -> ChatMessage:
    """The model's reply: its text and tool calls ``(id, name, JSON arguments)``."""
    if ToolCallBlock is None:
        extra = {
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                for i, n, a in calls
            ]
        }
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=text or None,
            additional_kwargs=extra if calls else {},
        )
    blocks: list[Any] = [TextBlock(text=text)] if text else []
    blocks += [
        ToolCallBlock(tool_call_id=i, tool_name=n, tool_kwargs=_arguments(a)) for i, n, a in calls
    ]
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)


def _tool_calls(message: ChatMessage) -> list[tuple[Any, str, dict[str, Any]]]:
    """``(id, name, arguments)`` of a reply's tool calls, in either representation."""
    if ToolCallBlock is None:
        return [
            (c["id"], c["function"]["name"], _arguments(c["function"]["arguments"]))
            for c in message.additional_kwargs.get("tool_calls", [])
        ]
    return [
        (b.tool_call_id, b.tool_name, b.tool_kwargs if isinstance(b.tool_kwargs, dict) else {})
        for b in message.blocks
        if isinstance(b, ToolCallBlock)
    ]
