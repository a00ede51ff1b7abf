"""Spans opened and closed by a framework's callbacks, keyed by the framework's own ids.

Framework-neutral: a framework that reports "span X started (parent P)" and later "span X
ended" gets a threadline span per X, the current span while X's code runs, so that
``@trace`` code and LLM client calls inside X nest under it. The table maps the
framework's ids to ``Record``s; several ids may share one record (an inner call folded
into its outer one), and the record lists those aliases so that they go with it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from threadline.integrations._llm_call import Config, _calling
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import MISSING, begin_span, end_span
from threadline.tracing._noop import NoOpSpan
from threadline.tracing._span import LiveSpan

Span = LiveSpan | NoOpSpan
KEEP: Any = object()  # ``SpanTable.open``: leave the calling integration as it is


class Record:
    """One framework span and its threadline span, open until the framework ends it."""

    __slots__ = (
        "aliases",
        "calling",
        "fid",
        "hide",
        "instance",
        "kind",
        "messages",
        "outputs",
        "own_start",
        "pending",
        "reply",
        "span",
        "started",
        "token",
    )

    def __init__(self, fid: str, span: Span, instance: Any, kind: str) -> None:
        self.fid = fid  # the framework's id of the span that opened it
        self.span = span
        self.instance = instance
        self.kind = kind
        self.aliases: list[str] = []
        self.token: Token[Any] | None = None
        self.calling: Token[Any] | None = None
        self.hide: Config | None = None  # the calling integration while current
        self.messages: list[dict[str, Any]] | None = None  # an LLM call's input, normalised
        self.outputs: Any = MISSING
        self.reply: dict[str, Any] | None = None  # an LLM call's reply, normalised
        self.pending = False  # returned a stream: ends when the stream does
        self.started = False  # an LLM start event was seen (an end event will follow)
        self.own_start = False  # ... sent by this span itself, not by a folded inner call


class SpanTable:
    """Open records by framework id (dict operations are atomic: no lock is needed)."""

    __slots__ = ("records",)

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}

    def get(self, fid: str | None) -> Record | None:
        return self.records.get(fid) if fid is not None else None

    def open(
        self,
        fid: str,
        name: str,
        span_type: str,
        instance: Any,
        kind: str,
        calling: Any = KEEP,
    ) -> Record | None:
        """Begin a span under the current one and make it current; None if not tracing.

        ``calling``: what the shared LLM-call wrapper (``_llm_call``) sees as the calling
        integration while the span is current: a ``Config`` that hides inner client calls,
        ``None`` to record them again (a tool run inside an LLM call), or ``KEEP``."""
        span = begin_span(name, span_type, None)
        if span is None:
            return None
        record = Record(fid, span, instance, kind)
        record.token = current_span.set(span)
        if calling is not KEEP:
            record.hide = calling
            record.calling = _calling.set(calling)
        self.records[fid] = record
        return record

    def alias(self, fid: str, record: Record) -> None:
        """Events and children of ``fid`` go to ``record`` (an inner call folded into it)."""
        self.records[fid] = record
        record.aliases.append(fid)

    def leave(self, record: Record) -> None:
        """The span's code returned: it is no longer current (it may stay open)."""
        token, record.token = record.token, None
        if token is not None:
            _restore(current_span, token, record.span)
        calling, record.calling = record.calling, None
        if calling is not None:
            _restore(_calling, calling, record.hide)

    def close(
        self,
        record: Record,
        outputs: Any = MISSING,
        exc: BaseException | None = None,
        owned: bool = True,
    ) -> None:
        """End the record's span and forget it and its aliases.

        ``owned``: the outputs are fresh recordable values (``_values``) that need no copy."""
        records = self.records
        for fid in record.aliases:
            records.pop(fid, None)
        records.pop(record.fid, None)
        self.leave(record)
        if outputs is MISSING:
            outputs = record.outputs
        end_span(record.span, outputs, exc=exc, owned=owned)


def _restore(var: ContextVar[Any], token: Token[Any], expected: Any) -> None:
    """Put ``var`` back as it was before ``token``'s ``set``.

    The framework may report the end in another context than the start (a callback on a
    future): then the token cannot be used there, and the value is only undone if it is
    still the one set."""
    try:
        var.reset(token)
    except (ValueError, RuntimeError):
        if var.get() is expected:
            old = token.old_value
            var.set(None if old is Token.MISSING else old)
