"""A local server that speaks the Bedrock runtime's REST API, for tests (stdlib only).

Routes (``modelId`` URL-quoted in the path, as botocore sends it):
``POST /model/{modelId}/converse``, ``/converse-stream``, ``/invoke`` and
``/invoke-with-response-stream``. What it answers depends on the request, like a
deterministic model:

- ``modelId`` ``"error-<Code>"`` (``ValidationException``, ``ThrottlingException`` …): that
  error as AWS sends it, the code in the ``x-amzn-ErrorType`` header and ``{"message"}``
  as the body; ``"error-stream"``: a stream that sends a ``modelStreamErrorException``
  after its first text delta.
- Converse with a ``toolConfig`` and no ``toolResult`` in the last message: the text
  ``"Let me check."`` and a ``toolUse`` of the first tool with ``{"city": "Paris"}``
  (stop reason ``tool_use``); otherwise the text ``REPLY``, streamed word by word.
- Invoke: the answer in the native body of the model family named by ``modelId``
  (``anthropic.``, ``amazon.nova``, ``amazon.titan-text``, ``amazon.titan-embed``,
  ``cohere.embed``, ``meta.llama``, ``mistral.``); any other model gets ``{"result": "ok",
  "echo": <request body>}``. Token counts also go in the ``x-amzn-bedrock-*-token-count``
  headers, as Bedrock sends them.

Streams are ``application/vnd.amazon.eventstream`` bodies (``encode_message``): binary
messages of a prelude (total length, headers length, CRC32), typed headers (``:event-type``,
``:content-type``, ``:message-type``), a JSON payload and the message's CRC32, sent in
chunked transfer encoding, one flushed chunk per message.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

REPLY = "Hello! How can I help you today?"
TOOL_INPUT = {"city": "Paris"}
INPUT_TOKENS = 10
CACHE_READ_TOKENS = 5
CACHE_WRITE_TOKENS = 2
EMBEDDING = [0.125, -0.5, 0.25, 1.0]
REQUEST_ID = "req-fake-0001"

_ERROR_STATUS = {
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ValidationException": 400,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ModelTimeoutException": 408,
}


def pieces() -> list[str]:
    """``REPLY`` split as it is streamed, one output token per piece."""
    words = REPLY.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


# --- the event-stream wire format ---------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    key, text = name.encode(), value.encode()
    return struct.pack("!B", len(key)) + key + b"\x07" + struct.pack("!H", len(text)) + text


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude and its CRC, string headers, payload, message CRC."""
    encoded = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack("!II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {
        ":event-type": kind,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, json.dumps(payload).encode())


def exception(kind: str, message: str) -> bytes:
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, json.dumps({"message": message}).encode())


def chunk(payload: dict[str, Any]) -> bytes:
    """An ``invoke-with-response-stream`` event: the model's JSON chunk, base64 in ``bytes``."""
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    return event("chunk", {"bytes": data})


# --- the server ---------------------------------------------------------------------------


class Reply:
    """What a route answers: a JSON body, or event-stream messages."""

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        messages: Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.messages = messages
        self.headers = headers or {}


