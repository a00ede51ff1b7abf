"""The layer the agent-framework integrations share (``integrations/_framework``).

Exercised on a made-up framework, apart from any real one, so that what every framework
integration inherits is tested once: spans keyed by the framework's ids, their parents,
the span current while the framework's code runs, ends out of order or in another
context, aliases, batches, and the hook install/uninstall steps of ``Integration``.
"""

from __future__ import annotations

import contextvars
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import threadline
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations._base import Integration, Target
from threadline.integrations._framework import (
    KEEP,
    FrameworkIntegration,
    FrameworkSpan,
    SpanTable,
)
from threadline.integrations._llm_call import Config, _calling
from threadline.tracing._context import current_span

CONFIG = Config("madeup", hides_inner_calls=True)
# A table for a framework whose ends may come out of order, and one for nested calls.
both_kinds = pytest.mark.parametrize("nested", [False, True], ids=["table", "nested"])


def in_fresh_context(body: Callable[[], None]) -> None:
    """Run ``body`` in a context of its own: what it leaves current stays there."""
    contextvars.Context().run(body)


def by_name(captured: Any) -> dict[str, Any]:
    return {s.name: s for t in captured.traces for s in t.data.spans}


def parent_name(spans: dict[str, Any], name: str) -> str | None:
    names = {s.span_id: s.name for s in spans.values()}
    parent = spans[name].parent_id
    return None if parent is None else names[parent]


# --- spans by the framework's ids, and their parents ------------------------------------


@both_kinds
def test_spans_nest_by_the_framework_parent_ids(captured, nested):
    table = SpanTable(FrameworkSpan, nested=nested)
    root = table.open("r", "root", SpanType.AGENT, scope=False)
    assert root is not None and table.get("r") is root
    child = table.open("c", "child", SpanType.TOOL, parent=table.get("r"), scope=False)
    assert child is not None and child.parent is root and len(table) == 2
    assert table.finish("c", {"out": 1}) is child
    table.finish("r", "done")

    spans = by_name(captured)
    assert parent_name(spans, "child") == "root"
    assert parent_name(spans, "root") is None
    assert spans["child"].outputs == {"out": 1}
    assert spans["root"].outputs == "done"
    assert len(table) == 0 and table.finish("r") is None


@both_kinds
def test_without_a_parent_a_span_goes_under_the_current_span(captured, nested):
    table = SpanTable(FrameworkSpan, nested=nested)

    @threadline.trace
    def caller() -> bool:
        entry = table.open("a", "framework call", SpanType.CHAIN)
        assert entry is not None and current_span.get() is entry.span
        table.finish("a")
        return current_span.get() is not entry.span

    assert caller()
    assert parent_name(by_name(captured), "framework call") == "caller"
    assert current_span.get() is None


@both_kinds
def test_code_inside_a_span_that_starts_another_is_its_parent(captured, nested):
    """A ``@trace`` function in a tool that starts a run: the run nests under the function,
    not beside it."""

    def body() -> None:
        table = SpanTable(FrameworkSpan, nested=nested)
        table.open("tool", "tool", SpanType.TOOL)
        with threadline.start_span("user code"):
            table.open("run", "run in user code", SpanType.CHAIN, parent=table.get("tool"))
            table.finish("run")
        table.finish("tool")

    in_fresh_context(body)
    spans = by_name(captured)
    assert parent_name(spans, "run in user code") == "user code"
    assert parent_name(spans, "user code") == "tool"


def test_the_tables_own_open_spans_are_never_taken_for_such_code(captured):
    def body() -> None:
        table = SpanTable(FrameworkSpan)
        tool = table.open("tool", "tool", SpanType.TOOL)
        table.open("sibling", "sibling", SpanType.CHAIN, parent=tool)
        table.open("late", "late", SpanType.CHAIN, parent=tool)  # the sibling is current
        for fid in ("late", "sibling", "tool"):
            table.finish(fid)

    in_fresh_context(body)
    spans = by_name(captured)
    assert parent_name(spans, "late") == "tool"


# --- the span current while the framework's code runs ------------------------------------


@both_kinds
def test_a_model_call_hides_client_calls_and_a_tool_inside_it_records_them(captured, nested):
    def body() -> None:
        table = SpanTable(FrameworkSpan, nested=nested)
        model = table.open("m", "model", SpanType.CHAT_MODEL, calling=CONFIG)
        assert model is not None and current_span.get() is model.span
        assert _calling.get() is CONFIG
        tool = table.open("t", "tool", SpanType.TOOL, parent=model, calling=None)
        assert tool is not None and _calling.get() is None
        table.open("k", "chain", SpanType.CHAIN, parent=tool, calling=KEEP)
        assert _calling.get() is None
        table.finish("k")
        table.finish("t")
        assert current_span.get() is model.span and _calling.get() is CONFIG
        table.finish("m")
        assert current_span.get() is None and _calling.get() is None

    in_fresh_context(body)
    assert len(by_name(captured)) == 3


