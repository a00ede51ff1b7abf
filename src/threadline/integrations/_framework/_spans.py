"""One threadline span per span (run, call) a framework reports, keyed by the framework's ids.

A framework with a callback or processor API reports "X started (parent P)" and later "X
ended", naming X and P by ids of its own. ``SpanTable`` keeps a ``FrameworkSpan`` per open
X, so that each end finds its span and each start its parent.

*Parent.* ``open(..., parent=entry)`` puts the span under the parent's span, or under the
current span when threadline code running inside the parent opened it since (a
``@threadline.trace`` function in a tool that starts a run); without a parent, under the
current span (a ``@threadline.trace`` function around the framework call), else a root.

*Scope.* ``open(..., scope=True)`` (or ``enter``) makes the span current in this context
until ``leave``/``close``, so that ``@threadline.trace`` code and LLM client autologging
inside the framework's code nest under it. ``calling`` is what the shared LLM-call wrapper
(``_llm_call``) sees meanwhile as the integration making the call: the integration's
``Config`` for a model-call span, which records the request, reply and tokens itself, so
the client's own span of that call is not recorded apart (``Config.hides_inner_calls``);
``None`` to record client calls again (a tool run inside a model call); ``KEEP`` to leave it.

*Out of order.* Leaving a scope restores what was current before it, skipping the scopes
that have ended since, unless a later scope of the table that is still open is on top (the
framework ends spans out of order: the later one's end restores past this one). A
framework may report an end in another context than the start (a callback on a future):
there the span is undone only if it is still current, and in the start's context, which
then still holds the span, the next end of an enclosing scope restores past it.

*Aliases.* ``alias(fid, entry)`` sends the events and children of ``fid`` to ``entry`` (an
inner call folded into its outer one); they go with it when it closes.

*Batches.* ``starter``: the framework frame that started the span. Spans started by one
frame while an earlier one it started is open are a batch (all started before any runs):
they are not made current, except the first when ``batch_keeps_first`` (a batch of model
calls, whose client calls stay hidden); otherwise the first one's scope ends, so that no
span's code sees a sibling's span, which may belong to another trace.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any, Generic, TypeVar

from threadline.integrations._llm_call import _calling
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import MISSING, begin_span, end_span
from threadline.tracing._noop import NoOpSpan
from threadline.tracing._span import LiveSpan

Span = LiveSpan | NoOpSpan
KEEP: Any = object()  # ``calling``: leave the calling integration as it is

__all__ = ["KEEP", "FrameworkSpan", "SpanTable"]


class FrameworkSpan:
    """One open framework span: its threadline span, its parent's entry and its scope.

    ``data`` holds what the integration keeps until the end (a model call's input
    messages); an integration that keeps more subclasses this class, adding slots."""

    __slots__ = (
        "aliases",
        "below",
        "data",
        "fid",
        "parent",
        "prev_calling",
        "prev_span",
        "scoped",
        "span",
        "starter",
        "token",
    )

    def __init__(self, fid: Any, span: Span, parent: FrameworkSpan | None) -> None:
        self.fid = fid  # the framework's id of the span that opened it
        self.span = span
        self.parent = parent
        self.data: Any = None
        self.aliases: list[Any] | None = None
        self.scoped = False
        self.prev_span: Any = None
        self.prev_calling: Any = None
        self.below: FrameworkSpan | None = None  # the scope current when this one began
        self.token: Token[Any] | None = None
        self.starter: int | None = None

    @property
    def live(self) -> LiveSpan | None:
        """The span if it records (not the non-recording span of an unsampled trace)."""
        span = self.span
        return span if isinstance(span, LiveSpan) and not span._ended else None


E = TypeVar("E", bound=FrameworkSpan)


class SpanTable(Generic[E]):
    """The open spans of one integration by framework id (any hashable id), entries of
    class ``entry``. Dict operations are atomic: threads and tasks need no lock."""

    __slots__ = ("_entries", "_make", "_scoped", "_starters")

    def __init__(self, entry: type[E]) -> None:
        self._make = entry
        self._entries: dict[Any, E] = {}
        self._scoped: dict[int, E] = {}  # id(span) -> its entry, while its scope is open
        # id(frame) -> [the frame, its open spans, the first of them]: see ``open``
        self._starters: dict[int, list[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, fid: Any) -> E | None:
        return self._entries.get(fid)

    def open(
        self,
        fid: Any,
        name: str,
        span_type: str,
        *,
        parent: E | None = None,
        attributes: dict[str, Any] | None = None,
        scope: bool = True,
        calling: Any = KEEP,
        starter: Any = None,
        batch_keeps_first: bool = False,
    ) -> E | None:
        """Begin the span of ``fid``; None when tracing is off (see the module docstring
        for ``parent``, ``scope``, ``calling``, ``starter`` and ``batch_keeps_first``)."""
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
        if parent is None and first is not None and first.scoped:
            where: Any = first.prev_span  # the span current before the batch
        else:
            where = self.parent_span(parent)
        span = begin_span(name, span_type, attributes, parent=where)
        if span is None:
            if starter is not None:
                self._release(id(starter))
            return None
        opened = self._make(fid, span, parent)
        if starter is not None:
            opened.starter = id(starter)
            if first is None:
                self._starters[opened.starter][2] = opened
        self._entries[fid] = opened
        if scope:
            self.enter(opened, calling)
        return opened

    def parent_span(self, parent: E | None) -> Any:
        """Where a span whose framework parent is ``parent`` goes: the parent's span; or
        the current span when threadline code running inside the parent (a ``@trace``
        function in a tool) opened it; MISSING (the current span) without a parent."""
        if parent is None:
            return MISSING
        mapped = parent.span
        current = current_span.get()
        if (
            isinstance(current, LiveSpan)
            and isinstance(mapped, LiveSpan)
            and current is not mapped
            and id(current) not in self._scoped
            and not current._ended
            and current._trace_state is mapped._trace_state
            and current._start_time_ns >= mapped._start_time_ns
        ):
            return current
        return mapped

    def alias(self, fid: Any, entry: E) -> None:
        """Events and children of ``fid`` go to ``entry`` (an inner call folded into it)."""
        self._entries[fid] = entry
        if entry.aliases is None:
            entry.aliases = [fid]
        else:
            entry.aliases.append(fid)

    # --- scopes -----------------------------------------------------------------------------

    def enter(self, entry: E, calling: Any = KEEP) -> None:
        """Make the entry's span current in this context (``calling``: module docstring)."""
        span = entry.span
        prev = current_span.get()
        entry.prev_span = prev
        entry.prev_calling = _calling.get()
        entry.below = self._scoped.get(id(prev)) if prev is not None else None
        entry.scoped = True
        self._scoped[id(span)] = entry
        entry.token = current_span.set(span)
        if calling is not KEEP:
            _calling.set(calling)

    def leave(self, entry: E) -> None:
        """End the entry's scope: the span is no longer current (it may stay open)."""
        if not entry.scoped:
            return
        entry.scoped = False
        self._scoped.pop(id(entry.span), None)
        top = current_span.get()
        if top is not entry.span:
            if id(top) in self._scoped:
                return  # a later scope is on top: its end restores past this one
            token = entry.token
            if token is None:
                return
            try:  # succeeds only in the context the scope began in (``top`` ended elsewhere)
                current_span.reset(token)
            except (ValueError, RuntimeError):
                return  # another context, where something else is current: left alone
        span, calling, below = entry.prev_span, entry.prev_calling, entry.below
        while below is not None and not below.scoped:  # scopes that ended under this one
            span, calling, below = below.prev_span, below.prev_calling, below.below
        current_span.set(span)
        _calling.set(calling)

    # --- endings ----------------------------------------------------------------------------

    def pop(self, fid: Any) -> E | None:
        """Forget ``fid``. For the id that opened the entry: the entry (its aliases too)
        and its scope, without ending its span (the caller does); for an alias: that id
        only (``entry.fid != fid`` tells)."""
        entry = self._entries.pop(fid, None)
        if entry is not None:
            if entry.fid == fid:
                self._forget(entry)
            elif entry.aliases is not None and fid in entry.aliases:
                entry.aliases.remove(fid)
        return entry

    def finish(
        self, fid: Any, outputs: Any = MISSING, exc: BaseException | None = None
    ) -> E | None:
        """``pop`` and end the span (not for an alias); returns the entry, if any."""
        entry = self.pop(fid)
        if entry is not None and entry.fid == fid:
            end_span(entry.span, outputs, exc=exc)
        return entry

    def close(
        self,
        entry: E,
        outputs: Any = MISSING,
        exc: BaseException | None = None,
        owned: bool = False,
    ) -> None:
        """Forget the entry, its aliases and its scope, and end its span (``owned``: the
        outputs are a fresh value that needs no snapshot copy, see ``end_span``)."""
        entries = self._entries
        if entries.get(entry.fid) is entry:
            del entries[entry.fid]
        self._forget(entry)
        end_span(entry.span, outputs, exc=exc, owned=owned)

    def _forget(self, entry: E) -> None:
        aliases, entry.aliases = entry.aliases, None
        if aliases:
            entries = self._entries
            for fid in aliases:
                entries.pop(fid, None)
        self.leave(entry)
        starter, entry.starter = entry.starter, None
        if starter is not None:
            self._release(starter)

    def _release(self, starter: int) -> None:
        entry = self._starters.get(starter)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self._starters[starter]