class BedrockServer:
    """The fake on 127.0.0.1 in a thread; ``requests`` holds (path, headers, raw body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
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

    def start(self) -> BedrockServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    owner: BedrockServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client dropped an abandoned stream

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.owner.requests.append((self.path, headers, raw))
        reply = app(self.path, raw)
        if reply.messages is None:
            self._send_json(reply)
        else:
            self._send_stream(reply)

    def _send_json(self, reply: Reply) -> None:
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", REQUEST_ID)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", REQUEST_ID)
        self.end_headers()
        assert reply.messages is not None
        for message in reply.messages:
            self._chunk(message)
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


# --- the Bedrock runtime API --------------------------------------------------------------


def app(path: str, raw: bytes) -> Reply:
    """Answer one Bedrock runtime request."""
    parts = path.split("?")[0].split("/")
    if len(parts) != 4 or parts[1] != "model":
        return _error("ResourceNotFoundException", f"Unknown operation: POST {path}")
    model_id, action = unquote(parts[2]), parts[3]
    if model_id.startswith("error-") and model_id != "error-stream":
        return _error(model_id.removeprefix("error-"))
    body = json.loads(raw) if raw else {}
    if action == "converse":
        return Reply(body=_converse(body))
    if action == "converse-stream":
        return Reply(messages=_converse_events(body, model_id))
    if action == "invoke":
        return _invoke(model_id, body)
    if action == "invoke-with-response-stream":
        return Reply(messages=_invoke_chunks(model_id, body))
    return _error("ResourceNotFoundException", f"Unknown operation: POST {path}")


def _error(code: str, message: str | None = None) -> Reply:
    text = message or f"Simulated {code} from the fake Bedrock server."
    headers = {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return Reply(_ERROR_STATUS.get(code, 400), {"message": text}, headers=headers)


def _wants_tool(body: dict[str, Any]) -> bool:
    if not (body.get("toolConfig") or {}).get("tools"):
        return False
    last = (body.get("messages") or [{}])[-1]
    return not any("toolResult" in block for block in last.get("content") or [])


def _tool_name(body: dict[str, Any]) -> str:
    return str(body["toolConfig"]["tools"][0]["toolSpec"]["name"])


def converse_usage(output_tokens: int) -> dict[str, int]:
    total = INPUT_TOKENS + CACHE_READ_TOKENS + CACHE_WRITE_TOKENS + output_tokens
    return {
        "inputTokens": INPUT_TOKENS,
        "outputTokens": output_tokens,
        "totalTokens": total,
        "cacheReadInputTokens": CACHE_READ_TOKENS,
        "cacheWriteInputTokens": CACHE_WRITE_TOKENS,
    }


def _converse(body: dict[str, Any]) -> dict[str, Any]:
    if _wants_tool(body):
        tool = {"toolUseId": "tooluse_fake1", "name": _tool_name(body), "input": TOOL_INPUT}
        content: list[dict[str, Any]] = [{"text": "Let me check."}, {"toolUse": tool}]
        stop, tokens = "tool_use", 5
    else:
        content, stop, tokens = [{"text": REPLY}], "end_turn", len(pieces())
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": converse_usage(tokens),
        "metrics": {"latencyMs": 42},
    }


def _converse_events(body: dict[str, Any], model_id: str) -> Iterator[bytes]:
    """ConverseStream's events (a tool call after the text when one is wanted)."""
    yield event("messageStart", {"role": "assistant"})
    for n, piece in enumerate(pieces()):
        yield event("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": 0})
        if model_id == "error-stream" and n == 0:
            yield exception("modelStreamErrorException", "The model stopped unexpectedly.")
            return
    yield event("contentBlockStop", {"contentBlockIndex": 0})
    stop, tokens = "end_turn", len(pieces())
    if _wants_tool(body):
        start = {"toolUse": {"toolUseId": "tooluse_fake1", "name": _tool_name(body)}}
        yield event("contentBlockStart", {"start": start, "contentBlockIndex": 1})
        text = json.dumps(TOOL_INPUT)
        for part in (text[:5], text[5:]):
            delta = {"delta": {"toolUse": {"input": part}}, "contentBlockIndex": 1}
            yield event("contentBlockDelta", delta)
        yield event("contentBlockStop", {"contentBlockIndex": 1})
        stop, tokens = "tool_use", tokens + 5
    yield event("messageStop", {"stopReason": stop})
    metadata = {"usage": converse_usage(tokens), "metrics": {"latencyMs": 42}}
    yield event("metadata", metadata)


# --- invoke_model: each family's native body ----------------------------------------------


def _family(model_id: str) -> str:
    for prefix in ("us.", "eu.", "apac.", "global."):
        model_id = model_id.removeprefix(prefix)
    for family in (
        "anthropic.",
        "amazon.nova",
        "amazon.titan-text",
        "amazon.titan-embed",
        "cohere.embed",
        "meta.llama",
        "mistral.",
    ):
        if model_id.startswith(family):
            return family
    return "other"


