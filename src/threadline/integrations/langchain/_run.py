"""``Run``: what threadline keeps about one open LangChain run until it ends."""

from __future__ import annotations

from typing import Any

from threadline.integrations._framework import FrameworkSpan

__all__ = ["Run"]


class Run(FrameworkSpan):
    """One LangChain run being recorded (``_framework.SpanTable`` holds them by run id;
    ``data``: a chat model run's input messages)."""

    __slots__ = ("agent", "graph")

    def __init__(self, fid: Any, span: Any, parent: FrameworkSpan | None) -> None:
        FrameworkSpan.__init__(self, fid, span, parent)
        self.graph = False  # a graph run (LangGraph): AGENT when a tool ran inside it
        self.agent = False  # a graph a tool ran in, or a legacy AgentExecutor
