"""OpenTelemetry ingest, one way: ``decode.py`` (pure: OTLP bytes → rows, with
``threadline.semconv`` for the attribute vocabularies) → ``writer.py`` (bounded queue, one
batch writer) → the store. ``routes.py`` is the OTLP/HTTP transport."""
