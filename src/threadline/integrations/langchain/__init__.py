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

import functools
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from threadline.errors import InvalidArgumentError
from threadline.integrations._framework import FrameworkIntegration
from threadline.integrations._llm_call import Config

__all__ = ["INTEGRATION", "autolog"]


@functools.cache
def _hook(config: Config) -> tuple[Any, ContextVar[Any]]:
    """Threadline's callback handler and the configure hook's context variable, whose
    default it is (every thread and task sees the handler, including threads started before
    autolog() and those with a fresh context). Made once: a run under way across a disable
    and a new autolog() reaches the same handler, which LangChain adds to a callback
    manager only once."""
    from threadline.integrations.langchain._handler import ThreadlineCallbackHandler

    handler = ThreadlineCallbackHandler(config)
    return handler, ContextVar("threadline_langchain_handler", default=handler)


def _install(module: ModuleType, config: Config) -> Any:
    """Register the handler through langchain-core's configure hook; returns the handler."""
    try:
        from langchain_core.tracers.context import register_configure_hook
    except ImportError as exc:
        raise InvalidArgumentError(
            f"threadline.langchain.autolog() needs langchain_core.tracers.context "
            f"({exc}). Install a supported version with: {INTEGRATION.pip_command}"
        ) from exc
    handler, hook = _hook(config)
    register_configure_hook(hook, inheritable=True)
    return handler


def _uninstall(handler: Any) -> None:
    """Take our entry out of langchain-core's list of configure hooks.

    langchain-core has no public way to unregister a hook; its list is module state that
    ``register_configure_hook`` appends ``(context_var, inheritable, handler_class,
    env_var)`` to, and our entry is found by the identity of its context variable. Should
    a future version keep the hooks elsewhere, the handler stays registered but records
    nothing (``config.active`` is False).
    """
    from langchain_core.tracers import context

    hook = _hook(INTEGRATION.config)[1]
    hooks = getattr(context, "_configure_hooks", None)
    if isinstance(hooks, list):
        hooks[:] = [entry for entry in hooks if not (entry and entry[0] is hook)]


INTEGRATION = FrameworkIntegration(
    name="langchain",
    distribution="langchain-core",
    minimum_version="1.0.0",
    import_name="langchain_core",
    install=_install,
    uninstall=_uninstall,
    hides_inner_calls=True,
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every LangChain and LangGraph run (chains, graphs and nodes, chat models, LLMs,
    tools, retrievers, parsers) as spans, through LangChain's own callback system.

    Args:
        disable: remove threadline's callback handler from LangChain.
        log_traces: False registers nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
