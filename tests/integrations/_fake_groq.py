"""A local server that speaks Groq's chat completions API: OpenAI's, under ``/openai/v1``.

The replies are the OpenAI fake's (``_fake_openai``: the same text, tool calls and
``error-<status>`` models), with what Groq does differently on the wire: only ``POST
/openai/v1/chat/completions`` is served; a reply carries ``x_groq`` (a request id) and
Groq's usage block (timings besides the token counts); a stream sends no usage chunk but
reports its usage in the ``x_groq`` of its finishing chunk, unasked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.integrations import _fake_openai as fake

PATH = "/openai/v1/chat/completions"
REQUEST_ID = "req_fake01"


def usage(openai_usage: dict[str, Any]) -> dict[str, Any]:
    """Groq's usage block for the token counts of the OpenAI fake's reply."""
    return {
        "queue_time": 0.011,
        "prompt_tokens": openai_usage["prompt_tokens"],
        "prompt_time": 0.002,
        "completion_tokens": openai_usage["completion_tokens"],
        "completion_time": 0.021,
        "total_tokens": openai_usage["total_tokens"],
        "total_time": 0.023,
        "prompt_tokens_details": {"cached_tokens": fake.CACHED_TOKENS},
    }


def app(path: str, headers: dict[str, str], body: Any) -> fake.Reply:
    """Answer one Groq API request."""
    if path.split("?")[0] != PATH:
        error = {"message": f"Unknown request URL: POST {path}.", "type": "invalid_request_error"}
        return fake.Reply(404, {"error": error})
    reply = fake.app(path, headers, body)
    if reply.status != 200:
        return reply
    final = fake.app(path, headers, {**body, "stream": False}).body
    if reply.events is None:
        reply.body = {**final, "usage": usage(final["usage"]), "x_groq": {"id": REQUEST_ID}}
    else:
        reply.events = _events(reply.events, usage(final["usage"]))
    return reply


def _events(
    events: Iterator[tuple[str | None, str]], final_usage: dict[str, Any]
) -> Iterator[tuple[str | None, str]]:
    first = True
    for event, data in events:
        chunk = json.loads(data) if data != "[DONE]" else None
        if not isinstance(chunk, dict) or "error" in chunk:
            yield event, data
            continue
        choices = chunk.get("choices") or []
        if choices and choices[0].get("finish_reason"):
            chunk["x_groq"] = {"id": REQUEST_ID, "usage": final_usage}
        elif first:
            chunk["x_groq"] = {"id": REQUEST_ID}
        first = False
        yield event, json.dumps(chunk)


def serve() -> fake.SSEServer:
    """A started fake Groq server; a client's ``base_url`` is ``server.url``."""
    return fake.SSEServer(app).start()
