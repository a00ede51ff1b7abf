"""``threadline.openai_agents.autolog()``: trace OpenAI Agents SDK runs.

Through the SDK's own tracing API: a ``TracingProcessor`` is added to the SDK's trace
provider (``agents.add_trace_processor``), next to the SDK's default processor and any the
user registered, which keep receiving every trace. ``disable=True`` takes out only
threadline's processor (and ``autolog()`` adds it back if ``set_trace_processors`` dropped
it since).

Each SDK trace becomes a threadline trace whose root (AGENT) holds the run's input and
final output, or a span under the current threadline span when the run happens inside
``@threadline.trace``. SDK spans map to: agent → AGENT, turn → CHAIN, response and
generation (one model call) → CHAT_MODEL with the model, token usage and the conversation
in threadline's chat format, function tool → TOOL, handoff → TOOL, guardrail and custom
spans → CHAIN. A run's task span is its trace's root when the run opened the trace, and a
CHAIN span with the run's input and output inside a trace the caller opened
(``with agents.trace(...)``) or inside a tool (an agent used as a tool). While an SDK span
is open it is threadline's current span in the same context, so ``@threadline.trace`` code
in a function tool nests under the tool's span, and a run started there nests under it.
A run resumed from a ``RunState`` continues an SDK trace threadline has already written:
it is a trace of its own.

The SDK's traces do not carry a run's input and final output, so ``AgentRunner.run`` and
``run_streamed`` (which ``Runner.run``, ``run_sync`` and ``run_streamed`` call) are wrapped
to record them; nothing else is patched. With ``threadline.openai`` (or
``threadline.litellm``) autologging also on, the SDK's model calls are recorded once, by
the response/generation span: the client library's inner span is not recorded apart, so
tokens are counted once. An error the SDK records on a span makes it ERROR with an
``exception`` event (the exception itself when it is still being handled); the SDK's
exceptions reach the caller unchanged. A run with ``trace_include_sensitive_data=False``
has no input or output recorded, as the SDK leaves them out of its spans; model settings
are recorded without headers, query options or arguments named like credentials.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.integrations import _chat_format as cf
from threadline.integrations import litellm as _litellm
from threadline.integrations import openai as oa
from threadline.integrations._base import Target
from threadline.integrations._framework import (
    KEEP,
    FrameworkIntegration,
    FrameworkSpan,
    SpanTable,
    error_event,
    handled_exception,
)
from threadline.integrations._llm_call import Config, Request, put_attributes, report, to_dict
from threadline.tracing._lifecycle import MISSING, end_span
from threadline.tracing._runtime import RT
from threadline.tracing._span import LiveSpan

__all__ = ["INTEGRATION", "autolog"]

_PREFIX = "openai_agents."

# --- one Runner run: its input and final output --------------------------------------------


class _Run:
    """A ``Runner`` run in progress: the span that holds its input and final output (the
    run's SDK trace, or its task span inside a trace the caller opened)."""

    __slots__ = ("ended", "entry", "inputs", "result", "streamed", "task_seen")

    def __init__(self, inputs: dict[str, Any] | None, streamed: bool) -> None:
        self.inputs = inputs  # None: the run's data is not to be traced
        self.streamed = streamed
        self.entry: FrameworkSpan | None = None
        self.task_seen = False
        self.result: Any = None  # the RunResultStreaming of a streamed run
        self.ended = False

    def claim(self, entry: FrameworkSpan) -> None:
        """Make ``entry`` the run's span: the run, not the SDK, ends it."""
        self.entry = entry
        entry.data = self
        live = entry.live
        if live is not None and self.inputs is not None:
            live.set_inputs(self.inputs)

    def finish(self, outputs: Any = MISSING, exc: BaseException | None = None) -> None:
        """End the run's span (once)."""
        if self.entry is None or self.ended:
            return
        self.ended = True
        end_span(self.entry.span, MISSING if self.inputs is None else outputs, exc=exc)

    def framework_ended(self) -> None:
        """The SDK ended the run's span. A streamed run ends it now, with what the stream
        assembled; the wrapper of a plain run ends it when the run returns."""
        if not self.streamed:
            return
        import sys

        exc = sys.exc_info()[1]  # ended while the run loop task handles its exception
        result = self.result
        outputs = MISSING if result is None or exc is not None else result.final_output
        self.finish(outputs, exc)


_current_run: ContextVar[_Run | None] = ContextVar("threadline_agents_run", default=None)


def _run_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The run's input (``Runner.run(agent, input, ...)``), without context or settings;
    None when the run says its data is not to be traced (``trace_include_sensitive_data``,
    which the SDK honours for the model calls and tools as well)."""
    include = getattr(kwargs.get("run_config"), "trace_include_sensitive_data", None)
    if include is None:
        from agents import run_config

        default = getattr(run_config, "_default_trace_include_sensitive_data", None)
        include = default() if callable(default) else True
    if not include:
        return None
    value = kwargs["input"] if "input" in kwargs else (args[1] if len(args) > 1 else None)
    if value is not None and not isinstance(value, (str, list, tuple)):
        return {"input": type(value).__name__}  # a RunState being resumed: named, not dumped
    return {"input": value}


def _wrap_run(original: Callable[..., Any], config: Config) -> Callable[..., Any]:
    """``AgentRunner.run``: its result's final output is the run span's output."""

    async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not config.active or not RT.enabled:
            return await original(self, *args, **kwargs)
        state = _Run(_run_inputs(args, kwargs), streamed=False)
        token = _current_run.set(state)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _current_run.reset(token)
            state.finish(exc=exc)
            raise
        _current_run.reset(token)
        state.finish(getattr(result, "final_output", MISSING))
        return result

    return functools.wraps(original)(run)


def _wrap_run_streamed(original: Callable[..., Any], config: Config) -> Callable[..., Any]:
    """``AgentRunner.run_streamed``: the run happens in a task it starts; the run's span
    ends with the SDK's trace, with the final output the stream assembled."""

    def run_streamed(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not config.active or not RT.enabled:
            return original(self, *args, **kwargs)
        state = _Run(_run_inputs(args, kwargs), streamed=True)
        token = _current_run.set(state)  # the run's task starts with a copy of this context
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            _current_run.reset(token)
            state.finish(exc=exc)
            raise
        _current_run.reset(token)
        state.result = result
        return result

    return functools.wraps(original)(run_streamed)


# --- the SDK's span data -------------------------------------------------------------------

_SPAN_TYPES = {
    "agent": SpanType.AGENT,
    "response": SpanType.CHAT_MODEL,
    "generation": SpanType.CHAT_MODEL,
    "function": SpanType.TOOL,
    "handoff": SpanType.TOOL,
}
_MODEL_CALLS = frozenset({"response", "generation"})
_NAMED = frozenset({"agent", "function", "guardrail", "custom", "task"})
_UNRECORDED_SETTINGS = frozenset({"extra_args", "extra_query"})


def _span_name(data: Any, kind: str) -> str:
    if kind in _NAMED:
        name = getattr(data, "name", None)
        if isinstance(name, str) and name:
            return name
    if kind == "turn":
        return f"turn {getattr(data, 'turn', '')}".rstrip()
    return kind


def _record(span: LiveSpan, data: Any, kind: str) -> Any:
    """Put what the SDK gathered on ``data`` on ``span``; returns the span's outputs."""
    recorder = _RECORDERS.get(kind)
    if recorder is not None:
        return recorder(span, data)
    export = getattr(data, "export", None)
    return export() if callable(export) else MISSING


def _record_agent(span: LiveSpan, data: Any) -> Any:
    span.set_attributes(
        {
            _PREFIX + "agent.tools": data.tools,
            _PREFIX + "agent.handoffs": data.handoffs,
            _PREFIX + "agent.output_type": data.output_type,
        }
    )
    return MISSING


def _record_function(span: LiveSpan, data: Any) -> Any:
    arguments = data.input
    parsed: Any = arguments
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = arguments
    span.set_inputs(parsed if isinstance(parsed, dict) else {"input": arguments})
    if data.mcp_data:
        span.set_attribute(_PREFIX + "mcp_data", data.mcp_data)
    return data.output


def _record_response(span: LiveSpan, data: Any) -> Any:
    """A Responses API call: read with the openai integration's functions."""
    response = to_dict(data.response) if data.response is not None else None
    if response is None:
        _put_usage(span, data.usage)
        return MISSING
    kwargs = {
        "model": response.get("model"),
        "instructions": response.get("instructions"),
        "input": data.input,
        "tools": response.get("tools"),
    }
    request = Request({k: v for k, v in kwargs.items() if v is not None})
    oa._responses_start(request, span)
    oa._responses_record(span, request, response)
    return response


def _record_generation(span: LiveSpan, data: Any) -> Any:
    """A chat-completions style call (``OpenAIChatCompletionsModel``, ``LitellmModel``)."""
    messages = [oa._chat_message(m) for m in data.input or ()]
    output = data.output or []
    settings = {
        k: v
        for k, v in (data.model_config or {}).items()
        if k not in _UNRECORDED_SETTINGS and not _litellm._is_secret(k)
    }
    span.set_inputs({"model": data.model, "messages": data.input, "model_config": settings})
    attributes: dict[str, Any] = {}
    if isinstance(data.model, str):
        attributes[SpanAttributeKey.MODEL] = data.model
    if data.input is not None or output:
        reply = [oa._chat_message(m) for m in output[:1]]
        attributes[cf.CHAT_MESSAGES] = [*messages, *reply]
    put_attributes(span, attributes)
    _put_usage(span, data.usage)
    return output or MISSING


def _put_usage(span: LiveSpan, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    put_attributes(
        span,
        cf.token_usage(
            usage.get("input_tokens"),
            usage.get("output_tokens"),
            usage.get("total_tokens"),
            cached_input_tokens=cf.get(usage, "input_tokens_details", "cached_tokens"),
            reasoning_tokens=cf.get(usage, "output_tokens_details", "reasoning_tokens"),
        ),
    )


def _record_handoff(span: LiveSpan, data: Any) -> Any:
    span.set_inputs({"from_agent": data.from_agent})
    return {"to_agent": data.to_agent}


def _record_guardrail(span: LiveSpan, data: Any) -> Any:
    return {"triggered": data.triggered}


def _record_custom(span: LiveSpan, data: Any) -> Any:
    return data.data


def _record_task(span: LiveSpan, data: Any) -> Any:
    # Run totals, kept apart from threadline.token_usage: the model calls below carry it.
    if data.usage is not None:
        span.set_attribute(_PREFIX + "usage", data.usage)
    return MISSING


def _record_turn(span: LiveSpan, data: Any) -> Any:
    span.set_attribute(_PREFIX + "agent", data.agent_name)
    return _record_task(span, data)


def _record_mcp_tools(span: LiveSpan, data: Any) -> Any:
    span.set_inputs({"server": data.server})
    return data.result


_RECORDERS: dict[str, Callable[[LiveSpan, Any], Any]] = {
    "agent": _record_agent,
    "function": _record_function,
    "response": _record_response,
    "generation": _record_generation,
    "handoff": _record_handoff,
    "guardrail": _record_guardrail,
    "custom": _record_custom,
    "task": _record_task,
    "turn": _record_turn,
    "mcp_tools": _record_mcp_tools,
}


def _record_error(span: LiveSpan, error: Any) -> None:
    """The SDK's ``SpanError`` (a message and details): ERROR with the exception event,
    from the exception itself when it is the one being handled."""
    message = error.get("message") if isinstance(error, dict) else None
    data = error.get("data") if isinstance(error, dict) else None
    detail = data.get("error") if isinstance(data, dict) else None
    text = ": ".join(str(part) for part in (message, detail) if part) or "error"
    exc = handled_exception(detail, message)
    if exc is not None:
        span.record_exception(exc)
    else:
        span.add_event(error_event("SpanError", text))
    span.set_status("ERROR", text)


# --- the processor -------------------------------------------------------------------------


class _Processor:
    """Threadline's ``TracingProcessor``: SDK traces and spans → threadline spans, kept by
    the SDK's ids while open (a trace by ``("trace", trace_id)``) so that each finds its
    parent."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.active = True
        self.spans: SpanTable[FrameworkSpan] = SpanTable(FrameworkSpan)

    # --- traces

    def on_trace_start(self, trace: Any) -> None:
        if not self.active or not RT.enabled:
            return
        try:
            entry = self.spans.open(
                ("trace", trace.trace_id), trace.name or "Agent workflow", SpanType.AGENT
            )
            if entry is None:
                return
            live = entry.live
            if live is not None:
                attributes = {_PREFIX + "trace_id": trace.trace_id}
                group = getattr(trace, "group_id", None)
                if group:
                    attributes[_PREFIX + "group_id"] = group
                put_attributes(live, attributes)
                metadata = getattr(trace, "metadata", None)
                if metadata:
                    live.set_attribute(_PREFIX + "metadata", metadata)
            run = _current_run.get()
            if run is not None and run.entry is None and not run.task_seen:
                run.claim(entry)
        except Exception as exc:
            report(self.config, "trace-start", exc)

    def on_trace_end(self, trace: Any) -> None:
        try:
            entry = self.spans.pop(("trace", trace.trace_id))
            if entry is not None:
                self._close(entry, MISSING)
        except Exception as exc:
            report(self.config, "trace-end", exc)

    # --- spans

    def on_span_start(self, span: Any) -> None:
        if not self.active or not RT.enabled:
            return
        try:
            spans = self.spans
            data = span.span_data
            kind = data.type
            run = _current_run.get() if kind == "task" else None
            if run is not None and not run.task_seen:
                run.task_seen = True
                root = spans.get(("trace", span.trace_id))
                if root is not None and run.entry is root:  # the run's own trace: one span
                    spans.alias(span.span_id, root)
                    return
            entry = spans.open(
                span.span_id,
                _span_name(data, kind),
                _SPAN_TYPES.get(kind, SpanType.CHAIN),
                parent=self._parent(span),
                calling=self.config if kind in _MODEL_CALLS else KEEP,
            )
            if entry is not None and run is not None and run.entry is None:
                run.claim(entry)
        except Exception as exc:
            report(self.config, "span-start", exc)

    def on_span_end(self, span: Any) -> None:
        try:
            entry = self.spans.pop(span.span_id)
            if entry is None:
                return
            data = span.span_data
            live = entry.live
            if entry.fid != span.span_id:  # a run's task span, recorded by its trace's span
                if live is not None:
                    _record_task(live, data)
                return
            outputs: Any = MISSING
            if live is not None:
                outputs = _record(live, data, data.type)
                if span.error:
                    _record_error(live, span.error)
            self._close(entry, outputs)
        except Exception as exc:
            report(self.config, "span-end", exc)

    def _close(self, entry: FrameworkSpan, outputs: Any) -> None:
        """End a span the table has let go of (its scope ended with it)."""
        run = entry.data
        if isinstance(run, _Run):
            run.framework_ended()
        else:
            end_span(entry.span, outputs)

    def _parent(self, span: Any) -> FrameworkSpan | None:
        """The entry of an SDK span's parent: its SDK parent span, else its trace (None: a
        trace begun before autologging, so the current span, or a root). The table puts
        the span under a span of the caller's code opened since inside that parent
        (``@threadline.trace`` in a tool that starts a run or an SDK span)."""
        spans = self.spans
        entry = spans.get(span.parent_id) if span.parent_id else None
        return entry if entry is not None else spans.get(("trace", span.trace_id))

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


# --- installing it --------------------------------------------------------------------------


def _install(agents: ModuleType, config: Config) -> Any:
    """Add threadline's processor to the SDK's trace provider; returns it."""
    from agents import tracing

    cls = type("ThreadlineTracingProcessor", (_Processor, tracing.TracingProcessor), {})
    processor = cls(config)
    tracing.add_trace_processor(processor)
    return processor


def _registered() -> tuple[Any, ...] | None:
    """The processors of the SDK's trace provider, when it exposes them (the default one)."""
    from agents import tracing

    provider = tracing.get_trace_provider()
    current = getattr(getattr(provider, "_multi_processor", None), "_processors", None)
    return tuple(current) if isinstance(current, (tuple, list)) else None


def _present(processor: Any) -> bool:
    current = _registered()
    return current is None or any(p is processor for p in current)


def _uninstall(processor: Any) -> None:
    """Take threadline's processor out of the provider's list, leaving the others.

    The SDK offers only "replace the list" (``set_processors``), so the list is read from
    the default provider; a provider that does not expose it keeps an inert processor."""
    processor.active = False
    from agents import tracing

    current = _registered()
    if current is not None and any(p is processor for p in current):
        tracing.get_trace_provider().set_processors([p for p in current if p is not processor])


def _targets(agents: ModuleType) -> list[Target]:
    from agents.run import AgentRunner

    return [
        Target(AgentRunner, "run", "async", None, wrap=_wrap_run),
        Target(AgentRunner, "run_streamed", "sync", None, wrap=_wrap_run_streamed),
    ]


INTEGRATION = FrameworkIntegration(
    name="openai_agents",
    distribution="openai-agents",
    minimum_version="0.24.0",
    import_name="agents",
    install=_install,
    uninstall=_uninstall,
    present=_present,
    targets=_targets,
    hides_inner_calls=True,
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every OpenAI Agents SDK run: agents, turns, model calls, tools, handoffs,
    guardrails and custom spans.

    Args:
        disable: remove threadline's trace processor (the SDK's and the user's stay) and
            the runner wrappers.
        log_traces: False records nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
