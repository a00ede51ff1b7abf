"""``threadline.dspy.autolog()``: trace DSPy programs.

Through DSPy's callback API: a ``BaseCallback`` is added to the global callbacks
(``dspy.configure(callbacks=[...])``) after the user's own, which keep running;
``disable=True`` takes out only threadline's. Nothing is patched.

Recorded: every module call (``Module.__call__`` / ``acall``: CHAIN, ``ReAct`` and its
subclasses AGENT, ``Retrieve`` RETRIEVER) with its inputs and prediction, predictors'
signatures, LM calls (CHAT_MODEL, or LLM for text models) with the model, token usage
(from the LM's history entry for the call) and the conversation in threadline's chat
format, adapter ``format`` and ``parse`` (PARSER), tools (TOOL) and ``Evaluate`` runs.
Each span is threadline's current span while DSPy runs the call, so ``@threadline.trace``
inside a tool nests under the tool's span and a program called inside ``@threadline.trace``
nests under it. DSPy reaches its providers through litellm (or its own clients): with
``threadline.litellm`` / ``threadline.openai`` autologging on as well, that inner request
is not recorded apart, so each LM call is one span and its tokens are counted once.
Exceptions reach the caller unchanged; the span is ERROR with the exception. Arguments
named like credentials (``api_key``, ``…_token``, headers) are never recorded.

``dspy.configure`` may only be called from the thread (and asyncio task) that first
configured DSPy: call ``autolog()`` from there, or before configuring DSPy.
"""

from __future__ import annotations

import weakref
from types import ModuleType
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf
from threadline.integrations import litellm as _litellm
from threadline.integrations import openai as oa
from threadline.integrations._framework import (
    KEEP,
    FrameworkIntegration,
    FrameworkSpan,
    SpanTable,
)
from threadline.integrations._llm_call import Config, put_attributes, report
from threadline.tracing import _safety
from threadline.tracing._lifecycle import MISSING
from threadline.tracing._runtime import RT

__all__ = ["INTEGRATION", "autolog"]

_PREFIX = "dspy."
_HISTORY_LOOKBACK = 16  # history entries searched for the one a call just added


def _without_secrets(kwargs: Any) -> dict[str, Any]:
    if not isinstance(kwargs, dict):
        return {}
    return {k: v for k, v in kwargs.items() if not _litellm._is_secret(str(k))}


def _module_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """``Module.__call__(*args, **kwargs)``'s arguments as one dict (``args`` only if given)."""
    out = dict(inputs.get("kwargs") or {})
    args = inputs.get("args")
    if args:
        out["args"] = args
    return out


_signatures: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def _signature_text(signature: Any) -> str | None:
    """A signature class as text (``"question -> answer"``), cached: DSPy builds the text
    anew each time it is read, and signature classes do not change once made."""
    if not isinstance(signature, type):
        return None
    text = _signatures.get(signature)
    if text is None:
        text = getattr(signature, "signature", None)
        if not isinstance(text, str):
            return None
        _signatures[signature] = text
    return text


def _prediction(outputs: Any) -> Any:
    """A ``Prediction`` as the dict of its fields (its repr is hard to read)."""
    to_dict = getattr(outputs, "toDict", None)
    if callable(to_dict):
        try:
            return to_dict()
        except Exception:
            return outputs
    return outputs


def _model_attributes(model: Any) -> dict[str, Any]:
    """litellm-style ``"provider/model"`` names split into provider and model."""
    if not isinstance(model, str):
        return {}
    provider, slash, name = model.partition("/")
    if slash and provider and name:
        return {SpanAttributeKey.PROVIDER: provider, SpanAttributeKey.MODEL: name}
    return {SpanAttributeKey.MODEL: model}


def _reply(output: Any) -> dict[str, Any]:
    """One LM output (text, or a dict with ``text`` and ``tool_calls``) as a message."""
    if isinstance(output, dict):
        calls = [oa._tool_call(c) for c in output.get("tool_calls") or ()]
        return cf.message("assistant", cf.text_content(output.get("text")), calls)
    return cf.message("assistant", cf.text_content(output))


class _LMCall:
    """What an LM span keeps until the call ends: the LM and the request's messages."""

    __slots__ = ("lm", "messages")

    def __init__(self, lm: Any, messages: list[dict[str, Any]]) -> None:
        self.lm = lm
        self.messages = messages


