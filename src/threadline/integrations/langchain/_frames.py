"""Which LangChain code started a run, read from the call stack.

The callback manager does not say whether a run was started by ``invoke`` or inside a
generator (``stream``, a LangGraph graph), which decides whether the run's span can be made
current (see ``integrations/_framework/_spans.py``), nor whether a chain run is a
LangGraph graph. The frame that called the callback manager says both.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

_GENERATOR_FLAGS = 0x20 | 0x200  # inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
_GRAPH_METHODS = frozenset({"stream", "astream"})
# Frames walked past: LangChain's callback manager and threadline's handler.
_SKIPPED_MODULES = frozenset(
    {
        "langchain_core.callbacks.manager",
        "threadline.integrations.langchain._handler",
        __name__,
    }
)


def starter() -> FrameType | None:
    """The frame of the LangChain code that asked the callback manager to start a run."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(10):
        if frame is None:
            return None
        if frame.f_globals.get("__name__") not in _SKIPPED_MODULES:
            return frame
        frame = frame.f_back
    return None


def in_generator(frame: FrameType | None) -> bool:
    """Whether the run was started inside a generator or async generator: the window
    between its start and end callbacks then spans yields to the consumer."""
    return frame is not None and bool(frame.f_code.co_flags & _GENERATOR_FLAGS)


def is_graph(frame: FrameType | None, metadata: Any) -> bool:
    """Whether a chain run is a LangGraph graph: started by its ``stream``/``astream``, or
    (should LangGraph move that code) tagged by LangGraph without being one of its nodes."""
    if (
        frame is not None
        and frame.f_code.co_name in _GRAPH_METHODS
        and str(frame.f_globals.get("__name__")).startswith("langgraph.")
    ):
        return True
    return (
        isinstance(metadata, dict)
        and metadata.get("ls_integration") == "langgraph"
        and "langgraph_node" not in metadata
    )