def test_ends_out_of_order_restore_what_was_current_before_both(captured):
    """The framework ends the outer span first: the inner one's code still sees its own
    span, and its end does not make the ended outer span current again."""

    def body() -> None:
        table = SpanTable(FrameworkSpan)
        with threadline.start_span("caller") as caller:
            outer = table.open("o", "outer", SpanType.CHAIN, calling=CONFIG)
            inner = table.open("i", "inner", SpanType.CHAIN, parent=outer)
            assert outer is not None and inner is not None
            table.finish("o")
            assert current_span.get() is inner.span
            table.finish("i")
            assert current_span.get() is caller
            assert _calling.get() is None
        assert current_span.get() is None

    in_fresh_context(body)
    assert parent_name(by_name(captured), "inner") == "outer"


@both_kinds
def test_an_end_reported_in_another_context(captured, nested):
    """A framework that reports an end from a callback run in another context (a future's
    done callback): undone there; in the start's context the enclosing span's end restores
    past it."""

    def body() -> None:
        table = SpanTable(FrameworkSpan, nested=nested)
        outer = table.open("o", "outer", SpanType.CHAIN)
        inner = table.open("i", "inner", SpanType.CHAIN, parent=outer, calling=CONFIG)
        assert outer is not None and inner is not None
        callback = contextvars.copy_context()
        callback.run(table.finish, "i")
        assert callback[current_span] is outer.span and callback[_calling] is None
        assert current_span.get() is inner.span  # this context still holds it
        table.finish("o")
        assert current_span.get() is None
        # A nested table undoes only what each scope set: the outer one left _calling as is.
        assert _calling.get() is (CONFIG if nested else None)

    in_fresh_context(body)
    assert len(by_name(captured)) == 2


@both_kinds
def test_an_end_in_another_context_leaves_that_contexts_current_span_alone(captured, nested):
    def body() -> None:
        table = SpanTable(FrameworkSpan, nested=nested)
        entry = table.open("a", "framework span", SpanType.CHAIN)
        assert entry is not None

        def elsewhere() -> None:
            with threadline.start_span("theirs") as theirs:
                table.finish("a")
                assert current_span.get() is theirs

        contextvars.Context().run(elsewhere)
        assert entry.span.is_ended and len(table) == 0

    in_fresh_context(body)


# --- aliases and batches ---------------------------------------------------------------


@both_kinds
def test_an_alias_goes_with_its_entry(captured, nested):
    table = SpanTable(FrameworkSpan, nested=nested)
    outer = table.open("outer", "outer", SpanType.CHAIN, scope=False)
    assert outer is not None
    table.alias("inner", outer)
    assert table.get("inner") is outer
    popped = table.pop("inner")  # the inner call's end: only its id goes
    assert popped is outer and popped.fid != "inner"
    assert table.get("inner") is None and table.get("outer") is outer
    assert not outer.span.is_ended
    table.alias("inner again", outer)
    table.close(outer, "done")
    assert len(table) == 0
    assert by_name(captured)["outer"].outputs == "done"


def test_a_batch_started_by_one_frame_is_not_made_current(captured):
    """All the batch's spans are started before any runs: none is current, so that no
    run's code sees a sibling's span; all go under the span current before the batch."""

    def body() -> None:
        table = SpanTable(FrameworkSpan)
        frame = object()
        with threadline.start_span("caller") as caller:
            first = table.open("a", "a", SpanType.CHAIN, starter=frame)
            assert first is not None and current_span.get() is first.span
            table.open("b", "b", SpanType.CHAIN, starter=frame)
            assert current_span.get() is caller
            table.finish("b")
            table.finish("a")
            assert table._starters == {}

            def model_call(fid: str) -> FrameworkSpan | None:
                kind = SpanType.CHAT_MODEL
                return table.open(
                    fid, fid, kind, calling=CONFIG, starter=frame, batch_keeps_first=True
                )

            model = model_call("m1")
            model_call("m2")
            assert model is not None and current_span.get() is model.span
            assert _calling.get() is CONFIG  # the batch's client calls stay hidden
            table.finish("m2")
            table.finish("m1")
            assert current_span.get() is caller and _calling.get() is None
            assert table._starters == {} and table._scoped == {}

    in_fresh_context(body)
    spans = by_name(captured)
    assert {parent_name(spans, name) for name in ("a", "b", "m1", "m2")} == {"caller"}


def test_a_nested_table_has_no_batches():
    with pytest.raises(ValueError, match="no batches"):
        SpanTable(FrameworkSpan, nested=True).open("a", "a", SpanType.CHAIN, starter=object())


