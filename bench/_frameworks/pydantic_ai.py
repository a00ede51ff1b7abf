"""Workload for ``bench/frameworks.py``: one Pydantic AI agent run with one tool call.

The model is Pydantic AI's own ``TestModel`` (it calls every tool once, then answers), so a
call is the framework's work plus what tracing adds: an agent run, two model requests and
a tool call. threadline records it through Pydantic AI's OpenTelemetry instrumentation and
the bridge (``threadline.pydantic_ai.autolog()``); MLflow through ``mlflow.pydantic_ai``.
"""

from __future__ import annotations

from collections.abc import Callable

NAME = "pydantic_ai"
PACKAGES = ["pydantic-ai-slim"]
MLFLOW_FLAVOR = "pydantic_ai"


def setup(openai_base_url: str) -> Callable[[], object]:
    """The agent (``openai_base_url`` is not needed: the model is Pydantic AI's fake)."""
    from pydantic_ai import Agent
    from pydantic_ai.models.test import TestModel

    agent: Agent[None, str] = Agent(TestModel(), name="bench")

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    def call() -> object:
        return agent.run_sync("What is 1 + 2?").output

    return call
