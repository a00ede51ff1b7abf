"""``threadline.autolog()``, the integration registry and the shared base they run on.

The base is exercised on a tiny made-up library (``fakellm``) as well as on the real
openai and anthropic packages, so that what every future integration inherits is tested
apart from any one provider.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import types
from importlib.machinery import ModuleSpec
from typing import Any

import pytest

import threadline
import threadline.integrations as integrations
from tests.integrations.conftest import all_spans, only_span
from threadline.entities.keys import SpanAttributeKey
from threadline.errors import InvalidArgumentError
from threadline.integrations._base import Integration, Target, parse_version
from threadline.integrations._llm_call import LLMCall, Request, request_inputs
from threadline.integrations._streams import AsyncStreamProxy, StreamProxy
from threadline.tracing import _safety

# --- a made-up library and its integration ------------------------------------------------


class FakeStream:
    """A library stream: iterable, closable, with a public attribute."""

    def __init__(self, words: list[str]) -> None:
        self._words = iter(words)
        self.response = "http-response"
        self.closed = False

    def __iter__(self) -> FakeStream:
        return self

    def __next__(self) -> str:
        return next(self._words)

    def close(self) -> None:
        self.closed = True


class FakeAsyncStream:
    def __init__(self, words: list[str]) -> None:
        self._words = iter(words)

    def __aiter__(self) -> FakeAsyncStream:
        return self

    async def __anext__(self) -> str:
        try:
            return next(self._words)
        except StopIteration:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        pass


class Response(dict):
    """A pydantic-like response (``model_dump``)."""

    def model_dump(self, warnings: bool = True) -> dict[str, Any]:
        return dict(self)


class Client:
    def complete(self, *, prompt: str, stream: bool = False, fail: bool = False) -> Any:
        if fail:
            raise ConnectionError("fake network down")
        words = ["usage:3", *prompt.split()]
        return FakeStream(words) if stream else Response(text=prompt.upper(), tokens=3)

    def complete_twice(self, *, prompt: str) -> Any:
        """A library method that calls another patched method of the same library."""
        self.complete(prompt=prompt)
        return self.complete(prompt=prompt)


class AsyncClient:
    async def complete(self, *, prompt: str, stream: bool = False) -> Any:
        words = ["usage:3", *prompt.split()]
        return FakeAsyncStream(words) if stream else Response(text=prompt.upper(), tokens=3)


def _start(request: Request, span: Any) -> None:
    span.set_inputs(request_inputs(request.kwargs))
    request.hide_usage = True


def _record(span: Any, request: Request, out: dict[str, Any]) -> None:
    span.set_attribute(
        SpanAttributeKey.TOKEN_USAGE, {"input_tokens": out["tokens"], "output_tokens": 1}
    )


class Words:
    """Accumulator: hides the ``usage:N`` item, joins the rest."""

    def __init__(self, request: Request, inner: Any) -> None:
        self.words: list[str] = []
        self.hide = request.hide_usage

    def add(self, item: str) -> bool:
        if item.startswith("usage:"):
            return not self.hide
        self.words.append(item)
        return True

    def finish(self, span: Any) -> Any:
        return {"text": " ".join(self.words)}


def _fake_library() -> types.ModuleType:
    module = types.ModuleType("fakellm")
    module.__spec__ = ModuleSpec("fakellm", None)
    module.__version__ = "2.1.0"
    module.Client = Client
    module.AsyncClient = AsyncClient
    return module


def _targets(lib: types.ModuleType) -> list[Target]:
    def is_stream(result: Any) -> bool:
        return isinstance(result, (FakeStream, FakeAsyncStream))

    def call(proxy: Any) -> LLMCall:
        return LLMCall("fakellm.complete", "LLM", _start, _record, is_stream, Words, proxy)

    return [
        Target(lib.Client, "complete", "sync", call(StreamProxy)),
        Target(lib.Client, "complete_twice", "sync", call(StreamProxy)),
        Target(lib.AsyncClient, "complete", "async", call(AsyncStreamProxy)),
    ]


@pytest.fixture
def fakellm(monkeypatch):
    """``fakellm`` importable, its integration registered; yields the Integration."""
    monkeypatch.setitem(sys.modules, "fakellm", _fake_library())
    integration = Integration(
        name="fakellm", distribution="fakellm", minimum_version="2.0", targets=_targets
    )
    module = types.ModuleType("fakellm_integration")
    module.INTEGRATION = integration
    monkeypatch.setitem(sys.modules, "fakellm_integration", module)
    monkeypatch.setattr(integrations, "_REGISTRY", dict(integrations._REGISTRY))
    originals = dict(vars(Client)), dict(vars(AsyncClient))
    integrations.register("fakellm", "fakellm_integration")
    yield integration
    integration.autolog(disable=True)
    assert (dict(vars(Client)), dict(vars(AsyncClient))) == originals


# --- threadline.autolog() and the registry --------------------------------------------------


def test_facade_resolves_autolog_and_modules():
    assert threadline.autolog is integrations.autolog
    assert threadline.openai.autolog is threadline.integrations.openai.autolog
    assert threadline.anthropic.INTEGRATION.name == "anthropic"
    assert set(integrations.registered()) >= {"openai", "anthropic"}


def test_autolog_turns_on_every_installed_library(captured, openai_client, anthropic_client):
    import anthropic
    import openai

    threadline.autolog()
    assert threadline.openai.INTEGRATION.enabled and threadline.anthropic.INTEGRATION.enabled
    openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    anthropic_client.messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert [s.name for s in all_spans(captured)] == [
        "openai.chat.completions.create",
        "anthropic.messages.create",
    ]

    threadline.autolog(disable=True)
    assert not threadline.openai.INTEGRATION.enabled
    assert not threadline.anthropic.INTEGRATION.enabled
    assert isinstance(openai.OpenAI, type) and isinstance(anthropic.Anthropic, type)


def test_autolog_skips_libraries_that_are_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "anthropic", None)
    threadline.autolog()
    assert threadline.openai.INTEGRATION.enabled
    assert not threadline.anthropic.INTEGRATION.enabled


def test_autolog_skips_too_old_versions_with_a_warning(monkeypatch, caplog):
    import anthropic

    monkeypatch.setattr(anthropic, "__version__", "0.3.0")
    with caplog.at_level(logging.WARNING, logger="threadline"):
        threadline.autolog()
    assert threadline.openai.INTEGRATION.enabled
    assert not threadline.anthropic.INTEGRATION.enabled
    assert "supports anthropic 0.40.0 or newer; 0.3.0 is installed" in caplog.text
    assert 'pip install "anthropic>=0.40.0"' in caplog.text

    caplog.clear()
    threadline.autolog(disable=True)
    with caplog.at_level(logging.DEBUG, logger="threadline"):
        threadline.autolog(silent=True)
    assert caplog.text == ""


def test_silent_suppresses_the_log_messages(caplog):
    with caplog.at_level(logging.INFO, logger="threadline"):
        threadline.openai.autolog()
    assert "autologging enabled for openai" in caplog.text
    threadline.openai.autolog(disable=True, silent=True)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="threadline"):
        threadline.openai.autolog(silent=True)
        threadline.openai.autolog(disable=True, silent=True)
    assert caplog.text == ""


def test_bad_arguments_raise_at_once():
    with pytest.raises(InvalidArgumentError, match=r"autolog\(disable=...\) must be True or False"):
        threadline.openai.autolog(disable="yes")  # type: ignore[arg-type]


def test_registered_integration_is_turned_on_by_autolog(captured, fakellm):
    threadline.autolog()
    assert fakellm.enabled
    assert Client().complete(prompt="hi there") == {"text": "HI THERE", "tokens": 3}
    span = only_span(captured)
    assert span.name == "fakellm.complete"
    assert span.inputs == {"prompt": "hi there"}


# --- the shared base ------------------------------------------------------------------------


def test_version_parsing():
    assert parse_version("3.57.0") == (3, 57, 0)
    assert parse_version("1.40") == (1, 40, 0)
    assert parse_version("2.0.0rc1") == (2, 0, 0)
    assert parse_version("0.40.0") < parse_version("0.100.1")


def test_sync_stream_proxy_behaves_like_the_library_stream(captured, fakellm):
    fakellm.autolog()
    stream = Client().complete(prompt="a b c", stream=True)
    assert isinstance(stream, FakeStream)
    assert stream.response == "http-response"
    stream.response = "changed"  # attribute writes reach the library's object
    assert stream.response == "changed"
    assert list(stream) == ["a", "b", "c"]  # the item tracing asked for is hidden
    span = only_span(captured)
    assert span.outputs == {"text": "a b c"}

    stream = Client().complete(prompt="a b c", stream=True)
    assert next(stream) == "a"
    stream.close()
    assert stream.closed
    assert all_spans(captured)[-1].outputs == {"text": "a"}


def test_async_wrapper_and_stream(captured, fakellm):
    fakellm.autolog()

    async def main() -> list[Any]:
        result = await AsyncClient().complete(prompt="x y")
        stream = await AsyncClient().complete(prompt="x y", stream=True)
        items = [w async for w in stream]
        half = await AsyncClient().complete(prompt="p q r", stream=True)
        first = await half.__anext__()
        del half
        gc.collect()
        return [result, items, first]

    assert asyncio.run(main()) == [{"text": "X Y", "tokens": 3}, ["x", "y"], "p"]
    plain, streamed, abandoned = all_spans(captured)
    assert plain.attributes[SpanAttributeKey.TOKEN_USAGE]["input_tokens"] == 3
    assert streamed.outputs == {"text": "x y"}
    assert abandoned.outputs == {"text": "p"}
    assert abandoned.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_a_patched_method_calling_another_is_one_span(captured, fakellm):
    fakellm.autolog()
    Client().complete_twice(prompt="x")
    span = only_span(captured)
    assert span.inputs == {"prompt": "x"}


def test_errors_of_the_library_are_reraised_unchanged(captured, fakellm):
    fakellm.autolog()
    with pytest.raises(ConnectionError, match="fake network down") as info:
        Client().complete(prompt="x", fail=True)
    assert type(info.value) is ConnectionError
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.events[0].attributes["exception.message"] == "fake network down"


def test_a_failure_inside_tracing_never_reaches_the_caller(captured, fakellm, monkeypatch):
    _safety.raise_internal_errors(False)

    def broken_record(span: Any, request: Request, out: dict[str, Any]) -> None:
        raise RuntimeError("bug in record")

    def broken_add(self: Words, item: str) -> bool:
        raise RuntimeError("bug in add")

    monkeypatch.setattr(sys.modules[__name__], "_record", broken_record)
    monkeypatch.setattr(Words, "add", broken_add)
    fakellm.autolog()
    assert Client().complete(prompt="ok") == {"text": "OK", "tokens": 3}
    assert list(Client().complete(prompt="a b", stream=True)) == ["usage:3", "a", "b"]
    assert len(all_spans(captured)) == 2
    assert any(kind.startswith("fakellm-") for kind in _safety.error_counts())


def test_a_wrapper_stacked_on_ours_is_kept_and_ours_goes_inert(captured, fakellm):
    fakellm.autolog()
    ours = vars(Client)["complete"]

    def theirs(self: Any, **kwargs: Any) -> Any:
        return ours(self, **kwargs)

    Client.complete = theirs  # type: ignore[method-assign]
    try:
        fakellm.autolog(disable=True)
        assert vars(Client)["complete"] is theirs
        Client().complete(prompt="x")
        assert all_spans(captured) == []
    finally:
        Client.complete = ours.__wrapped__  # type: ignore[method-assign]


def test_disabled_tracing_passes_calls_straight_through(captured, fakellm):
    fakellm.autolog()
    threadline.tracing.disable()
    stream = Client().complete(prompt="a b", stream=True)
    assert type(stream) is FakeStream
    assert list(stream) == ["usage:3", "a", "b"]
    assert captured.traces == []