# --- installing a hook: Integration's install/uninstall/present steps ---------------------


class Hook:
    def __init__(self, config: Config) -> None:
        self.config = config


def original_method(self: Any) -> str:
    return "original"


@pytest.fixture
def framework(monkeypatch) -> Iterator[types.ModuleType]:
    """An importable made-up framework with a hook list and one method to patch."""
    module = types.ModuleType("madeupfw")
    module.__version__ = "1.2.0"
    module.hooks = ["the user's hook"]
    module.Runner = type("Runner", (), {"run": original_method})
    monkeypatch.setitem(sys.modules, "madeupfw", module)
    yield module


def make_integration(present: bool = True, fail: bool = False, **options: Any) -> Integration:
    def install(module: types.ModuleType, config: Config) -> Hook:
        if fail:
            raise RuntimeError("the framework refused the hook")
        hook = Hook(config)
        module.hooks.append(hook)
        return hook

    def uninstall(hook: Hook) -> None:
        module = sys.modules["madeupfw"]
        module.hooks = [h for h in module.hooks if h is not hook]

    def is_present(hook: Hook) -> bool:
        return any(h is hook for h in sys.modules["madeupfw"].hooks)

    def targets(module: types.ModuleType) -> list[Target]:
        wrap = lambda original, config: lambda self: "patched"  # noqa: E731
        return [Target(module.Runner, "run", "sync", None, wrap=wrap)]

    settings: dict[str, Any] = {
        "name": "madeupfw",
        "distribution": "threadline-test-no-such-distribution",
        "minimum_version": "1.0",
        "install": install,
        "uninstall": uninstall,
        "present": is_present if present else None,
        "targets": targets,
    }
    settings.update(options)
    return FrameworkIntegration(**settings)


def test_autolog_installs_the_hook_once_and_disable_takes_out_exactly_it(framework):
    integration = make_integration()
    integration.autolog(silent=True)
    integration.autolog(silent=True)
    hook = integration.handler
    assert isinstance(hook, Hook) and hook.config is integration.config
    assert framework.hooks == ["the user's hook", hook]
    assert integration.enabled and integration.config.active
    assert framework.Runner().run() == "patched"

    integration.autolog(disable=True, silent=True)
    assert framework.hooks == ["the user's hook"]
    assert not integration.enabled and integration.handler is None
    assert not integration.config.active
    assert framework.Runner.run is original_method
    integration.autolog(disable=True, silent=True)  # off when off: no error


def test_a_hook_the_user_dropped_is_installed_again(framework):
    integration = make_integration()
    integration.autolog(silent=True)
    first = integration.handler
    framework.hooks = ["the user's new list"]
    integration.autolog(silent=True)
    assert integration.handler is not first
    assert framework.hooks == ["the user's new list", integration.handler]
    assert framework.Runner().run() == "patched"
    integration.autolog(disable=True, silent=True)
    assert framework.hooks == ["the user's new list"]
    assert framework.Runner.run is original_method


def test_without_present_an_installed_hook_is_taken_to_stay(framework):
    integration = make_integration(present=False)
    integration.autolog(silent=True)
    framework.hooks = []
    integration.autolog(silent=True)
    assert framework.hooks == [] and integration.enabled
    integration.autolog(disable=True, silent=True)


def test_a_hook_that_cannot_be_installed_undoes_the_patches(framework):
    integration = make_integration(fail=True)
    with pytest.raises(RuntimeError, match="refused"):
        integration.autolog(silent=True)
    assert framework.Runner.run is original_method
    assert not integration.enabled and not integration.config.active


def test_install_needs_uninstall():
    with pytest.raises(ValueError, match="install and uninstall go together"):
        Integration(name="x", distribution="x", minimum_version="1", install=lambda m, c: None)


def test_the_version_is_the_distributions_else_the_modules(framework):
    from importlib.metadata import version

    assert make_integration().version(framework) == "1.2.0"  # no such distribution
    installed = make_integration(distribution="pytest")
    assert installed.version(framework) == version("pytest")
    with pytest.raises(InvalidArgumentError, match="too-old"):
        make_integration(minimum_version="2.0", distribution="too-old").autolog()

    del framework.__version__
    with pytest.raises(InvalidArgumentError, match=r"not from the .* package"):
        make_integration().autolog(silent=True)
    assert framework.hooks == ["the user's hook"]


def test_the_version_is_read_once_per_module(framework):
    """``autolog()`` checks it every time; the package metadata is slow to read."""
    integration = make_integration()
    assert integration.version(framework) == "1.2.0"
    framework.__version__ = "9.9.9"
    assert integration.version(framework) == "1.2.0"
    other = types.ModuleType("madeupfw")
    other.__version__ = "3.0.0"
    assert integration.version(other) == "3.0.0"
