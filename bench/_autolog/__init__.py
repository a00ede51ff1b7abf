"""What the autolog benchmarks share (``autolog.py`` for LLM clients, ``frameworks.py`` for
agent frameworks): the fake OpenAI server process, MLflow's venv and the packages it needs,
each contender's tracking setup, and the alternating off/on timing of calls.

Standard library only at import time: the MLflow worker runs these modules in MLflow's venv.
"""
