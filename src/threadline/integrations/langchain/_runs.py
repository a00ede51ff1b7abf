"""Spans keyed by a framework's run ids, and the span made current while a run's code runs.

Framework-neutral: a callback-based framework (LangChain's callback handlers and the like)
announces each run's start and end with the run's id and its parent's. ``RunSpans`` opens
one threadline span per run, under the span of the parent run when that is known, else
under the current threadline span (a ``@trace`` function around the framework call).

*Scope.* For a run whose code executes between its start and end callbacks in the caller's
context (a tool, a retriever, an invoked chain), the run's span is made current there at
the start and the previous span restored at the end, so that ``@trace`` code and client
autologging inside the run nest under it. A scope can also hide inner client calls (see
``_llm_call.Config.hides_inner_calls``): a chat model run's span records the request, reply
and tokens, so the provider SDK call it makes is not recorded apart. Scopes may end out of
order (a batch of model calls starts them all before any ends); ending one that another
has covered leaves the current span alone, and the last one restores the span that was
current before all the runs that have already ended.
"""

from __future__ import annotations

from typing import Any

from threadline.integrations._llm_call import Config, _calling
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import MISSING, begin_span, end_span
from threadline.tracing._noop import NoOpSpan
from threadline.tracing._span import LiveSpan

Span = LiveSpan | NoOpSpan


class Run:
    """One framework run being recorded: its span, its parent run and its scope state."""

    __slots__ = (
        "agent",
        "data",
        "graph",
        "parent",
        "prev_calling",
        "prev_run",
        "prev_span",
        "scoped",
        "span",
        "starter",
    )

    def __init__(self, span: Span, parent: Run | None) -> None:
        self.span = span
        self.parent = parent
        self.scoped = False
        self.prev_span: Any = None
        self.prev_calling: Any = None
        self.prev_run: Run | None = None
        self.graph = False  # a graph run (LangGraph): AGENT when a tool ran inside it
        self.agent = False
        self.data: Any = None  # the integration's own (a chat model run's input messages)
        self.starter: int | None = None


class RunSpans:
    """The open runs of one integration, by run id (any hashable id)."""

    def __init__(self, hide: Config) -> None:
        self._hide = hide  # put in ``_calling`` by scopes that hide inner client calls
        self._runs: dict[Any, Run] = {}
        self._scoped: dict[int, Run] = {}  # id(span) -> its run, while the scope is open
        # id(frame) -> [the frame, its open runs, the first of them]: see ``start``
        self._starters: dict[int, list[Any]] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, run_id: Any) -> Run | None:
        return self._runs.get(run_id)

    def start(
        self,
        run_id: Any,
        parent_run_id: Any,
        name: str,
        span_type: str,
        *,
        scope: bool,
        hide_inner: bool = False,
        starter: Any = None,
        batch_keeps_first: bool = False,
    ) -> Run | None:
        """Open the run's span; None when tracing is off. ``scope``: make it current.

        ``starter``: the framework frame that started the run. Runs started by one frame
        while an earlier one it started is still open are a batch (all the runs are started
        before any of them runs): the batch's runs are not made current, except the first
        when ``batch_keeps_first`` (a batch of model calls, whose inner client calls stay
        hidden); otherwise the first one's scope ends, so that no run's code sees a
        sibling's span, which may belong to another trace.
        """
        first = None
        if starter is not None:
            entry = self._starters.get(id(starter))
            if entry is None:
                self._starters[id(starter)] = entry = [starter, 0, None]
            else:
                first = entry[2]
                scope = False
                if first is not None and not batch_keeps_first:
                    self.leave(first)
            entry[1] += 1
        parent_run = self._runs.get(parent_run_id) if parent_run_id is not None else None
        if parent_run is None and first is not None and first.scoped:
            parent: Any = first.prev_span  # the span current before the batch
        else:
            parent = self._parent_span(parent_run)
        span = begin_span(name, span_type, None, parent=parent)
        if span is None:
            if starter is not None:
                self._release(id(starter))
            return None
        run = Run(span, parent_run)
        if starter is not None:
            run.starter = id(starter)
            if first is None:
                self._starters[run.starter][2] = run
        self._runs[run_id] = run
        if scope:
            self.enter(run, hide_inner)
        return run

    def _release(self, starter: int) -> None:
        entry = self._starters.get(starter)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self._starters[starter]

    def _parent_span(self, parent_run: Run | None) -> Any:
        """The parent run's span; or the current span when threadline code running inside
        the parent run (a ``@trace`` function in a tool) opened it; MISSING (the current
        span) for a run with no known parent."""
        if parent_run is None:
            return MISSING
        parent = parent_run.span
        current = current_span.get()
        if (
            isinstance(current, LiveSpan)
            and isinstance(parent, LiveSpan)
            and current is not parent
            and id(current) not in self._scoped
            and not current._ended
            and current._trace_state is parent._trace_state
            and current._start_time_ns >= parent._start_time_ns
        ):
            return current
        return parent

    def enter(self, run: Run, hide_inner: bool) -> None:
        """Make the run's span current in this context (and hide inner client calls)."""
        span = run.span
        run.prev_span = current_span.get()
        run.prev_calling = _calling.get()
        run.prev_run = self._scoped.get(id(run.prev_span)) if run.prev_span is not None else None
        run.scoped = True
        self._scoped[id(span)] = run
        current_span.set(span)
        if hide_inner:
            _calling.set(self._hide)

    def leave(self, run: Run) -> None:
        """End the run's scope: restore what was current before it, if it is still on top."""
        if not run.scoped:
            return
        run.scoped = False
        self._scoped.pop(id(run.span), None)
        if current_span.get() is not run.span:
            return  # a later scope is on top: its end restores past this one
        span, calling, below = run.prev_span, run.prev_calling, run.prev_run
        while below is not None and not below.scoped:  # scopes that ended under this one
            span, calling, below = below.prev_span, below.prev_calling, below.prev_run
        current_span.set(span)
        _calling.set(calling)

    def finish(
        self, run_id: Any, outputs: Any = MISSING, exc: BaseException | None = None
    ) -> Run | None:
        """End the run's scope and span; returns the run (None if it was not recorded)."""
        run = self.pop(run_id)
        if run is not None:
            end_span(run.span, outputs, exc=exc)
        return run

    def pop(self, run_id: Any) -> Run | None:
        """Forget the run without ending its span (the caller ends it)."""
        run = self._runs.pop(run_id, None)
        if run is not None:
            self.leave(run)
            if run.starter is not None:
                self._release(run.starter)
        return run
