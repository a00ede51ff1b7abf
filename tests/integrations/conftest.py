"""Fixtures for the integration tests: local fake provider servers and real clients.

The clients are the real libraries talking HTTP to servers on 127.0.0.1 that speak each
provider's wire protocol (``_fake_openai``, ``_fake_anthropic``); nothing is mocked.
Every test ends with every integration disabled, so patches never leak between tests.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integrations import _fake_anthropic, _fake_openai

# litellm fetches a price list from the internet when imported, unless told not to;
# threadline.autolog() imports it in tests that are not about litellm too.
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

API_KEY = "sk-test-SECRET-4f1c9e7a2b"  # must never appear in a trace


@pytest.fixture(autouse=True)
def _integrations_off() -> Iterator[None]:
    yield
    from threadline.integrations import registered

    for module in registered().values():
        importlib.import_module(module).INTEGRATION.autolog(disable=True, silent=True)


@pytest.fixture(scope="session")
def openai_server() -> Iterator[_fake_openai.SSEServer]:
    server = _fake_openai.serve()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def anthropic_server() -> Iterator[_fake_openai.SSEServer]:
    server = _fake_anthropic.serve()
    yield server
    server.stop()


@pytest.fixture
def openai_url(openai_server: _fake_openai.SSEServer) -> str:
    openai_server.requests.clear()
    return openai_server.url + "/v1"


@pytest.fixture
def openai_client(openai_url: str) -> Iterator[Any]:
    import openai

    client = openai.OpenAI(base_url=openai_url, api_key=API_KEY, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def anthropic_url(anthropic_server: _fake_openai.SSEServer) -> str:
    anthropic_server.requests.clear()
    return anthropic_server.url


@pytest.fixture
def anthropic_client(anthropic_url: str) -> Iterator[Any]:
    import anthropic

    client = anthropic.Anthropic(base_url=anthropic_url, api_key=API_KEY, max_retries=0)
    yield client
    client.close()


def only_span(captured: Any) -> Any:
    """The single span of the single captured trace."""
    traces = captured.traces
    assert len(traces) == 1, [t.data.spans for t in traces]
    spans = traces[0].data.spans
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def all_spans(captured: Any) -> list[Any]:
    return [span for trace in captured.traces for span in trace.data.spans]


def assert_no_secret(captured: Any) -> None:
    """The API key appears nowhere in any captured trace, serialised whole."""
    for trace in captured.traces:
        text = trace.to_json()
        assert API_KEY not in text
        assert API_KEY not in json.dumps(json.loads(text))
