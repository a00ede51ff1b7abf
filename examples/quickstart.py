"""threadline quickstart: a small travel-assistant agent, traced end to end. Runs offline.

Each question becomes one trace: an AGENT root span with a RETRIEVER child (guidebook
search), a TOOL child (currency conversion, or a weather lookup that fails and is caught)
and a CHAT_MODEL child (a fake LLM that answers like the OpenAI chat API and reports its
token usage). Traces go to experiment "quickstart" in the default store
(``sqlite:///threadline.db`` in the current directory) unless THREADLINE_TRACKING_URI is set.

    python examples/quickstart.py
    threadline traces list
    threadline traces show <trace id>
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import threadline
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.pricing import ModelPrice, register_model_price

# The fake model's price (USD per million tokens), so the trace shows what a call costs;
# real models (gpt-4o, claude-sonnet-4-5 …) are priced from threadline's own table.
register_model_price("fake-gpt-mini", ModelPrice(input=0.15, output=0.60))

GUIDEBOOK = [
    {"id": "lisbon-1", "text": "Lisbon: ride tram 28 through Alfama and see Belem Tower."},
    {"id": "lisbon-2", "text": "Lisbon: pasteis de nata are best warm, around 1.30 EUR each."},
    {"id": "kyoto-1", "text": "Kyoto: visit Fushimi Inari early, before the crowds arrive."},
    {"id": "kyoto-2", "text": "Kyoto: in autumn, Eikando temple is lit up in the evening."},
    {"id": "mexico-1", "text": "Mexico City: try tacos al pastor in Roma Norte."},
    {"id": "mexico-2", "text": "Mexico City: the Anthropology Museum needs half a day."},
]
USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "JPY": 0.0067, "MXN": 0.058}
STOP_WORDS = {"the", "in", "and", "what", "is", "how", "much", "be", "this", "should", "i", "to"}
QUESTIONS = [
    "What should I see in Lisbon, and what is 200 EUR in USD?",
    "What will the weather be in Kyoto this weekend?",
    "Where should I eat in Mexico City, and how much is 500 MXN in USD?",
]


@threadline.trace(span_type=SpanType.RETRIEVER)
def search_guidebook(query: str, k: int = 2) -> list[dict[str, Any]]:
    """The ``k`` guidebook entries sharing the most words with the query."""
    words = _words(query)
    scored = [(len(words & _words(doc["text"])), doc) for doc in GUIDEBOOK]
    ranked = sorted(scored, key=lambda pair: -pair[0])[:k]
    return [{"id": doc["id"], "text": doc["text"], "score": score} for score, doc in ranked]


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower())) - STOP_WORDS


@threadline.trace(span_type=SpanType.TOOL)
def convert_currency(amount: float, currency: str, to: str = "USD") -> float:
    """Convert with fixed rates (a real tool would call an exchange-rate API)."""
    return round(amount * USD_PER_UNIT[currency] / USD_PER_UNIT[to], 2)


@threadline.trace(span_type=SpanType.TOOL)
def get_weather(city: str) -> str:
    """Always fails: this example has no network, like a weather API that is down."""
    raise ConnectionError(f"weather service unreachable while looking up {city!r}")


@threadline.trace(span_type=SpanType.CHAT_MODEL)
def chat_completion(messages: list[dict[str, str]], model: str = "fake-gpt-mini") -> dict:
    """A fake LLM with the shape of an OpenAI chat completion; records token usage."""
    notes = messages[-1]["content"].split("Notes:\n", 1)[-1]
    answer = " ".join(line.removeprefix("- ") for line in notes.splitlines())
    input_tokens = sum(len(m["content"].split()) for m in messages)
    output_tokens = len(answer.split())
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    span = threadline.get_current_active_span()
    if span is not None:
        span.set_attribute(SpanAttributeKey.MODEL, model)
        span.set_attribute(SpanAttributeKey.TOKEN_USAGE, usage)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    }


def call_tool(question: str) -> str:
    """Pick and run one tool; a failing tool is reported to the LLM, not raised."""
    try:
        if "weather" in question.lower():
            city = question.rstrip("?").split(" in ")[-1].split(" this ")[0]
            return get_weather(city)
        amount, currency = re.search(r"(\d+(?:\.\d+)?) ([A-Z]{3})", question).groups()
        return f"{amount} {currency} = {convert_currency(float(amount), currency)} USD"
    except ConnectionError as exc:
        return f"(tool failed: {exc}; answering from the guidebook only)"


@threadline.trace(span_type=SpanType.AGENT)
def travel_agent(question: str, user: str, session_id: str) -> str:
    """Retrieve, call a tool, then ask the LLM; the root span of each trace."""
    threadline.update_current_trace(
        tags={"app": "quickstart", "agent": "travel"}, session_id=session_id, user=user
    )
    documents = search_guidebook(question)
    tool_result = call_tool(question)
    notes = "\n".join(f"- {doc['text']}" for doc in documents) + f"\n- {tool_result}"
    messages = [
        {"role": "system", "content": "You are a concise travel assistant."},
        {"role": "user", "content": f"{question}\nNotes:\n{notes}"},
    ]
    response = chat_completion(messages)
    return response["choices"][0]["message"]["content"]


def main() -> None:
    experiment = threadline.set_experiment("quickstart")
    session_id = f"session-{uuid.uuid4().hex[:8]}"
    print(
        f"Logging to {threadline.get_tracking_uri()}, experiment 'quickstart' "
        f"(id {experiment.experiment_id})"
    )
    for question in QUESTIONS:
        answer = travel_agent(question, user="newcomer@example.com", session_id=session_id)
        print(f"\nQ: {question}\nA: {answer}")
        print(f"trace id: {threadline.get_last_active_trace_id()}")
    threadline.flush_trace_async_logging()


if __name__ == "__main__":
    main()
