"""Helpers of ``bench/ingest.py``: payloads, load clients, servers, store fill, queries.

Everything here runs in threadline's venv except ``client_otel_sdk`` (any venv with the
OpenTelemetry SDK and the OTLP/HTTP exporter).
"""
