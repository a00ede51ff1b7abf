"""DSPy: one ``Predict`` call on DSPy's ``DummyLM``.

Four DSPy calls per program call (the predictor, the adapter's format, the LM, the
adapter's parse), so four spans, all in-process: the figure is the tracing cost per
framework call, with no network. ``DummyLM`` is given an endless supply of the same
answer.
"""

from __future__ import annotations

from collections.abc import Callable

NAME = "dspy"
PACKAGES = ["dspy"]
MLFLOW_FLAVOR = "dspy"


def setup(openai_base_url: str) -> Callable[[], object]:
    import itertools
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")  # no model list download
    import dspy
    from dspy.utils.dummies import DummyLM

    lm = DummyLM([{"answer": "Paris"}])
    lm.answers = itertools.repeat({"answer": "Paris"})  # DummyLM reads answers with next()
    dspy.configure(lm=lm)
    predict = dspy.Predict("question -> answer")

    def call() -> object:
        answer = predict(question="What is the capital of France?").answer
        assert answer == "Paris", answer
        return answer

    return call
