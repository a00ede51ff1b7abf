"""``threadline.langchain.autolog()``: trace every LangChain and LangGraph run.

A callback handler is registered through langchain-core's configure hook
(``langchain_core.tracers.context.register_configure_hook``, the mechanism LangSmith's own
tracer uses), so every callback manager LangChain configures includes it: nothing is
patched, and no ``callbacks=`` argument is needed. Recorded, as one span per run:

- chains and runnables (``CHAIN``), output parsers (``PARSER``); ``invoke``, ``ainvoke``,
  ``stream``, ``astream``, ``batch`` and ``abatch`` alike;
- LangGraph graphs (the root ``CHAIN`` span, or ``AGENT`` when a tool ran inside it, as in
  a ReAct agent), one span per node, nested subgraphs; legacy ``AgentExecutor`` runs are
  ``AGENT`` spans too;
- chat models (``CHAT_MODEL``) and text LLMs (``LLM``): the request parameters and
  messages as inputs, the model name and provider, token usage (``usage_metadata``, else
  the provider's ``llm_output``), the tools offered, the conversation with the reply and
  its tool calls in threadline's chat format; a streamed model span ends when its stream
  does (also when the consumer stops early or drops it: OK, marked closed early);
- tools (``TOOL``) and retrievers (``RETRIEVER``, the documents as outputs).

Nesting: a run nests under its LangChain parent run; a root run under the current
threadline span. While a tool, a retriever or an invoked chain runs, its span is the
current span, so ``@trace`` code inside (sync, async, or run by LangChain in an executor
thread) nests under it. A run LangChain starts inside a generator (a ``stream`` of a
chain, a graph) is not made current: between its chunks the consumer's own code runs,
which must not nest under it; its child runs (graph nodes, tools) nest under it through
their parent run ids all the same.

With an LLM client's autologging also on (``threadline.openai.autolog()`` beside
``ChatOpenAI``), the SDK call a chat model run makes is not recorded apart: the chat model
span already holds the request, reply and tokens, and recording both would count the
tokens and cost twice in the trace. Credentials among the request parameters
(``api_key`` and the like) are never recorded. LangChain's own exceptions reach the caller
unchanged; the span is ERROR with the exception (LangGraph's interrupts are not errors:
OK, with an event). ``autolog(disable=True)`` removes the hook; runs already under way
still end their spans.
"""

from __future__ import annotations

from contextvars import ContextVar
from types import ModuleType
from typing import Any

from threadline.errors import InvalidArgumentError
from threadline.integrations._base import Integration, _log

__all__ = ["INTEGRATION", "autolog"]


class _LangChainIntegration(Integration):
    """An integration installed as a callback handler through the configure hook, not by
    patching: ``enabled`` is whether the hook is registered."""

    def __init__(self) -> None:
        super().__init__(
            name="langchain",
            distribution="langchain-core",
            minimum_version="1.0.0",
            targets=lambda module: [],
            import_name="langchain_core",
            hides_inner_calls=True,
        )
        self.handler: Any = None
        self._hook: ContextVar[Any] | None = None

    @property
    def enabled(self) -> bool:
        return self._hook is not None

    def autolog(self, disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
        """Register the handler (or with ``disable=True`` remove it); see the module docstring."""
        for option, value in (("disable", disable), ("log_traces", log_traces), ("silent", silent)):
            if not isinstance(value, bool):
                raise InvalidArgumentError(
                    f"threadline.{self.name}.autolog({option}=...) must be True or False, "
                    f"got {value!r}."
                )
        with self._lock:
            self.config.silent = silent
            if disable or not log_traces:
                self._undo()
                return
            if self._hook is not None:
                return
            module = self._import()
            self._check_version(module)
            self._install()
            self.config.active = True
        if not silent:
            _log(f"threadline: autologging enabled for {self.name} {self.version(module)}.")

    def _install(self) -> None:
        from langchain_core.tracers.context import register_configure_hook

        from threadline.integrations.langchain._handler import ThreadlineCallbackHandler

        if self.handler is None:
            self.handler = ThreadlineCallbackHandler(self.config)
        # A default value, not ``set()``: every thread and task sees the handler, including
        # threads started before autolog() and those with a fresh context.
        hook: ContextVar[Any] = ContextVar("threadline_langchain_handler", default=self.handler)
        register_configure_hook(hook, inheritable=True)
        self._hook = hook

    def _undo(self) -> None:
        self.config.active = False
        hook, self._hook = self._hook, None
        if hook is None:
            return
        _remove_hook(hook)
        if not self.config.silent:
            _log(f"threadline: autologging disabled for {self.name}.")

    def _import(self) -> ModuleType:
        module = super()._import()
        try:
            import langchain_core.tracers.context  # noqa: F401  (the configure hook)
        except ImportError as exc:
            raise InvalidArgumentError(
                f"threadline.langchain.autolog() needs langchain_core.tracers.context "
                f"({exc}). Install a supported version with: {self.pip_command}"
            ) from exc
        return module


def _remove_hook(hook: ContextVar[Any]) -> None:
    """Take our entry out of langchain-core's list of configure hooks.

    langchain-core has no public way to unregister a hook; its list is module state that
    ``register_configure_hook`` appends ``(context_var, inheritable, handler_class,
    env_var)`` to, and our entry is found by the identity of its context variable. Should
    a future version keep the hooks elsewhere, the handler stays registered but records
    nothing (``config.active`` is False).
    """
    from langchain_core.tracers import context

    hooks = getattr(context, "_configure_hooks", None)
    if isinstance(hooks, list):
        hooks[:] = [entry for entry in hooks if not (entry and entry[0] is hook)]


INTEGRATION = _LangChainIntegration()


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every LangChain and LangGraph run (chains, graphs and nodes, chat models, LLMs,
    tools, retrievers, parsers) as spans, through LangChain's own callback system.

    Args:
        disable: remove threadline's callback handler from LangChain.
        log_traces: False registers nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
