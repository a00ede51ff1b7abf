"""One threadline span per span (run, call) a framework reports, keyed by the framework's ids.

A framework with a callback or processor API reports "X started (parent P)" and later "X
ended", naming X and P by ids of its own. ``SpanTable`` keeps a ``FrameworkSpan`` per open
X, so that each end finds its span and each start its parent.

*Parent.* ``open(..., parent=entry)`` puts the span under the parent's span, or under the
current span when threadline code running inside the parent opened it since (a
``@threadline.trace`` function in a tool that starts a run); without a parent, under the
current span (a ``@threadline.trace`` function around the framework call), else a root.

*Scope.* ``open(..., scope=True)`` (the default) makes the span current in this context
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
then still holds the span, the next end of an enclosing scope restores past it. A
framework whose calls nest (a decorator or ``with`` around each) can use a
``SpanTable(..., nested=True)``: a scope is then undone by resetting what it set, which
costs less and gives the same in that case, cross-context ends included.

*Aliases.* ``alias(fid, entry)`` sends the events and children of ``fid`` to ``entry`` (an
inner call folded into its outer one); they go with it when it closes.

*Batches.* ``starter``: the framework frame that started the span. Spans started by one
frame while an earlier one it started is open are a batch (all started before any runs):
they are not made current, except the first when ``batch_keeps_first`` (a batch of model
calls, whose client calls stay hidden); otherwise the first one's scope ends, so that no
span's code sees a sibling's span, which may belong to another trace.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
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
        "calling",
        "calling_token",
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

    # Set when the scope begins, read only while ``scoped``. ``token``: from making the
    # span current. A table's: ``prev_span`` / ``prev_calling``, what was current before;
    # ``below``, the table's scope that was current then. A nested table's: ``calling``,
    # the value it gave ``_calling`` (or KEEP), and ``calling_token``.
    token: Token[Any]
    prev_span: Any
    prev_calling: Any
    below: FrameworkSpan | None
    calling: Any
    calling_token: Token[Any] | None

    def __init__(self, fid: Any, span: Span, parent: FrameworkSpan | None) -> None:
        self.fid = fid  # the framework's id of the span that opened it
        self.span = span
        self.parent = parent
        self.data: Any = None
        self.aliases: list[Any] | None = None
        self.scoped = False
        self.starter: int | None = None

    @property
    def live(self) -> LiveSpan | None:
        """The span if it records (not the non-recording span of an unsampled trace)."""
        span = self.span
        return span if isinstance(span, LiveSpan) and not span._ended else None


E = TypeVar("E", bound=FrameworkSpan)


class SpanTable(Generic[E]):
    """The open spans of one integration by framework id (any hashable id), entries of
    class ``entry``. Dict operations are atomic: threads and tasks need no lock.

    ``nested=True``: the framework ends the spans of each context in the reverse order it
    began them (a decorator or a ``with`` around each call: DSPy, LlamaIndex), so a scope
    is undone by resetting what it set (see the module docstring); no batches then.
    """

    __slots__ = ("_entries", "_make", "_nested", "_scoped", "_starters", "get", "leave")

    def __init__(self, entry: type[E], nested: bool = False) -> None:
        self._make = entry
        self._nested = nested
        self._entries: dict[Any, E] = {}
        # The entry of an id, or None: the dict's own ``get`` (a start looks up its parent).
        self.get: Callable[[Any], E | None] = self._entries.get
        # End an entry's scope: the span is no longer current (it may stay open).
        self.leave: Callable[[E], None] = self._leave_nested if nested else self._leave
        self._scoped: dict[int, E] = {}  # id(span) -> its entry, while its scope is open
        # id(frame) -> [the frame, its open spans, the first of them]: see ``open``
        self._starters: dict[int, list[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

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
            if self._nested:
                raise ValueError("a nested SpanTable has no batches: open it without starter")
            entry = self._starters.get(id(starter))
            if entry is None:
                self._starters[id(starter)] = entry = [starter, 0, None]
            else:
                first = entry[2]
                scope = False
                if first is not None and not batch_keeps_first:
                    self.leave(first)
            entry[1] += 1
        if parent is not None:
            where: Any = self.parent_span(parent)
        elif first is not None and first.scoped:
            where = first.prev_span  # the span current before the batch
        else:
            where = MISSING  # the current span
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
        if not scope:
            return opened
        opened.scoped = True  # the span current from here (``leave`` undoes it)
        if self._nested:
            opened.token = current_span.set(span)
            opened.calling = calling
            opened.calling_token = None if calling is KEEP else _calling.set(calling)
        else:
            prev = current_span.get()
            opened.prev_span = prev
            opened.prev_calling = _calling.get()
            opened.below = self._scoped.get(id(prev)) if prev is not None else None
            self._scoped[id(span)] = opened
            opened.token = current_span.set(span)
            if calling is not KEEP:
                _calling.set(calling)
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

    def _leave(self, entry: E) -> None:
        """``leave`` (see the module docstring)."""
        if not entry.scoped:
            return
        entry.scoped = False
        span = entry.span
        scoped = self._scoped
        scoped.pop(id(span), None)
        top = current_span.get()
        if top is not span:
            if id(top) in scoped:
                return  # a later scope is on top: its end restores past this one
            try:  # succeeds only in the context the scope began in (``top`` ended elsewhere)
                current_span.reset(entry.token)
            except (ValueError, RuntimeError):
                return  # another context, where something else is current: left alone
        prev, calling, below = entry.prev_span, entry.prev_calling, entry.below
        while below is not None and not below.scoped:  # scopes that ended under this one
            prev, calling, below = below.prev_span, below.prev_calling, below.below
        current_span.set(prev)
        if _calling.get() is not calling:
            _calling.set(calling)

    def _leave_nested(self, entry: E) -> None:
        """``leave`` of a nested table: undo what the scope set."""
        if not entry.scoped:
            return
        entry.scoped = False
        try:
            current_span.reset(entry.token)
        except (ValueError, RuntimeError):
            _undo_elsewhere(current_span, entry.token, entry.span)
        calling_token = entry.calling_token
        if calling_token is not None:
            try:
                _calling.reset(calling_token)
            except (ValueError, RuntimeError):
                _undo_elsewhere(_calling, calling_token, entry.calling)

    # --- endings ----------------------------------------------------------------------------

    def pop(self, fid: Any) -> E | None:
        """Forget ``fid``. For the id that opened the entry: the entry (its aliases too)
        and its scope, without ending its span (the caller does); for an alias: that id
        only (``entry.fid != fid`` tells)."""
        entry = self._entries.pop(fid, None)
        if entry is None:
            return None
        own = entry.fid
        aliases = entry.aliases
        if own is not fid and own != fid:  # ``is`` first: a UUID compares in Python code
            if aliases is not None and fid in aliases:
                aliases.remove(fid)
            return entry
        if aliases is not None:
            entry.aliases = None
            entries = self._entries
            for alias in aliases:
                entries.pop(alias, None)
        if entry.scoped:
            self.leave(entry)
        starter = entry.starter
        if starter is not None:
            entry.starter = None
            self._release(starter)
        return entry

    def finish(
        self, fid: Any, outputs: Any = MISSING, exc: BaseException | None = None
    ) -> E | None:
        """``pop`` and end the span (not for an alias); returns the entry, if any."""
        entry = self.pop(fid)
        if entry is not None and (entry.fid is fid or entry.fid == fid):
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
        fid = entry.fid
        if self._entries.get(fid) is entry:
            self.pop(fid)
        else:  # let go of already (or its id taken since): only its scope may be left
            self.leave(entry)
        end_span(entry.span, outputs, exc=exc, owned=owned)

    def _release(self, starter: int) -> None:
        entry = self._starters.get(starter)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self._starters[starter]


def _undo_elsewhere(var: ContextVar[Any], token: Token[Any], value: Any) -> None:
    """Undo the ``set`` that gave ``token`` in another context than the one it was made in
    (an end reported by a callback on a future): only where ``var`` still holds ``value``,
    the value set."""
    if var.get() is value:
        old = token.old_value
        var.set(None if old is Token.MISSING else old)
