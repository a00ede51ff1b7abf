"""OpenAI Agents SDK: one run of an agent that calls one tool, then answers.

The agent's model is the SDK's default ``OpenAIResponsesModel`` on a real ``AsyncOpenAI``
client of the fake OpenAI server: two model calls over HTTP on loopback (the tool call,
then the answer) and one function tool, so the run has seven SDK spans (the trace, agent,
two turns, two responses, the tool). The run goes through ``Runner.run`` on an event loop
the workload keeps (``run_sync`` would reuse and half-close the thread's default loop).

The SDK's default trace processor (which exports to OpenAI) is taken out first, so that
both contenders pay only for their own processor. MLflow's Agents SDK tracing comes with
``mlflow.openai.autolog()``.
"""

from __future__ import annotations

from collections.abc import Callable

NAME = "openai_agents"
PACKAGES = ["openai-agents", "openai"]
MLFLOW_FLAVOR = "openai"


def setup(openai_base_url: str) -> Callable[[], object]:
    import asyncio

    import openai
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_trace_processors

    set_trace_processors([])  # no export to OpenAI from the SDK's default processor

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    loop = asyncio.new_event_loop()
    client = openai.AsyncOpenAI(base_url=openai_base_url, api_key="sk-bench", max_retries=0)
    agent = Agent(
        name="Assistant",
        instructions="You are a helpful assistant.",
        model=OpenAIResponsesModel(model="gpt-4o-mini", openai_client=client),
        tools=[get_weather],
    )

    def call() -> object:
        result = loop.run_until_complete(Runner.run(agent, "What is the weather in Paris?"))
        assert result.final_output == "Hello! How can I help you today?", result.final_output
        return result.final_output

    return call
