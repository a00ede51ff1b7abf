"""A local server that speaks the Gemini Developer API as google-genai uses it (stdlib only).

Routes (the model name is in the path; the API version segment is ``v1beta``, ``v1`` or
``v1alpha``, whichever the client uses): ``POST /v1beta/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse`` (server-sent ``data: {…}`` events, each a whole
``GenerateContentResponse`` holding the next piece) and ``:batchEmbedContents`` (what
``models.embed_content`` calls on the Developer API). What it answers depends on the
request, like a deterministic model:

- model ``error-<status>``: that status with Google's error body
  (``{"error": {"code", "message", "status"}}``); ``error-stream``: a stream that sends one
  text chunk and then an error event, as the API does when it fails mid-answer.
- ``tools`` with function declarations and the last content holds no ``functionResponse``:
  a ``functionCall`` of the first declared function with ``{"city": "Paris"}`` (carrying a
  ``thoughtSignature``, as thinking models send), after the text ``Let me check.``.
- model ``blocked``: no candidates, ``promptFeedback.blockReason`` ``SAFETY``.
- ``generationConfig.thinkingConfig.includeThoughts``: a thought-summary part first.
- otherwise the text ``REPLY``; streamed word by word, or ``maxOutputTokens`` pieces.

Usage: every chunk of a stream reports the prompt; the last one also the candidates,
thoughts and cached counts (the server's running total, as the API does).
The transport is the OpenAI fake's ``SSEServer``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tests.integrations._fake_openai import Reply, SSEServer

REPLY = "Hello! How can I help you today?"
TOOL_TEXT = "Let me check."
TOOL_ARGS = {"city": "Paris"}
THOUGHT = "The user greets me."
THOUGHT_SIGNATURE = "c2lnbmF0dXJlLWZha2U="  # base64 of b"signature-fake"
PROMPT_TOKENS = 11
CACHED_TOKENS = 3
THOUGHTS_TOKENS = 4
TOOL_CALL_TOKENS = 7
MODEL_VERSION_SUFFIX = "-001"
RESPONSE_ID = "resp-fake-1"
EMBEDDING_DIM = 4

_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_PATH = re.compile(r"/(v1|v1beta|v1alpha)/models/(?P<model>[^:/]+):(?P<method>\w+)")


def app(path: str, headers: dict[str, str], body: Any) -> Reply:
    """Answer one Gemini API request."""
    bare = path.split("?")[0]
    match = _PATH.fullmatch(bare)
    if match is None:
        return error(404, f"Method not found: POST {bare}.")
    model, method = match["model"], match["method"]
    if model.startswith("error-") and model != "error-stream":
        return error(int(model.removeprefix("error-")))
    if model == "blocked" and method == "generateContent":
        feedback = {"blockReason": "SAFETY"}
        return Reply(body={"promptFeedback": feedback, "usageMetadata": usage(body, final=False)})
    if method == "generateContent":
        return Reply(body=_response(body, model, _parts(body), final=True))
    if method == "streamGenerateContent":
        return Reply(events=_events(body, model))
    if method == "batchEmbedContents":
        return _embeddings(body)
    return error(404, f"Method not found: {method}.")


def error(status: int, message: str | None = None) -> Reply:
    """Google's error body for ``status``."""
    text = message or f"Simulated error {status} from the fake Gemini server."
    body = {"error": {"code": status, "message": text, "status": _STATUS.get(status, "UNKNOWN")}}
    return Reply(status, body)


def pieces(body: dict[str, Any]) -> list[str]:
    """The reply text split into the chunks a stream sends."""
    count = (body.get("generationConfig") or {}).get("maxOutputTokens")
    if count:
        return [f"w{i} " for i in range(int(count))]
    words = REPLY.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _declarations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for tool in body.get("tools") or () for d in tool.get("functionDeclarations") or ()]


def wants_tool(body: dict[str, Any]) -> bool:
    """Whether the fake answers with a function call."""
    if not _declarations(body):
        return False
    last = (body.get("contents") or [{}])[-1]
    return not any("functionResponse" in part for part in last.get("parts") or ())


def _thinks(body: dict[str, Any]) -> bool:
    thinking = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    # Google's JSON parser takes both spellings; the SDK sends this one in snake_case.
    return bool(thinking.get("includeThoughts") or thinking.get("include_thoughts"))


def _parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of the whole answer (a stream sends them as pieces)."""
    parts: list[dict[str, Any]] = []
    if _thinks(body):
        parts.append({"text": THOUGHT, "thought": True})
    if wants_tool(body):
        name = _declarations(body)[0]["name"]
        call = {"name": name, "args": TOOL_ARGS}
        parts.append({"text": TOOL_TEXT})
        parts.append({"functionCall": call, "thoughtSignature": THOUGHT_SIGNATURE})
    else:
        parts.append({"text": "".join(pieces(body))})
    return parts


def candidates_tokens(body: dict[str, Any]) -> int:
    """The candidates token count the fake reports for its answer to ``body``."""
    return TOOL_CALL_TOKENS if wants_tool(body) else len(pieces(body))


def usage(body: dict[str, Any], *, final: bool = True) -> dict[str, Any]:
    """The ``usageMetadata`` of an answer (``final=False``: a stream's early chunks)."""
    details = [{"modality": "TEXT", "tokenCount": PROMPT_TOKENS}]
    if not final:
        return {
            "promptTokenCount": PROMPT_TOKENS,
            "totalTokenCount": PROMPT_TOKENS,
            "promptTokensDetails": details,
        }
    out = candidates_tokens(body)
    thoughts = THOUGHTS_TOKENS if _thinks(body) else 0
    data: dict[str, Any] = {
        "promptTokenCount": PROMPT_TOKENS,
        "candidatesTokenCount": out,
        "totalTokenCount": PROMPT_TOKENS + out + thoughts,
        "cachedContentTokenCount": CACHED_TOKENS,
        "promptTokensDetails": details,
    }
    if thoughts:
        data["thoughtsTokenCount"] = thoughts
    return data


def _response(
    body: dict[str, Any], model: str, parts: list[dict[str, Any]], *, final: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": usage(body, final=final),
        "modelVersion": model + MODEL_VERSION_SUFFIX,
        "responseId": RESPONSE_ID,
    }


def _events(body: dict[str, Any], model: str) -> Iterator[tuple[str | None, str]]:
    chunks: list[list[dict[str, Any]]] = []
    for part in _parts(body):
        if "text" in part and not part.get("thought") and part["text"] != TOOL_TEXT:
            chunks.extend([{"text": piece}] for piece in pieces(body))
        else:
            chunks.append([part])
    for n, parts in enumerate(chunks):
        final = n == len(chunks) - 1
        yield None, json.dumps(_response(body, model, parts, final=final))
        if model == "error-stream":
            error_body = {
                "code": 503,
                "message": "The model is overloaded.",
                "status": "UNAVAILABLE",
            }
            yield None, json.dumps({"error": error_body})
            return


def embedding_vector(index: int) -> list[float]:
    """The vector the fake returns for request number ``index``."""
    return [round((index + 1) * 0.125 + d * 0.25, 3) for d in range(EMBEDDING_DIM)]


def _embeddings(body: dict[str, Any]) -> Reply:
    requests = body.get("requests") or []
    tokens = sum(len(p.get("text", "").split()) for r in requests for p in r["content"]["parts"])
    return Reply(
        body={
            "embeddings": [{"values": embedding_vector(i)} for i in range(len(requests))],
            "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens},
        }
    )


def serve() -> SSEServer:
    """A started fake Gemini server; pass ``server.url`` as the client's ``base_url``."""
    return SSEServer(app).start()
