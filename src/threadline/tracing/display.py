"""Inline display of traces in Jupyter, as self-contained HTML (no server needed).

The runtime calls ``install_if_notebook()`` at the first trace of a process that has
imported IPython. In a notebook it registers two cell hooks and sets ``RT.on_trace_end``
to append each finished trace id to the current cell's list. After the cell runs, the
traces it finished, and those in a displayed ``search_traces()`` result, are shown as one
HTML bundle drawn by ``threadline/ui/trace_view.js``. IPython is imported only inside
functions, and nothing here raises into the notebook.
"""

from __future__ import annotations

import html
import json
import math
import sys
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

from threadline import settings
from threadline.entities.trace import Trace
from threadline.tracing import _safety
from threadline.tracing._runtime import RT

__all__ = ["display_traces", "install_if_notebook", "trace_html", "traces_bundle", "traces_html"]

_shell: Any = None  # the IPython shell whose cell hooks are registered
_cell_trace_ids: deque[str] = deque()


def install_if_notebook() -> bool:
    """In an IPython kernel, hook the cells so that new traces are shown; else do nothing."""
    global _shell
    try:
        shell = _notebook_shell()
        if shell is None:
            return False
        if _shell is not shell:
            shell.events.register("pre_run_cell", _on_pre_run_cell)
            shell.events.register("post_run_cell", _on_post_run_cell)
            _shell = shell
        if RT.on_trace_end is None:
            _start_cell()
        return True
    except Exception as exc:
        _report(exc)
        return False


def _notebook_shell() -> Any:
    """The running IPython shell, unless there is none or it is a terminal (no HTML there)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    if shell is None or type(shell).__module__.startswith("IPython.terminal"):
        return None
    return shell


def _start_cell() -> None:
    """A fresh list for the cell about to run; only the newest N trace ids are kept."""
    global _cell_trace_ids
    ids: deque[str] = deque(maxlen=settings.MAX_TRACES_TO_DISPLAY_IN_NOTEBOOK.get())
    _cell_trace_ids = ids
    RT.on_trace_end = ids.append


def _on_pre_run_cell(info: Any) -> None:
    try:
        _start_cell()
    except Exception as exc:
        _report(exc)


def _on_post_run_cell(result: Any) -> None:
    try:
        trace_ids = list(_cell_trace_ids)
        _cell_trace_ids.clear()
        if RT.notebook_display:
            traces = _traces_to_show(trace_ids, getattr(result, "result", None))
            if traces:
                display_traces(traces)
    except Exception as exc:
        _report(exc)


def _report(exc: Exception) -> None:
    _safety.log_once(
        "notebook-display",
        f"threadline: could not display traces in the notebook: {type(exc).__name__}: {exc}",
        exc,
    )
    if _safety.should_raise():
        raise exc


def _traces_to_show(trace_ids: Sequence[str], cell_result: Any) -> list[Trace]:
    """The cell's finished traces (oldest first), then those in its displayed result."""
    limit = settings.MAX_TRACES_TO_DISPLAY_IN_NOTEBOOK.get()
    # A Trace as the cell's value is already drawn by IPython through Trace._repr_html_.
    skip = {cell_result.info.trace_id} if isinstance(cell_result, Trace) else set()
    traces = _load(trace_ids, skip) if trace_ids else []
    seen = {t.info.trace_id for t in traces} | skip
    for trace in _traces_in_result(cell_result):
        if trace.info.trace_id not in seen:
            seen.add(trace.info.trace_id)
            traces.append(trace)
    return traces[:limit]


def _load(trace_ids: Sequence[str], skip: set[str]) -> list[Trace]:
    from threadline._flush import flush_pending_for_read
    from threadline._query import get_trace

    flush_pending_for_read()
    loaded = (get_trace(trace_id) for trace_id in trace_ids if trace_id not in skip)
    return [trace for trace in loaded if trace is not None]


def _traces_in_result(value: Any) -> list[Trace]:
    """Traces in a ``search_traces()`` result: a list of ``Trace`` or a DataFrame's column."""
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, Trace) for item in value):
            return list(value)
        return []
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.DataFrame) and "trace" in value.columns:
        return [item for item in value["trace"] if isinstance(item, Trace)]
    return []


def display_traces(traces: Sequence[Trace]) -> None:
    """Show ``traces`` in the current IPython output as one HTML bundle."""
    from IPython.display import display

    display(traces_bundle(traces), raw=True)


def traces_bundle(traces: Sequence[Trace]) -> dict[str, str]:
    """The MIME bundle of ``traces``: the interactive HTML and a plain-text fallback."""
    return {"text/html": traces_html(traces), "text/plain": _traces_text(traces)}


def trace_html(trace: Trace) -> str | None:
    """``Trace._repr_html_``: the HTML view, or ``None`` while notebook display is off."""
    return traces_html([trace]) if RT.notebook_display else None


def traces_html(traces: Sequence[Trace]) -> str:
    """Self-contained HTML (inline CSS, JS and data) that draws ``traces`` with no server."""
    from threadline.ui import read_asset, script_for_inline

    uid = f"tl-{uuid.uuid4().hex}"
    data = script_json([trace.to_dict() for trace in traces])
    return (
        f'<div class="tl-nb" id="{uid}">'
        f"<style>{read_asset('trace_view.css')}</style>"
        f'<div class="tl-nb-fallback">{_fallback_html(traces)}</div>'
        f'<div class="tl-nb-view"></div>'
        f'<script type="application/json" class="tl-nb-data">{data}</script>'
        f'<script>(function () {{"use strict";\n{script_for_inline()}\n'
        f"{_BOOT % json.dumps(uid)}}})();</script>"
        "</div>"
    )


# Finds this output's elements (by the running script, else by id), draws the traces and
# removes the static fallback.
_BOOT = """var script = document.currentScript;
var box = (script && script.closest && script.closest(".tl-nb")) || document.getElementById(%s);
if (box) {
  var data = JSON.parse(box.querySelector(".tl-nb-data").textContent);
  renderTraceList(box.querySelector(".tl-nb-view"), data);
  var fallback = box.querySelector(".tl-nb-fallback");
  if (fallback) fallback.remove();
}
"""


def script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``.

    It is ASCII too (as are the CSS and JS), so the HTML reads right in a page of any encoding.
    """
    try:
        text = json.dumps(value, allow_nan=False, default=repr)
    except ValueError:  # NaN or infinity, which JSON.parse rejects: written as strings
        text = json.dumps(_finite(value), default=repr)
    for char, escape in _SCRIPT_ESCAPES:
        text = text.replace(char, escape)
    return text


_SCRIPT_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _fallback_html(traces: Sequence[Trace]) -> str:
    """What shows where scripts do not run (an untrusted notebook, a static viewer)."""
    items = "".join(f"<li>{_ascii_text(_summary(trace))}</li>" for trace in traces)
    return (
        f"<ul>{items}</ul><p><em>The interactive threadline trace view needs JavaScript: "
        "run the cell again or trust the notebook.</em></p>"
    )


def _ascii_text(text: str) -> str:
    return html.escape(text).encode("ascii", "xmlcharrefreplace").decode("ascii")


def _traces_text(traces: Sequence[Trace]) -> str:
    return "\n".join(_summary(trace) for trace in traces)


def _summary(trace: Trace) -> str:
    info = trace.info
    root = trace.data.root_span
    name = info.name or (root.name if root is not None else "")
    duration = "" if info.execution_duration is None else f", {info.execution_duration} ms"
    return (
        f"Trace {info.trace_id} {name!r}: {info.state.value}{duration}, "
        f"{len(trace.data.spans)} spans"
    )
