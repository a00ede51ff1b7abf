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

__all__ = [
    "configure",
    "disable",
    "disable_notebook_display",
    "enable",
    "enable_notebook_display",
    "is_enabled",
    "set_destination",
]
