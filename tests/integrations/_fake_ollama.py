"""A local server that speaks Ollama's REST API, for tests (stdlib only).

Routes: ``POST /api/chat``, ``/api/generate``, ``/api/embed`` and the older
``/api/embeddings``. It answers like a deterministic model:

- ``model`` ``"error-<status>"``: that status with Ollama's error body ``{"error": …}``;
  ``"error-stream"``: a stream whose third line is an error, as Ollama sends when a
  model fails while generating.
- ``tools`` given and the last message is not a tool result: a call of the first tool
  with the arguments object ``{"city": "Paris"}``, as Ollama returns tool calls.
- ``think`` true: the reply comes with the reasoning ``THINKING``.
- otherwise the text ``REPLY``, streamed word by word (``options.num_predict`` pieces
  when set, which ends with ``done_reason`` ``"length"``).

A body without ``"stream": false`` is answered as a stream, as Ollama does: one JSON
object per line, the last one with ``"done": true``, the finish reason and the counts
(``prompt_eval_count``, ``eval_count``). The transport is the OpenAI fake's ``SSEServer``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.integrations._fake_openai import Reply, SSEServer

REPLY = "Hello! How can I help you today?"
TOOL_ARGUMENTS = {"city": "Paris"}
THINKING = "The user greets me."
CREATED_AT = "2024-01-01T00:00:00.000000Z"
PROMPT_EVAL_COUNT = 26
TOOL_EVAL_COUNT = 9
CONTEXT = [1, 2, 3]
EMBEDDING_DIM = 4
_TIMINGS = {"total_duration": 5_000_000, "load_duration": 1_000_000}


def app(path: str, headers: dict[str, str], body: Any) -> Reply:
    """Answer one Ollama API request."""
    model = str(body.get("model", ""))
    if model.startswith("error-") and model != "error-stream":
        status = int(model.removeprefix("error-"))
        return Reply(status, {"error": f"model '{model}' failed with status {status}"})
    routes = {
        "/api/chat": _chat,
        "/api/generate": _generate,
        "/api/embed": _embed,
        "/api/embeddings": _embeddings,
    }
    route = routes.get(path.split("?")[0])
    if route is None:
        return Reply(404, {"error": f"404 page not found: {path}"})
    return route(body)


def pieces(body: dict[str, Any]) -> list[str]:
    """The reply text split into the pieces a stream sends."""
    count = (body.get("options") or {}).get("num_predict")
    if count:
        return [f"w{i} " for i in range(int(count))]
    words = REPLY.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _done(body: dict[str, Any], eval_count: int) -> dict[str, Any]:
    limited = bool((body.get("options") or {}).get("num_predict"))
    return {
        "done": True,
        "done_reason": "length" if limited else "stop",
        **_TIMINGS,
        "prompt_eval_count": PROMPT_EVAL_COUNT,
        "prompt_eval_duration": 1_000_000,
        "eval_count": eval_count,
        "eval_duration": 2_000_000,
    }


def _wants_tool(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(body.get("tools")) and not (messages and messages[-1].get("role") == "tool")


def tool_call(body: dict[str, Any]) -> dict[str, Any]:
    return {"function": {"name": body["tools"][0]["function"]["name"], "arguments": TOOL_ARGUMENTS}}


def _chat(body: dict[str, Any]) -> Reply:
    head = {"model": body["model"], "created_at": CREATED_AT}
    streamed = body.get("stream", True)
    if _wants_tool(body):
        message = {"role": "assistant", "content": "", "tool_calls": [tool_call(body)]}
        if not streamed:
            return Reply(body={**head, "message": message, **_done(body, TOOL_EVAL_COUNT)})
        last = {"role": "assistant", "content": ""}
        lines = [{**head, "message": message, "done": False}]
        lines.append({**head, "message": last, **_done(body, TOOL_EVAL_COUNT)})
        return Reply(lines=iter(lines))
    parts = pieces(body)
    if not streamed:
        message = {"role": "assistant", "content": "".join(parts)}
        if body.get("think"):
            message["thinking"] = THINKING
        return Reply(body={**head, "message": message, **_done(body, len(parts))})

    def lines() -> Iterator[dict[str, Any]]:
        if body.get("think"):
            thinking = {"role": "assistant", "content": "", "thinking": THINKING}
            yield {**head, "message": thinking, "done": False}
        for i, part in enumerate(parts):
            if body["model"] == "error-stream" and i == 2:
                yield {"error": "an error was encountered while running the model"}
                return
            yield {**head, "message": {"role": "assistant", "content": part}, "done": False}
        last = {"role": "assistant", "content": ""}
        yield {**head, "message": last, **_done(body, len(parts))}

    return Reply(lines=lines())


def _generate(body: dict[str, Any]) -> Reply:
    head = {"model": body["model"], "created_at": CREATED_AT}
    parts = pieces(body)
    thinking = {"thinking": THINKING} if body.get("think") else {}
    if not body.get("stream", True):
        done = {**_done(body, len(parts)), "context": CONTEXT}
        return Reply(body={**head, "response": "".join(parts), **thinking, **done})

    def lines() -> Iterator[dict[str, Any]]:
        if thinking:
            yield {**head, "response": "", **thinking, "done": False}
        for part in parts:
            yield {**head, "response": part, "done": False}
        yield {**head, "response": "", **_done(body, len(parts)), "context": CONTEXT}

    return Reply(lines=lines())


def embedding_vector(index: int) -> list[float]:
    """The vector the fake returns for input number ``index``."""
    return [round((index + 1) * 0.125 + d * 0.25, 3) for d in range(EMBEDDING_DIM)]


def _embed(body: dict[str, Any]) -> Reply:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    vectors = [embedding_vector(i) for i in range(len(inputs))]
    return Reply(
        body={
            "model": body["model"],
            "embeddings": vectors,
            **_TIMINGS,
            "prompt_eval_count": 3 * len(inputs),
        }
    )


def _embeddings(body: dict[str, Any]) -> Reply:
    return Reply(body={"embedding": embedding_vector(0)})


def serve() -> SSEServer:
    """A started fake Ollama server; pass ``server.url`` as the client's ``host``."""
    return SSEServer(app).start()
