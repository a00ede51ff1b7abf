"""``threadline.pydantic_ai.autolog()``: Pydantic AI through its own OpenTelemetry
instrumentation and the bridge (``threadline.otel``).

``autolog()`` calls ``Agent.instrument_all(InstrumentationSettings(tracer_provider=...))``
with threadline's tracer provider, so every agent without instrumentation settings of its
own records agent runs (``AGENT``), model requests (``CHAT_MODEL``, with the model, token
usage and the conversation from the GenAI attributes) and tool calls (``TOOL``, with the
arguments and the result), streamed runs too. ``disable=True`` puts back the setting that
was there before. Pydantic AI's agent spans carry the run's prompt in
``pydantic_ai.all_messages`` and its output in ``final_result``: they become the AGENT
span's inputs and outputs here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from threadline.errors import InvalidArgumentError
from threadline.integrations._base import Integration
from threadline.semconv.json_text import INVALID, json_value, looks_like_json

SCOPE = "pydantic-ai"  # the instrumentation scope of Pydantic AI's tracer
_UNSET: Any = object()


class PydanticAIIntegration(Integration):
    """Autologging through ``Agent.instrument_all``: one setting to make and to restore."""

    def __init__(self) -> None:
        super().__init__(
            name="pydantic_ai",
            distribution="pydantic-ai-slim",
            minimum_version="1.0.0",
            targets=lambda module: [],
        )
        self._previous: Any = _UNSET

    def autolog(self, disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
        """Record every Pydantic AI agent run (see the module docstring)."""
        for option, value in (("disable", disable), ("log_traces", log_traces), ("silent", silent)):
            if not isinstance(value, bool):
                raise InvalidArgumentError(
                    f"threadline.pydantic_ai.autolog({option}=...) must be True or False, "
                    f"got {value!r}."
                )
        with self._lock:
            self.config.silent = silent
            if disable or not log_traces:
                self._restore()
                return
            if self._previous is not _UNSET:
                return
            module = self._import()
            self._check_version(module)
            from pydantic_ai import Agent
            from pydantic_ai.models.instrumented import InstrumentationSettings

            from threadline.otel import get_tracer_provider

            provider = get_tracer_provider()  # names the extra when the SDK is missing
            from threadline.otel import _convert

            _convert.SCOPE_MAPPERS[SCOPE] = _pydantic_span
            # Read to be put back on disable; Pydantic AI has no public getter for it.
            self._previous = Agent._instrument_default
            Agent.instrument_all(InstrumentationSettings(tracer_provider=provider))
            self.config.active = True
        if not silent:
            _log(f"threadline: autologging enabled for pydantic_ai {self.version(module)}.")

    @property
    def enabled(self) -> bool:
        return self._previous is not _UNSET

    def _restore(self) -> None:
        self.config.active = False
        if self._previous is _UNSET:
            return
        from pydantic_ai import Agent

        Agent.instrument_all(self._previous)
        self._previous = _UNSET
        if not self.config.silent:
            _log("threadline: autologging disabled for pydantic_ai.")


def _pydantic_span(live: Any, attrs: Mapping[str, Any]) -> None:
    """Pydantic AI's own keys: an agent run's prompt and ``final_result``, and the JSON
    values its ``logfire.json_schema`` declares (a tool's result ``0`` is the number)."""
    encoded = _json_keys(attrs.get("logfire.json_schema"))
    operation = attrs.get("gen_ai.operation.name")
    if operation == "invoke_agent":
        if live._inputs is None:
            prompt = _prompt(attrs.get("pydantic_ai.all_messages"))
            if prompt is not None:
                live._inputs = {"user_prompt": prompt}
        if "final_result" in attrs:
            live._outputs = _value(attrs["final_result"], "final_result" in encoded)
    elif operation == "execute_tool" and "gen_ai.tool.call.result" in attrs:
        live._outputs = _value(
            attrs["gen_ai.tool.call.result"], "gen_ai.tool.call.result" in encoded
        )


def _json_keys(schema: Any) -> frozenset[str]:
    """The attributes whose values Pydantic AI wrote as JSON text (Logfire's schema hint)."""
    parsed = json_value(schema) if isinstance(schema, str) else None
    properties = parsed.get("properties") if isinstance(parsed, dict) else None
    return frozenset(properties) if isinstance(properties, dict) else frozenset()


def _value(raw: Any, encoded: bool) -> Any:
    if isinstance(raw, str) and (encoded or looks_like_json(raw)):
        parsed = json_value(raw)
        if parsed is not INVALID:
            return parsed
    return raw


def _prompt(all_messages: Any) -> str | None:
    """The last user text of the run's messages (the prompt it was given)."""
    from threadline.semconv.messages import normalize

    prompt = None
    for message in normalize(all_messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            prompt = message["content"]
    return prompt


def _log(message: str) -> None:
    import logging

    logging.getLogger("threadline").info(message)


INTEGRATION = PydanticAIIntegration()


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Record every Pydantic AI agent run, model request and tool call as spans.

    Args:
        disable: put back the instrumentation setting Pydantic AI had before.
        log_traces: False records nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