def invoke_body(model_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, int]:
    """The model's JSON answer, its input and output token counts."""
    family, out_tokens = _family(model_id), len(pieces())
    if family == "anthropic.":
        usage = {"input_tokens": INPUT_TOKENS, "output_tokens": out_tokens}
        content = [{"type": "text", "text": REPLY}]
        message = {"id": "msg_bdrk_1", "type": "message", "role": "assistant", "model": model_id}
        return (
            {**message, "content": content, "stop_reason": "end_turn", "usage": usage},
            INPUT_TOKENS,
            out_tokens,
        )
    if family == "amazon.nova":
        return _converse(body), INPUT_TOKENS, out_tokens
    if family == "amazon.titan-text":
        result = {"tokenCount": out_tokens, "outputText": REPLY, "completionReason": "FINISH"}
        return {"inputTextTokenCount": INPUT_TOKENS, "results": [result]}, INPUT_TOKENS, out_tokens
    if family == "amazon.titan-embed":
        return {"embedding": EMBEDDING, "inputTextTokenCount": 3}, 3, 0
    if family == "cohere.embed":
        texts = body.get("texts") or []
        embeddings = [EMBEDDING for _ in texts]
        answer = {"id": "emb-1", "embeddings": embeddings, "response_type": "embeddings_floats"}
        return {**answer, "texts": texts}, 4, 0
    if family == "meta.llama":
        answer = {"generation": REPLY, "prompt_token_count": INPUT_TOKENS}
        return (
            {**answer, "generation_token_count": out_tokens, "stop_reason": "stop"},
            INPUT_TOKENS,
            out_tokens,
        )
    if family == "mistral.":
        message = {"role": "assistant", "content": REPLY}
        choice = {"index": 0, "message": message, "stop_reason": "stop"}
        return (
            {"id": "cmpl-1", "object": "chat.completion", "choices": [choice]},
            INPUT_TOKENS,
            out_tokens,
        )
    return {"result": "ok", "echo": body}, 7, 1


def _invoke(model_id: str, body: dict[str, Any]) -> Reply:
    answer, inp, out = invoke_body(model_id, body)
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": str(inp),
        "X-Amzn-Bedrock-Output-Token-Count": str(out),
        "X-Amzn-Bedrock-Invocation-Latency": "42",
    }
    return Reply(body=answer, headers=headers)


def _metrics(out_tokens: int) -> dict[str, Any]:
    return {
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": INPUT_TOKENS,
            "outputTokenCount": out_tokens,
            "invocationLatency": 42,
            "firstByteLatency": 7,
        }
    }


def _invoke_chunks(model_id: str, body: dict[str, Any]) -> Iterator[bytes]:
    family, parts = _family(model_id), pieces()
    if model_id == "error-stream":
        yield chunk({"generation": parts[0]})
        yield exception("modelStreamErrorException", "The model stopped unexpectedly.")
        return
    if family == "anthropic.":
        yield from _anthropic_chunks(model_id, parts)
    elif family == "amazon.titan-text":
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            payload = {
                "outputText": part,
                "index": 0,
                "completionReason": "FINISH" if last else None,
            }
            yield chunk({**payload, **(_metrics(len(parts)) if last else {})})
    elif family == "amazon.nova":
        events = [{"messageStart": {"role": "assistant"}}]
        for part in parts:
            events.append({"contentBlockDelta": {"delta": {"text": part}, "contentBlockIndex": 0}})
        events.append({"messageStop": {"stopReason": "end_turn"}})
        usage = {"inputTokens": INPUT_TOKENS, "outputTokens": len(parts)}
        for payload in events:
            yield chunk(payload)
        yield chunk({"metadata": {"usage": usage}, **_metrics(len(parts))})
    else:  # meta.llama and anything else: Llama's chunks
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            payload = {"generation": part, "stop_reason": "stop" if last else None}
            yield chunk({**payload, **(_metrics(len(parts)) if last else {})})


def _anthropic_chunks(model_id: str, parts: list[str]) -> Iterator[bytes]:
    message = {"id": "msg_bdrk_1", "type": "message", "role": "assistant", "model": model_id}
    start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 10}}
    yield chunk({"type": "message_start", "message": start})
    block = {"type": "text", "text": ""}
    yield chunk({"type": "content_block_start", "index": 0, "content_block": block})
    for part in parts:
        delta = {"type": "text_delta", "text": part}
        yield chunk({"type": "content_block_delta", "index": 0, "delta": delta})
    yield chunk({"type": "content_block_stop", "index": 0})
    delta = {"stop_reason": "end_turn", "stop_sequence": None}
    yield chunk({"type": "message_delta", "delta": delta, "usage": {"output_tokens": len(parts)}})
    yield chunk({"type": "message_stop", **_metrics(len(parts))})


def serve() -> BedrockServer:
    """A started fake; pass ``server.url`` as the client's ``endpoint_url``."""
    return BedrockServer().start()
