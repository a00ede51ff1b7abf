"""``examples/quickstart.py`` runs offline and logs the traces the README promises."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import threadline
from threadline.entities.trace import Trace
from threadline.tracing import _runtime

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


@pytest.fixture(scope="module")
def quickstart_traces(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, list[Trace]]]:
    """Run the example in a fresh folder (default store); read back experiment "quickstart"."""
    tmp_path = tmp_path_factory.mktemp("quickstart")
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (tmp_path / "threadline.db").exists()  # the default store, in the current directory
    threadline.set_tracking_uri(f"sqlite:///{tmp_path}/threadline.db")
    try:
        experiment = threadline.get_experiment_by_name("quickstart")
        assert experiment is not None
        traces = threadline.search_traces(
            experiment_ids=[experiment.experiment_id], return_type="list"
        )
        yield result.stdout, traces
    finally:
        _runtime.reset()
        from threadline import store

        reset_store_cache = getattr(store, "reset_store_cache", None)
        if reset_store_cache is not None:
            reset_store_cache()


def test_three_agent_traces_with_every_span_type(quickstart_traces):
    stdout, traces = quickstart_traces
    assert len(traces) == 3
    assert sorted(re.findall(r"tr-[0-9a-f]{32}", stdout)) == sorted(t.info.trace_id for t in traces)
    for trace in traces:
        assert str(trace.info.state) == "OK"  # the failed tool call is caught by the agent
        root = trace.data.root_span
        assert root is not None and root.span_type == "AGENT"
        types = {span.span_type for span in trace.data.spans}
        assert {"AGENT", "RETRIEVER", "TOOL", "CHAT_MODEL"} <= types
        assert all(s.parent_id == root.span_id for s in trace.data.spans if s is not root)
        assert trace.info.tags.get("app") == "quickstart"
        assert trace.info.trace_metadata.get("user")
        assert trace.info.trace_metadata.get("session_id")


def test_one_tool_call_fails_with_an_exception_event(quickstart_traces):
    _, traces = quickstart_traces
    failed = [
        span
        for trace in traces
        for span in trace.data.spans
        if span.span_type == "TOOL" and span.status.status_code == "ERROR"
    ]
    assert len(failed) == 1
    [event] = [e for e in failed[0].events if e.name == "exception"]
    assert event.attributes["exception.type"] == "ConnectionError"
    assert "Traceback" in event.attributes["exception.stacktrace"]


def test_chat_model_spans_have_messages_completion_and_token_usage(quickstart_traces):
    _, traces = quickstart_traces
    for trace in traces:
        [chat] = trace.search_spans(span_type="CHAT_MODEL")
        roles = [message["role"] for message in chat.inputs["messages"]]
        assert roles == ["system", "user"]
        assert chat.outputs["object"] == "chat.completion"
        assert chat.outputs["choices"][0]["message"]["role"] == "assistant"
        usage = chat.attributes["threadline.token_usage"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
        assert trace.info.token_usage == usage  # summed over the trace's spans
        # the example registers a price for its fake model: the span and the trace cost
        cost = chat.attributes["threadline.llm.cost"]
        expected = (usage["input_tokens"] * 0.15 + usage["output_tokens"] * 0.60) / 1e6
        assert abs(cost["total_cost"] - expected) < 1e-12
        assert json.loads(trace.info.trace_metadata["cost"])["total_cost"] == cost["total_cost"]
        [retriever] = trace.search_spans(span_type="RETRIEVER")
        assert len(retriever.outputs) == 2 and "text" in retriever.outputs[0]
