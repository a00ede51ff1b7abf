"""Helpers of ``bench/overhead.py``: peer venvs, workers, the OTLP sink and the report.

The worker modules (``worker_*.py``), ``harness.py`` and ``otlp_sink.py`` run inside the
peers' venvs, so they import nothing but the standard library and the peer under test.
"""
