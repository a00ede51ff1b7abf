"""A local server that speaks OpenAI's HTTP API, for tests and benchmarks (stdlib only).

Routes: ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/responses``. What it answers depends on the request, like a deterministic model:

- ``model`` ``"error-<status>"``: that status with OpenAI's error body; ``"error-stream"``:
  a stream that fails after two chunks (an ``error`` payload, as the API sends).
- ``tools`` given and the last message is not a tool result: a call of the first tool
  with ``{"city": "Paris"}``; a JSON schema response format given (``response_format``,
  or ``text.format`` for the Responses API): the JSON text ``{"answer": "42"}``.
- otherwise the text ``REPLY``; streamed word by word, or in ``max_tokens`` chunks when set.

Streams are server-sent events in chunked transfer encoding, each event flushed as it is
written: ``data: {chunk}`` lines ending with ``data: [DONE]`` for chat and completions (a
usage-only chunk first when ``stream_options.include_usage`` is set), named events for
the Responses API. ``SSEServer`` is the transport, shared with the Anthropic fake.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLY = "Hello! How can I help you today?"
TOOL_ARGUMENTS = '{"city": "Paris"}'
STRUCTURED = '{"answer": "42"}'
CREATED = 1_700_000_000
RESPONSE_MODEL_SUFFIX = "-2024-07-18"
PROMPT_TOKENS = 12
CACHED_TOKENS = 4
REASONING_TOKENS = 2
EMBEDDING_DIM = 8

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


class Reply:
    """What a route answers: a JSON body, a stream of server-sent events, or a stream of
    newline-delimited JSON ``lines`` (Ollama's streaming)."""

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        events: Iterator[tuple[str | None, str]] | None = None,
        headers: dict[str, str] | None = None,
        lines: Iterator[Any] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.events = events
        self.headers = headers or {}
        self.lines = lines


class SSEServer:
    """An HTTP/1.1 server on 127.0.0.1 in a thread; ``app(path, headers, body) -> Reply``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SSEServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SSEServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def last_body(self) -> Any:
        return self.requests[-1][2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small writes go out at once, as from a real server
    owner: SSEServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client dropped the connection (an abandoned stream, a closed client)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.owner.requests.append((self.path, headers, body))
        reply = self.owner.app(self.path, headers, body)
        if reply.lines is not None:
            self._send_lines(reply)
        elif reply.events is None:
            self._send_json(reply)
        else:
            self._send_events(reply)

    def _send_json(self, reply: Reply) -> None:
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_events(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        assert reply.events is not None
        for event, data in reply.events:
            text = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
            self._chunk(text.encode())
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send_lines(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        assert reply.lines is not None
        for line in reply.lines:
            self._chunk(json.dumps(line).encode() + b"\n")
        self._chunk(b"")


# --- the OpenAI API -------------------------------------------------------------------------


def app(path: str, headers: dict[str, str], body: Any) -> Reply:
    """Answer one OpenAI API request."""
    model = str(body.get("model", ""))
    if model.startswith("error-") and model != "error-stream":
        return _error(int(model.removeprefix("error-")))
    # By suffix: Azure puts ``/openai/deployments/<name>`` in front.
    routes = (
        ("/chat/completions", _chat),
        ("/completions", _completion),
        ("/embeddings", _embeddings),
        ("/responses", _responses),
    )
    bare = path.split("?")[0]
    route = next((handler for suffix, handler in routes if bare.endswith(suffix)), None)
    if route is None:
        return _error(404, f"Unknown request URL: POST {path}.")
    return route(body)


def _error(status: int, message: str | None = None) -> Reply:
    kind, code = _ERROR_TYPES.get(status, ("server_error", None))
    text = message or f"Simulated error {status} from the fake OpenAI server."
    error = {"message": text, "type": kind, "param": None, "code": code}
    return Reply(status, {"error": error}, headers={"x-request-id": "req_fake"})


def usage(completion_tokens: int) -> dict[str, Any]:
    """The usage block the fake reports for a reply of ``completion_tokens`` tokens."""
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": REASONING_TOKENS,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def pieces(body: dict[str, Any]) -> list[str]:
    """The reply text split into the chunks a stream sends."""
    count = body.get("max_tokens") or body.get("max_completion_tokens")
    if count:
        return [f"w{i} " for i in range(int(count))]
    words = REPLY.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _wants_tool(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(body.get("tools")) and not (messages and messages[-1].get("role") == "tool")


def _chat(body: dict[str, Any]) -> Reply:
    model = body["model"] + RESPONSE_MODEL_SUFFIX
    if body.get("stream"):
        return Reply(events=_chat_events(body, model))
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if _wants_tool(body):
        name = body["tools"][0]["function"]["name"]
        message["tool_calls"] = [
            {
                "id": "call_fake1",
                "type": "function",
                "function": {"name": name, "arguments": TOOL_ARGUMENTS},
            }
        ]
        finish, tokens = "tool_calls", 9
    else:
        message["content"] = STRUCTURED if body.get("response_format") else REPLY
        finish, tokens = "stop", len(pieces(body))
    message["annotations"] = []
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return Reply(
        body={
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [choice],
            "usage": usage(tokens),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
    )


def _chat_events(body: dict[str, Any], model: str) -> Iterator[tuple[str | None, str]]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, str]:
        data: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            data["usage"] = None
        return None, json.dumps(data)

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    if body["model"] == "error-stream":
        yield chunk({"content": "Hel"})
        yield (
            None,
            json.dumps(
                {
                    "error": {
                        "message": "The server had an error.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
            ),
        )
        return
    if _wants_tool(body):
        name = body["tools"][0]["function"]["name"]
        first = {"index": 0, "id": "call_fake1", "type": "function"}
        yield chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]})
        for part in ('{"city"', ': "Par', 'is"}'):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
        yield chunk({}, "tool_calls")
        tokens = 9
    else:
        parts = pieces(body)
        for part in parts:
            yield chunk({"content": part})
        yield chunk({}, "stop")
        tokens = len(parts)
    if include_usage:
        yield (
            None,
            json.dumps(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [],
                    "usage": usage(tokens),
                }
            ),
        )
    yield None, "[DONE]"


def _completion(body: dict[str, Any]) -> Reply:
    model = body["model"]
    parts = pieces(body)
    if not body.get("stream"):
        choice = {"text": "".join(parts), "index": 0, "logprobs": None, "finish_reason": "stop"}
        return Reply(
            body={
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": CREATED,
                "model": model,
                "choices": [choice],
                "usage": usage(len(parts)),
            }
        )
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def events() -> Iterator[tuple[str | None, str]]:
        for i, part in enumerate(parts):
            finish = "stop" if i == len(parts) - 1 else None
            choice = {"text": part, "index": 0, "logprobs": None, "finish_reason": finish}
            data: dict[str, Any] = {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": CREATED,
                "model": model,
                "choices": [choice],
            }
            if include_usage:
                data["usage"] = None
            yield None, json.dumps(data)
        if include_usage:
            data = {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": CREATED,
                "model": model,
                "choices": [],
                "usage": usage(len(parts)),
            }
            yield None, json.dumps(data)
        yield None, "[DONE]"

    return Reply(events=events())


def embedding_vector(index: int) -> list[float]:
    """The vector the fake returns for input number ``index`` (exact in float32)."""
    return [round((index + 1) * 0.125 + d * 0.25, 3) for d in range(EMBEDDING_DIM)]


def _embeddings(body: dict[str, Any]) -> Reply:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for i in range(len(inputs)):
        vector: Any = embedding_vector(i)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    tokens = 3 * len(inputs)
    return Reply(
        body={
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _response_usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
        "total_tokens": PROMPT_TOKENS + output_tokens,
    }


def _response(body: dict[str, Any], status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"] + RESPONSE_MODEL_SUFFIX,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    }


def _response_wants_tool(body: dict[str, Any]) -> bool:
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else {}
    return bool(body.get("tools")) and last.get("type") != "function_call_output"


def _responses(body: dict[str, Any]) -> Reply:
    if _response_wants_tool(body):
        item = {
            "type": "function_call",
            "id": "fc_fake1",
            "call_id": "call_fake1",
            "name": body["tools"][0]["name"],
            "arguments": TOOL_ARGUMENTS,
            "status": "completed",
        }
        parts: list[str] = []
        tokens = 9
    else:
        parts = pieces({"max_tokens": body.get("max_output_tokens")})
        if ((body.get("text") or {}).get("format") or {}).get("type") == "json_schema":
            parts = [STRUCTURED]
        text = "".join(parts)
        part = {"type": "output_text", "text": text, "annotations": []}
        item = {
            "type": "message",
            "id": "msg_fake1",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
        tokens = len(parts)
    final = _response(body, "completed", [item], _response_usage(tokens))
    if not body.get("stream"):
        return Reply(body=final)
    return Reply(events=_response_events(body, item, parts, final))


def _response_events(
    body: dict[str, Any], item: dict[str, Any], parts: list[str], final: dict[str, Any]
) -> Iterator[tuple[str | None, str]]:
    seq = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> tuple[str, str]:
        return kind, json.dumps({"type": kind, "sequence_number": next(seq), **fields})

    started = _response(body, "in_progress", [], None)
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    if item["type"] == "message":
        empty = {**item, "status": "in_progress", "content": []}
        yield event("response.output_item.added", output_index=0, item=empty)
        ids = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        yield event(
            "response.content_part.added",
            **ids,
            part={"type": "output_text", "text": "", "annotations": []},
        )
        for part in parts:
            yield event("response.output_text.delta", **ids, delta=part, logprobs=[])
        text = "".join(parts)
        yield event("response.output_text.done", **ids, text=text, logprobs=[])
        yield event("response.content_part.done", **ids, part=item["content"][0])
    else:
        empty = {**item, "arguments": "", "status": "in_progress"}
        yield event("response.output_item.added", output_index=0, item=empty)
        yield event(
            "response.function_call_arguments.delta",
            item_id=item["id"],
            output_index=0,
            delta=item["arguments"],
        )
        yield event(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=0,
            arguments=item["arguments"],
        )
    yield event("response.output_item.done", output_index=0, item=item)
    yield event("response.completed", response=final)


def serve() -> SSEServer:
    """A started fake OpenAI server; its API base URL is ``server.url + "/v1"``."""
    return SSEServer(app).start()
