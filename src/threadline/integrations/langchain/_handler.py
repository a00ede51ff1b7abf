"""The LangChain callback handler that records every run as a threadline span.

Imported only by ``autolog()`` (it subclasses langchain-core's ``BaseCallbackHandler``).
Each callback is guarded: a failure of tracing is logged (``_safety``), never raised into
the program, and LangChain's own exceptions are recorded on the span and left alone.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanEvent, SpanType
from threadline.integrations import _chat_format as cf
from threadline.integrations._framework import SpanTable
from threadline.integrations._llm_call import Config, put_attributes, report
from threadline.integrations.langchain import _messages as lm
from threadline.integrations.langchain._frames import in_generator, is_graph, starter
from threadline.integrations.langchain._run import Run
from threadline.integrations.langchain._values import plain
from threadline.tracing import _safety
from threadline.tracing._lifecycle import end_span
from threadline.tracing._runtime import RT
from threadline.tracing._span import LiveSpan


def _name(kwargs: dict[str, Any], serialized: Any, default: str) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, dict):
        name = serialized.get("name")
        if isinstance(name, str) and name:
            return name
        ids = serialized.get("id")
        if isinstance(ids, list) and ids and isinstance(ids[-1], str):
            return ids[-1]
    return default


def _is_control_flow(error: BaseException) -> bool:
    """LangGraph's interrupts and parent commands (``GraphBubbleUp``): a paused or redirected
    graph, not a failure."""
    return any(
        c.__name__ == "GraphBubbleUp" and c.__module__.startswith("langgraph")
        for c in type(error).__mro__
    )


class ThreadlineCallbackHandler(BaseCallbackHandler):
    """Records chains, graphs and their nodes, chat models, LLMs, tools, retrievers and parsers.

    ``run_inline``: LangChain calls it in the run's own thread and context (otherwise the
    async callback manager runs synchronous handlers in an executor thread, where making a
    span current would not reach the run's code).
    """

    run_inline = True

    def __init__(self, config: Config) -> None:
        super().__init__()
        self._config = config
        self.runs: SpanTable[Run] = SpanTable(Run)

    @property
    def raise_error(self) -> bool:  # type: ignore[override]
        """Under threadline's own tests a tracing bug fails the test; otherwise LangChain
        logs what ``report`` let through (nothing: every callback catches its failures)."""
        return _safety.should_raise()

    def _recording(self) -> bool:
        return self._config.active and RT.enabled

    def _failed(self, kind: str, exc: Exception) -> None:
        report(self._config, kind, exc)

    def _open_scoped(
        self, run_id: Any, parent_run_id: Any, name: str, span_type: str
    ) -> Run | None:
        """Open the span of a run whose code runs between its start and end callbacks in
        the caller's context (a tool, a retriever): current there, unless in a batch."""
        runs = self.runs
        return runs.open(run_id, name, span_type, parent=runs.get(parent_run_id), starter=starter())

    # --- chains, graphs, nodes, parsers, prompts ------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: Any,
        parent_run_id: Any = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._recording():
            return
        try:
            started_by = starter()
            # Started inside a generator (``stream``, a graph): the window between the start
            # and end callbacks spans yields to the consumer, so the span is not made current
            # there (the consumer's own code would nest under it). Its child runs still nest
            # under it through their parent run ids.
            streamed = in_generator(started_by)
            span_type = SpanType.PARSER if kwargs.get("run_type") == "parser" else SpanType.CHAIN
            run = self.runs.open(
                run_id,
                _name(kwargs, serialized, "Chain"),
                span_type,
                parent=self.runs.get(parent_run_id),
                scope=not streamed,
                starter=started_by,
            )
            if run is None:
                return
            run.graph = is_graph(started_by, metadata)
            if isinstance(run.span, LiveSpan):
                run.span.set_inputs(plain(inputs))
        except Exception as exc:
            self._failed("chain-start", exc)

    def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        try:
            run = self.runs.pop(run_id)
            if run is None:
                return
            span = run.span
            if isinstance(span, LiveSpan):
                if "inputs" in kwargs:  # a stream's inputs, known once it has ended
                    span.set_inputs(plain(kwargs["inputs"]))
                if run.agent:
                    span._span_type = SpanType.AGENT
            end_span(span, plain(outputs))
        except Exception as exc:
            self._failed("chain-end", exc)

    def on_chain_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        try:
            run = self.runs.pop(run_id)
            if run is not None:
                if run.agent and isinstance(run.span, LiveSpan):
                    run.span._span_type = SpanType.AGENT
                self._end_failed(run, error)
        except Exception as exc:
            self._failed("chain-error", exc)

    def on_agent_action(self, action: Any, *, run_id: Any, **kwargs: Any) -> None:
        """A legacy ``AgentExecutor`` chose a tool: its chain run is an agent."""
        try:
            run = self.runs.get(run_id)
            if run is not None:
                run.agent = True
        except Exception as exc:
            self._failed("agent-action", exc)

    # --- chat models and LLMs -------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: Any,
        parent_run_id: Any = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._recording():
            return
        try:
            started = self._model_start(
                SpanType.CHAT_MODEL, serialized, run_id, parent_run_id, metadata, kwargs
            )
            if started is None:
                return
            run, params = started
            history = [lm.chat_message(m) for m in (messages[0] if messages else ())]
            run.data = history
            params["messages"] = history
            run.span.set_inputs(params)
        except Exception as exc:
            self._failed("chat-model-start", exc)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: Any,
        parent_run_id: Any = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._recording():
            return
        try:
            started = self._model_start(
                SpanType.LLM, serialized, run_id, parent_run_id, metadata, kwargs
            )
            if started is None:
                return
            run, params = started
            params["prompts"] = list(prompts)
            run.span.set_inputs(params)
        except Exception as exc:
            self._failed("llm-start", exc)

    def _model_start(
        self,
        span_type: str,
        serialized: Any,
        run_id: Any,
        parent_run_id: Any,
        metadata: Any,
        kwargs: dict[str, Any],
    ) -> tuple[Run, dict[str, Any]] | None:
        """Open a model run's span, current (and hiding the SDK call it makes, which the
        model run records itself) until its first token or its end; returns the run and
        its request parameters (the caller adds the messages and records them as inputs),
        or None when the run is not recorded."""
        run = self.runs.open(
            run_id,
            _name(kwargs, serialized, span_type),
            span_type,
            parent=self.runs.get(parent_run_id),
            calling=self._config,
            starter=starter(),
            batch_keeps_first=True,
        )
        if run is None or not isinstance(run.span, LiveSpan):
            return None
        invocation = kwargs.get("invocation_params")
        params, tools = lm.request(invocation)
        attributes = lm.model_attributes(metadata, invocation)
        put_attributes(run.span, attributes)
        if tools:
            run.span.set_attribute(cf.CHAT_TOOLS, tools)  # the caller's schemas: snapshot
        return run, params

    def on_llm_new_token(self, token: Any, *, run_id: Any, **kwargs: Any) -> None:
        """The first token: the request is on its way, the model's scope ends here (its
        stream's later chunks are read by the consumer, in the consumer's context)."""
        try:
            run = self.runs.get(run_id)
            if run is not None and run.scoped:
                self.runs.leave(run)
        except Exception as exc:
            self._failed("llm-token", exc)

    def on_llm_end(self, response: Any, *, run_id: Any, **kwargs: Any) -> None:
        try:
            run = self.runs.pop(run_id)
            if run is None:
                return
            end_span(run.span, self._model_result(run, response))
        except Exception as exc:
            self._failed("llm-end", exc)

    def on_llm_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        try:
            run = self.runs.pop(run_id)
            if run is None:
                return
            response = kwargs.get("response")
            if isinstance(run.span, LiveSpan):
                if lm.has_output(response):  # a stream's chunks before the failure
                    run.span.set_outputs(self._model_result(run, response))
                elif isinstance(run.data, list):
                    run.span.set_attribute(cf.CHAT_MESSAGES, run.data)
            self._end_failed(run, error)
        except Exception as exc:
            self._failed("llm-error", exc)

    def _model_result(self, run: Run, response: Any) -> Any:
        """Record a model run's tokens, reply and conversation; returns its outputs."""
        span = run.span
        if not isinstance(span, LiveSpan):
            return None
        attributes = lm.result_attributes(response, SpanAttributeKey.MODEL in span.attributes)
        if not isinstance(run.data, list):
            put_attributes(span, attributes)
            return lm.generations_text(response)
        reply = lm.reply(response)
        attributes[cf.CHAT_MESSAGES] = [*run.data, reply] if reply is not None else run.data
        put_attributes(span, attributes)
        return reply

    # --- tools and retrievers -------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: Any,
        parent_run_id: Any = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._recording():
            return
        try:
            name = _name(kwargs, serialized, "tool")
            run = self._open_scoped(run_id, parent_run_id, name, SpanType.TOOL)
            if run is None:
                return
            if isinstance(run.span, LiveSpan):
                run.span.set_inputs(
                    plain(inputs) if isinstance(inputs, dict) else {"input": input_str}
                )
            graph = run.parent
            while isinstance(graph, Run) and not graph.graph:
                graph = graph.parent
            if isinstance(graph, Run):  # a graph in which a tool runs is an agent
                graph.agent = True
        except Exception as exc:
            self._failed("tool-start", exc)

    def on_tool_end(self, output: Any, *, run_id: Any, **kwargs: Any) -> None:
        try:
            self.runs.finish(run_id, plain(output))
        except Exception as exc:
            self._failed("tool-end", exc)

    def on_tool_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        try:
            run = self.runs.pop(run_id)
            if run is not None:
                self._end_failed(run, error)
        except Exception as exc:
            self._failed("tool-error", exc)

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: Any,
        parent_run_id: Any = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._recording():
            return
        try:
            name = _name(kwargs, serialized, "retriever")
            run = self._open_scoped(run_id, parent_run_id, name, SpanType.RETRIEVER)
            if run is not None and isinstance(run.span, LiveSpan):
                run.span.set_inputs({"query": query})
        except Exception as exc:
            self._failed("retriever-start", exc)

    def on_retriever_end(self, documents: Any, *, run_id: Any, **kwargs: Any) -> None:
        try:
            run = self.runs.pop(run_id)
            if run is not None:
                end_span(run.span, [lm.document(d) for d in documents or ()])
        except Exception as exc:
            self._failed("retriever-end", exc)

    def on_retriever_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        try:
            run = self.runs.pop(run_id)
            if run is not None:
                self._end_failed(run, error)
        except Exception as exc:
            self._failed("retriever-error", exc)

    # --- endings --------------------------------------------------------------------------

    def _end_failed(self, run: Run, error: BaseException) -> None:
        """End a run that raised: ERROR with the exception, except a stream closed by its
        consumer (OK, marked closed early) and LangGraph's interrupts (OK, an event)."""
        span = run.span
        if isinstance(error, GeneratorExit):
            if isinstance(span, LiveSpan):
                span.set_attribute(SpanAttributeKey.GENERATOR_CLOSED_EARLY, True)
            end_span(span)
        elif _is_control_flow(error):
            if isinstance(span, LiveSpan):
                span.add_event(SpanEvent(type(error).__name__, attributes={"message": str(error)}))
            end_span(span)
        else:
            end_span(span, exc=error)