def _history_entry(lm: Any, outputs: Any) -> dict[str, Any] | None:
    """The LM history entry of the call that returned ``outputs`` (the same object: other
    threads may have added entries since)."""
    history = getattr(lm, "history", None)
    if not isinstance(history, list) or outputs is None:
        return None
    for entry in reversed(history[-_HISTORY_LOOKBACK:]):
        if isinstance(entry, dict) and entry.get("outputs") is outputs:
            return entry
    return None


class _Callback:
    """Threadline's DSPy callback: one span per DSPy call, keyed by DSPy's call id.

    DSPy runs a call's start and end handlers in the same frame, around the call, so the
    span is current in exactly the context the call runs in."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.active = True
        self.calls: SpanTable[FrameworkSpan] = SpanTable(FrameworkSpan, nested=True)

    def _start(
        self,
        call_id: str,
        name: str,
        span_type: str,
        inputs: Any,
        attributes: dict[str, Any] | None = None,
        model_call: bool = False,
    ) -> FrameworkSpan | None:
        if not self.active or not RT.enabled:
            return None
        entry = self.calls.open(
            call_id, name, span_type, calling=self.config if model_call else KEEP
        )
        if entry is None:
            return None
        live = entry.live
        if live is not None:
            live.set_inputs(inputs)
            if attributes:
                live.set_attributes(attributes)
        return entry

    def _end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        self.calls.finish(call_id, MISSING if exception is not None else outputs, exception)

    # --- modules

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        try:
            attributes = {}
            signature = _signature_text(getattr(instance, "signature", None))
            if signature is not None:
                attributes[_PREFIX + "signature"] = signature
            self._start(
                call_id,
                f"{type(instance).__name__}.forward",
                self._module_type(instance),
                _module_inputs(inputs),
                attributes,
            )
        except Exception as exc:
            report(self.config, "module-start", exc)

    def on_module_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        try:
            self._end(call_id, _prediction(outputs), exception)
        except Exception as exc:
            report(self.config, "module-end", exc)

    def _module_type(self, instance: Any) -> str:
        import dspy

        react = getattr(dspy, "ReAct", None)
        if isinstance(react, type) and isinstance(instance, react):
            return SpanType.AGENT
        retrieve = getattr(dspy, "Retrieve", None)
        if isinstance(retrieve, type) and isinstance(instance, retrieve):
            return SpanType.RETRIEVER
        return SpanType.CHAIN

    # --- LM calls

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        try:
            kwargs = _without_secrets(inputs.get("kwargs"))
            raw_messages = inputs.get("messages")
            prompt = inputs.get("prompt")
            request: dict[str, Any] = {}
            if raw_messages is not None:
                request["messages"] = raw_messages
            if prompt is not None:
                request["prompt"] = prompt
            request.update(kwargs)
            model_type = getattr(instance, "model_type", None)
            attributes = {
                **_model_attributes(getattr(instance, "model", None)),
                _PREFIX + "model_type": model_type,
                _PREFIX + "lm_kwargs": _without_secrets(getattr(instance, "kwargs", None)),
            }
            span_type = SpanType.LLM if model_type == "text" else SpanType.CHAT_MODEL
            entry = self._start(
                call_id,
                f"{type(instance).__name__}.__call__",
                span_type,
                request,
                attributes,
                model_call=True,
            )
            if entry is not None and entry.live is not None:
                if raw_messages is not None:
                    messages = [oa._chat_message(m) for m in raw_messages]
                else:
                    messages = [cf.message("user", cf.text_content(prompt))]
                entry.data = _LMCall(instance, messages)
        except Exception as exc:
            report(self.config, "lm-start", exc)

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        try:
            entry = self.calls.get(call_id)
            call = entry.data if entry is not None else None
            live = entry.live if entry is not None else None
            if isinstance(call, _LMCall) and live is not None:
                attributes: dict[str, Any] = {}
                history = _history_entry(call.lm, outputs) if exception is None else None
                if history is not None:
                    attributes.update(oa._usage(history.get("usage")))
                    response_model = history.get("response_model")
                    if isinstance(response_model, str) and response_model:
                        attributes[SpanAttributeKey.MODEL] = response_model
                reply = (
                    [_reply(outputs[0])]
                    if isinstance(outputs, list) and outputs and exception is None
                    else []
                )
                attributes[cf.CHAT_MESSAGES] = [*call.messages, *reply]
                put_attributes(live, attributes)
            self._end(call_id, outputs, exception)
        except Exception as exc:
            report(self.config, "lm-end", exc)

    # --- adapters

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        try:
            self._start(
                call_id,
                f"{type(instance).__name__}.format",
                SpanType.PARSER,
                self._adapter_inputs(inputs),
            )
        except Exception as exc:
            report(self.config, "adapter-start", exc)

    def on_adapter_format_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        try:
            self._end(call_id, outputs, exception)
        except Exception as exc:
            report(self.config, "adapter-end", exc)

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        try:
            self._start(
                call_id,
                f"{type(instance).__name__}.parse",
                SpanType.PARSER,
                self._adapter_inputs(inputs),
            )
        except Exception as exc:
            report(self.config, "adapter-start", exc)

    def on_adapter_parse_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        try:
            self._end(call_id, outputs, exception)
        except Exception as exc:
            report(self.config, "adapter-end", exc)

    def _adapter_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The adapter's arguments, its signature as text (``"question -> answer"``)."""
        out = dict(inputs)
        signature = _signature_text(out.get("signature"))
        if signature is not None:
            out["signature"] = signature
        args = out.get("args")
        if isinstance(args, tuple):
            out["args"] = [_signature_text(a) or a for a in args]
        return out

    # --- tools and evaluation

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        try:
            name = getattr(instance, "name", None)
            attributes = {}
            description = getattr(instance, "desc", None)
            if isinstance(description, str):
                attributes[_PREFIX + "tool.description"] = description
            arguments = dict(inputs.get("kwargs") or {})
            arguments.update({k: v for k, v in inputs.items() if k != "kwargs"})
            self._start(
                call_id,
                name if isinstance(name, str) and name else type(instance).__name__,
                SpanType.TOOL,
                arguments,
                attributes,
            )
        except Exception as exc:
            report(self.config, "tool-start", exc)

    def on_tool_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        try:
            self._end(call_id, outputs, exception)
        except Exception as exc:
            report(self.config, "tool-end", exc)

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        try:
            arguments = {k: v for k, v in inputs.items() if v is not None}
            for key in ("program", "metric"):  # objects: named, not dumped
                if key in arguments:
                    value = arguments[key]
                    arguments[key] = getattr(value, "__name__", None) or type(value).__name__
            devset = inputs.get("devset") or getattr(instance, "devset", None)
            attributes = {}
            if isinstance(devset, list):
                attributes[_PREFIX + "evaluate.devset_size"] = len(devset)
            self._start(
                call_id,
                f"{type(instance).__name__}.__call__",
                SpanType.CHAIN,
                arguments,
                attributes,
            )
        except Exception as exc:
            report(self.config, "evaluate-start", exc)

    def on_evaluate_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        try:
            score = getattr(outputs, "score", None)
            result = {"score": score} if isinstance(score, (int, float)) else outputs
            self._end(call_id, result, exception)
        except Exception as exc:
            report(self.config, "evaluate-end", exc)


