"""``Record``: what threadline keeps about one open LlamaIndex span until it ends."""

from __future__ import annotations

from typing import Any

from threadline.integrations._framework import FrameworkSpan
from threadline.tracing._lifecycle import MISSING

__all__ = ["Record"]


class Record(FrameworkSpan):
    """One LlamaIndex span and its threadline span (``_framework.SpanTable`` holds them).

    ``instance`` and ``kind`` are set by the tracer as soon as the table opens it."""

    __slots__ = (
        "instance",
        "kind",
        "messages",
        "outputs",
        "own_start",
        "pending",
        "reply",
        "started",
    )

    def __init__(self, fid: Any, span: Any, parent: FrameworkSpan | None) -> None:
        FrameworkSpan.__init__(self, fid, span, parent)
        self.instance: Any = None
        self.kind = ""
        self.messages: list[dict[str, Any]] | None = None  # an LLM call's input, normalised
        self.outputs: Any = MISSING  # an LLM call's, from its end event
        self.reply: dict[str, Any] | None = None  # an LLM call's reply, normalised
        self.pending = False  # returned a stream: ends when the stream does
        self.started = False  # an LLM start event was seen (an end event will follow)
        self.own_start = False  # ... sent by this span itself, not by a folded inner call
