"""LLM cost: the price table, name matching, overrides, and cost on spans and traces (SDK path).

The OTLP ingest path is tested in ``tests/server/test_span_payload_api.py``, the display in
the browser tests under ``tests/ui/``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import threadline
from threadline.cli import main
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.pricing import (
    ModelPrice,
    compute_cost,
    cost_attribute,
    get_model_price,
    register_model_price,
)
from threadline.testing import capture_traces
from threadline.tracing import _runtime, _safety


def test_a_known_model_costs_its_listed_price() -> None:
    assert compute_cost("gpt-4o", input_tokens=1234, output_tokens=567) == {
        "input_cost": 0.003085,  # 1,234 x $2.50 per million
        "output_cost": 0.00567,  # 567 x $10.00 per million
        "total_cost": 0.008755,
    }
    assert compute_cost("claude-sonnet-4-5", input_tokens=0, output_tokens=1_000_000) == {
        "input_cost": 0.0,
        "output_cost": 15.0,
        "total_cost": 15.0,
    }
    assert compute_cost("text-embedding-3-small", input_tokens=500_000) == {
        "input_cost": 0.01,
        "output_cost": 0.0,
        "total_cost": 0.01,
    }


def test_cached_and_cache_write_tokens_are_priced_apart() -> None:
    # 1,000 prompt tokens of which 600 were cache reads: 400 x $2.50 + 600 x $1.25
    cost = compute_cost("gpt-4o", input_tokens=1000, output_tokens=0, cached_input_tokens=600)
    assert cost is not None and cost["input_cost"] == 0.00175
    # Anthropic: 500 plain x $0.80, 400 read x $0.08, 100 written x $1.00
    cost = compute_cost(
        "claude-3-5-haiku",
        input_tokens=1000,
        output_tokens=0,
        cached_input_tokens=400,
        cache_creation_input_tokens=100,
    )
    assert cost is not None and cost["input_cost"] == 0.000532
    # no separate cached price listed: cached tokens cost what other input tokens cost
    cost = compute_cost("gpt-4", input_tokens=1000, output_tokens=0, cached_input_tokens=1000)
    assert cost is not None and cost["input_cost"] == 0.03
    # nonsense counts are clamped, never negative
    cost = compute_cost("gpt-4o", input_tokens=10, output_tokens=0, cached_input_tokens=99)
    assert cost is not None and cost["input_cost"] == 0.0000125


def test_long_prompts_use_the_long_context_price() -> None:
    short = compute_cost("gemini-2.5-pro", input_tokens=200_000, output_tokens=1000)
    long = compute_cost("gemini-2.5-pro", input_tokens=200_001, output_tokens=1000)
    assert short == {"input_cost": 0.25, "output_cost": 0.01, "total_cost": 0.26}
    assert long is not None and long["input_cost"] == 0.5000025 and long["output_cost"] == 0.015


def test_dated_names_match_their_model_and_exact_names_win() -> None:
    assert get_model_price("gpt-4o-mini-2024-07-18") == get_model_price("gpt-4o-mini")
    assert get_model_price("claude-3-5-haiku-20241022") == get_model_price("claude-3-5-haiku")
    assert get_model_price("models/gemini-2.5-flash") == get_model_price("gemini-2.5-flash")
    groq = get_model_price("llama-3.3-70b-versatile")
    assert groq is not None  # a prefix naming the span's own provider (as LiteLLM writes it):
    assert get_model_price("groq/llama-3.3-70b-versatile", provider="groq") == groq
    assert get_model_price("groq/llama-3.3-70b-versatile") is None  # ... only for that provider
    cost = compute_cost("gpt-4o-mini-2024-07-18", input_tokens=1000, output_tokens=500)
    assert cost == {"input_cost": 0.00015, "output_cost": 0.0003, "total_cost": 0.00045}
    first_snapshot = get_model_price("gpt-4o-2024-05-13")
    assert first_snapshot is not None and (first_snapshot.input, first_snapshot.output) == (5, 15)
    later = get_model_price("gpt-4o-2024-11-20")
    assert later is not None and later.input == 2.5


def test_unknown_models_have_no_cost() -> None:
    assert compute_cost("my-private-model", input_tokens=10, output_tokens=10) is None
    assert get_model_price("o1-mini-2024-09-12") is None  # not "o1": no guessing by prefix
    assert get_model_price("mistral-large-latest") is None  # moving alias
    assert get_model_price("gpt-4o-mini-0718") is None
    assert get_model_price("") is None
    # a name other hosts share at other prices matches only for its provider
    assert get_model_price("openai/gpt-oss-120b") is None
    assert get_model_price("openai/gpt-oss-120b", provider="Groq") == ModelPrice(0.15, 0.6, 0.075)


def test_registered_prices_win_and_can_be_removed() -> None:
    register_model_price("gpt-4o", ModelPrice(input=1.0, output=2.0))
    register_model_price("my-model", ModelPrice(input=3.0, output=4.0, cached_input=0.5))
    register_model_price("llama-3.3-70b", ModelPrice(0.1, 0.1), provider="my-host")
    try:
        assert compute_cost("gpt-4o-2024-08-06", input_tokens=1000, output_tokens=1000) == {
            "input_cost": 0.001,
            "output_cost": 0.002,
            "total_cost": 0.003,
        }
        cost = compute_cost(
            "my-model", input_tokens=1000, output_tokens=0, cached_input_tokens=1000
        )
        assert cost is not None and cost["input_cost"] == 0.0005
        assert get_model_price("llama-3.3-70b") is None
        assert get_model_price("llama-3.3-70b", provider="MY-HOST") == ModelPrice(0.1, 0.1)
    finally:
        register_model_price("gpt-4o", None)
        register_model_price("my-model", None)
        register_model_price("llama-3.3-70b", None, provider="my-host")
    assert get_model_price("gpt-4o") == ModelPrice(2.5, 10.0, 1.25)
    assert get_model_price("my-model") is None


def test_bad_prices_are_refused_at_once() -> None:
    with pytest.raises(InvalidArgumentError, match="input"):
        ModelPrice(input=-1.0, output=1.0)
    with pytest.raises(InvalidArgumentError, match="output"):
        ModelPrice(input=1.0, output=math.nan)
    with pytest.raises(InvalidArgumentError, match="long_context"):
        ModelPrice(1.0, 1.0, long_context_tokens=1000)
    with pytest.raises(InvalidArgumentError, match="ModelPrice"):
        register_model_price("x", {"input": 1.0, "output": 1.0})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="model"):
        register_model_price("", ModelPrice(1.0, 1.0))


def test_cost_attribute_reads_span_attributes_and_never_raises() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500}
    attributes = {"threadline.model": "gpt-4o-mini", "threadline.token_usage": usage}
    assert cost_attribute(attributes) == {
        "input_cost": 0.00015,
        "output_cost": 0.0003,
        "total_cost": 0.00045,
    }
    cached = {**attributes, "threadline.token_usage.cached_input_tokens": 1000}
    assert cost_attribute(cached) == {
        "input_cost": 0.000075,
        "output_cost": 0.0003,
        "total_cost": 0.000375,
    }
    given = {**attributes, "threadline.llm.cost": {"total_cost": 9.0}}
    assert cost_attribute(given) is None  # a cost already there is kept, not recomputed
    for odd in (
        None,
        {},
        {"threadline.model": "gpt-4o-mini"},
        {"threadline.model": 42, "threadline.token_usage": usage},
        {"threadline.model": "gpt-4o-mini", "threadline.token_usage": "many"},
        {"threadline.model": "gpt-4o-mini", "threadline.token_usage": {"input_tokens": "x"}},
        {"threadline.model": "gpt-4o-mini", "threadline.token_usage": {"input_tokens": True}},
        {"threadline.model": "gpt-4o-mini", "threadline.token_usage": {"output_tokens": -5}},
        {"threadline.model": "nobody-knows", "threadline.token_usage": usage},
    ):
        assert cost_attribute(odd) is None, odd


# --- the SDK path: spans priced when they become rows; traces summed by the store ----------


@threadline.trace(span_type=SpanType.CHAT_MODEL)
def chat(model: str, prompt_tokens: int, completion_tokens: int) -> str:
    span = threadline.get_current_active_span()
    assert span is not None
    span.set_attribute("threadline.model", model)
    usage = {"input_tokens": prompt_tokens, "output_tokens": completion_tokens}
    span.set_attribute("threadline.token_usage", usage)
    return "ok"


@threadline.trace(span_type=SpanType.AGENT)
def agent() -> str:
    chat("gpt-4o-mini-2024-07-18", 1000, 500)  # $0.00045
    chat("claude-3-5-haiku-20241022", 2000, 100)  # $0.002
    chat("my-private-model", 10, 10)  # unknown: no cost
    return "done"


@pytest.fixture
def clean_sdk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("THREADLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    _safety.raise_internal_errors(True)
    yield
    _safety.raise_internal_errors(False)
    _runtime.reset()
    from threadline.store import reset_store_cache

    reset_store_cache()


def test_spans_get_their_cost_when_exported(clean_sdk: None) -> None:
    register_model_price("my-private-model", ModelPrice(input=100.0, output=100.0))
    try:
        with capture_traces() as captured:
            agent()
            with threadline.start_span("plain") as plain:
                plain.set_attribute("threadline.model", "gpt-4o")  # no token usage: no cost
    finally:
        register_model_price("my-private-model", None)
    spans = {
        (s.name, s.get_attribute("threadline.model")): s for s in captured.traces[0].data.spans
    }
    costs = {key[1]: span.get_attribute("threadline.llm.cost") for key, span in spans.items()}
    assert costs == {
        None: None,  # the agent
        "gpt-4o-mini-2024-07-18": {
            "input_cost": 0.00015,
            "output_cost": 0.0003,
            "total_cost": 0.00045,
        },
        "claude-3-5-haiku-20241022": {
            "input_cost": 0.0016,
            "output_cost": 0.0004,
            "total_cost": 0.002,
        },
        "my-private-model": {"input_cost": 0.001, "output_cost": 0.001, "total_cost": 0.002},
    }
    assert captured.traces[1].data.spans[0].get_attribute("threadline.llm.cost") is None
    assert "threadline.llm.cost" not in plain.attributes  # the live span is left as it was


def test_a_trace_sums_its_costs_and_the_cli_prints_them(
    clean_sdk: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'traces.db'}"
    threadline.set_tracking_uri(uri)
    agent()
    trace_id = threadline.get_last_active_trace_id()
    assert trace_id is not None
    trace = threadline.get_trace(trace_id)
    assert trace is not None
    assert json.loads(trace.info.trace_metadata["cost"]) == {
        "input_cost": 0.00175,
        "output_cost": 0.0007,
        "total_cost": 0.00245,
    }
    assert main(["traces", "show", trace_id, "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    header, tree = out.split("\nSpans (4):\n")
    assert "Cost       $0.00245" in header
    assert '"cost"' not in header  # not repeated among the metadata
    chats = [line for line in tree.splitlines() if "chat  [CHAT_MODEL]" in line]
    assert chats[0].endswith("tokens: in=1000 out=500  cost: $0.00045")
    assert chats[1].endswith("cost: $0.002")
    assert "cost:" not in chats[2]  # the private model has no price