# --- installing it --------------------------------------------------------------------------


def _install(dspy: ModuleType, config: Config) -> Any:
    """Add threadline's callback after DSPy's current global callbacks; returns it."""
    from dspy.utils.callback import BaseCallback

    cls = type("ThreadlineCallback", (_Callback, BaseCallback), {})
    callback = cls(config)
    callbacks = list(dspy.settings.get("callbacks") or [])
    try:
        dspy.settings.configure(callbacks=[*callbacks, callback])
    except RuntimeError as exc:  # dspy.configure owned by another thread or task
        raise InvalidArgumentError(
            f"threadline.dspy.autolog() could not add its callback: {exc} Call autolog() "
            "from the thread that configures DSPy, or before dspy.configure()."
        ) from exc
    return callback


def _present(callback: Any) -> bool:
    import dspy

    return any(c is callback for c in dspy.settings.get("callbacks") or [])


def _uninstall(callback: Any) -> None:
    """Take threadline's callback out of DSPy's global callbacks, leaving the others."""
    callback.active = False
    import dspy

    callbacks = list(dspy.settings.get("callbacks") or [])
    if not any(c is callback for c in callbacks):
        return
    try:
        dspy.settings.configure(callbacks=[c for c in callbacks if c is not callback])
    except RuntimeError as exc:
        _safety.log_once(
            "dspy-uninstall",
            f"threadline: could not remove its DSPy callback ({exc}); it stays in "
            "dspy.settings.callbacks but records nothing.",
        )


INTEGRATION = FrameworkIntegration(
    name="dspy",
    distribution="dspy",
    minimum_version="3.4.0",
    install=_install,
    uninstall=_uninstall,
    present=_present,
    hides_inner_calls=True,
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every DSPy module, LM call, adapter step, tool call and evaluation.

    Args:
        disable: remove threadline's callback (the user's callbacks stay).
        log_traces: False records nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
