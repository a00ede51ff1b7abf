"""The trace renderer shared by the notebook display and the web UI.

``trace_view.js`` (an ES module exporting ``renderTrace`` and ``renderTraceList``) and
``trace_view.css`` are plain files with no build step: the server serves them as they
are, and the notebook display inlines them into self-contained HTML.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["ASSET_NAMES", "EXPORT_LINE", "read_asset", "script_for_inline"]

ASSET_NAMES = ("trace_view.js", "trace_view.css")
# The module's only export statement; removed when the code is inlined as a classic script.
EXPORT_LINE = "export { renderTrace, renderTraceList };"


@cache
def read_asset(name: str) -> str:
    """The text of one of ``ASSET_NAMES``, read from the installed package."""
    if name not in ASSET_NAMES:
        raise ValueError(f"Unknown threadline UI asset {name!r}: use one of {ASSET_NAMES}.")
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


@cache
def script_for_inline() -> str:
    """``trace_view.js`` as a classic script body (its export line removed).

    Jupyter front ends run inline classic scripts everywhere, inline modules not always,
    so the notebook wraps this body in a function instead of loading it as a module.
    """
    source = read_asset("trace_view.js")
    if source.count(EXPORT_LINE) != 1:
        raise RuntimeError(f"trace_view.js must contain exactly one {EXPORT_LINE!r} line.")
    return source.replace(EXPORT_LINE, "")
