"""OpenTelemetry semantic conventions in threadline's terms: span types, inputs and
outputs, chat messages, model, provider and tokens.

Three vocabularies besides threadline's own keys: OpenInference, the OpenTelemetry GenAI
conventions and OpenLLMetry (``vocabulary.py``). ``mapping.py`` reads one span,
``messages.py`` turns each vocabulary's conversations into the chat format,
``otlp_rows.py`` makes store rows of OTLP spans, ``json_text.py`` bounds payload text.
Pure: imports neither the OpenTelemetry SDK nor the server, so both the server's OTLP
ingest and the in-process bridge (``threadline.otel``) use it.
"""

from __future__ import annotations

from threadline.semconv.mapping import (
    Payload,
    SpanMapping,
    map_attributes,
    span_type_of,
    threadline_attributes,
)

__all__ = ["Payload", "SpanMapping", "map_attributes", "span_type_of", "threadline_attributes"]
