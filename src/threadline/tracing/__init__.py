"""``threadline.tracing``: switches and hooks of the tracing runtime."""

from threadline.tracing._controls import (
    configure,
    disable,
    disable_notebook_display,
    enable,
    enable_notebook_display,
    is_enabled,
    set_destination,
)
from threadline.tracing._propagation import (
    get_tracing_context_headers_for_http_request,
    set_tracing_context_from_http_request_headers,
)

__all__ = [
    "configure",
    "disable",
    "disable_notebook_display",
    "enable",
    "enable_notebook_display",
    "get_tracing_context_headers_for_http_request",
    "is_enabled",
    "set_destination",
    "set_tracing_context_from_http_request_headers",
]
