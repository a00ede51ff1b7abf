"""Notebook display: traces drawn inline by a real IPython shell, and nothing outside one.

Each test runs cells in ``InteractiveShell`` in a fresh interpreter (the shell is a
process-wide singleton that rewires ``sys.displayhook``) and reads back what the cells
displayed. Network connections are refused there, so any use of a server would fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from threadline.entities.span import Span, SpanStatus
from threadline.entities.trace import Trace, TraceData, TraceInfo
from threadline.tracing import display

HARNESS = r"""
import json, socket, sys
attempts = []
def _no_network(self, address, *args):
    attempts.append(repr(address))
    raise OSError("network disabled by the test")
socket.socket.connect = _no_network
socket.socket.connect_ex = _no_network
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from threadline.tracing import _safety
_safety.raise_internal_errors(sys.argv[2] == "strict")
shell = InteractiveShell.instance()
cells = []
for source in json.loads(sys.argv[1]):
    with capture_output() as captured:
        outcome = shell.run_cell(source, store_history=True)
    error = outcome.error_before_exec or outcome.error_in_exec
    cells.append({
        "ok": outcome.success,
        "error": repr(error) if error else None,
        "outputs": [dict(output.data) for output in captured.outputs],
        "stdout": captured.stdout,
        "stderr": captured.stderr,
    })
print(json.dumps({"cells": cells, "network": attempts}))
"""

SETUP = """
import json
import threadline
from IPython.display import display

ids = []

@threadline.trace
def answer(question):
    ids.append(None)  # replaced below once the trace has an id
    return f"answer to {question}"

def ask(question):
    answer(question)
    ids[-1] = threadline.get_last_active_trace_id()
"""


def run_cells(
    tmp_path: Path, cells: list[str], *, strict: bool = True, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Runs ``cells`` in a fresh IPython shell; returns what each displayed and printed."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    environ["THREADLINE_TRACKING_URI"] = f"sqlite:///{tmp_path / 'traces.db'}"
    environ["THREADLINE_SPOOL_DIR"] = str(tmp_path / "spool")
    environ.update(env or {})
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-c",
            HARNESS,
            json.dumps(cells),
            "strict" if strict else "",
        ],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["network"] == [], "the notebook display must not need a server"
    for cell in result["cells"]:
        if strict:
            assert cell["ok"], cell
            assert cell["stderr"] == "", cell["stderr"]
    return result["cells"]


class _Scripts(HTMLParser):
    """Collects the ``<script>`` elements of an HTML document as the browser would split them."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._open: tuple[dict[str, str | None], list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._open = (dict(attrs), [])

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._open is not None:
            self.scripts.append((self._open[0], "".join(self._open[1])))
            self._open = None


def scripts_of(html: str) -> list[tuple[dict[str, str | None], str]]:
    parser = _Scripts()
    parser.feed(html)
    parser.close()
    return parser.scripts


def embedded_traces(html: str) -> list[dict[str, Any]]:
    """The trace data embedded in a display's HTML (its one JSON script element)."""
    data = [body for attrs, body in scripts_of(html) if attrs.get("type") == "application/json"]
    assert len(data) == 1
    traces = json.loads(data[0])
    assert isinstance(traces, list)
    return traces


def shown_ids(output: dict[str, str]) -> list[str]:
    return [t["info"]["trace_id"] for t in embedded_traces(output["text/html"])]


def test_a_cell_that_creates_traces_displays_the_newest_n_in_one_bundle(tmp_path):
    cells = run_cells(
        tmp_path,
        [SETUP, "ask('a'); ask('b'); ask('c')", "print(json.dumps(ids))", "1 + 1"],
        env={"THREADLINE_MAX_TRACES_TO_DISPLAY_IN_NOTEBOOK": "2"},
    )
    assert cells[0]["outputs"] == []
    created = json.loads(cells[2]["stdout"])
    assert len(created) == 3
    [bundle] = cells[1]["outputs"]
    assert set(bundle) == {"text/html", "text/plain"}
    assert shown_ids(bundle) == created[1:]  # at most N, the newest last
    for trace_id in created[1:]:
        assert trace_id in bundle["text/plain"]
    assert created[0] not in bundle["text/html"]
    assert cells[2]["outputs"] == [] and cells[3]["outputs"] == []


def test_a_displayed_search_result_shows_its_traces(tmp_path):
    cells = run_cells(
        tmp_path,
        [
            SETUP + "ask('a'); ask('b'); ask('c')",
            "threadline.search_traces()",
            "threadline.search_traces(return_type='list')",
            "found = threadline.search_traces()",
            "threadline.search_traces();",
            "threadline.search_traces()[['trace_id', 'state']]",
            "[1, 2, 3]",
            "print(json.dumps(ids))",
        ],
    )
    created = set(json.loads(cells[-1]["stdout"]))
    assert len(cells[0]["outputs"]) == 1
    for cell in cells[1:3]:
        [bundle] = cell["outputs"]
        assert set(shown_ids(bundle)) == created
    for cell in cells[3:]:
        assert cell["outputs"] == []  # not displayed, or no traces in what was displayed


def test_search_results_are_capped_at_n(tmp_path):
    cells = run_cells(
        tmp_path,
        [SETUP + "for q in 'abcde': ask(q)", "threadline.search_traces()"],
        env={"THREADLINE_MAX_TRACES_TO_DISPLAY_IN_NOTEBOOK": "3"},
    )
    [bundle] = cells[1]["outputs"]
    assert len(shown_ids(bundle)) == 3


def test_displaying_a_trace_gives_html(tmp_path):
    cells = run_cells(
        tmp_path,
        [
            SETUP + "ask('a')",
            "trace = threadline.get_trace(ids[-1])\ndisplay(trace)",
            "formats, _ = get_ipython().display_formatter.format(trace)\nprint(sorted(formats))",
            # The cell's value is a Trace: IPython draws it; the hook does not add a copy.
            "ask('b'); threadline.get_trace(ids[-1])",
            "print(json.dumps(ids))",
        ],
    )
    created = json.loads(cells[-1]["stdout"])
    [shown] = cells[1]["outputs"]
    assert shown_ids(shown) == [created[0]]
    assert json.loads(cells[2]["stdout"].replace("'", '"')) == ["text/html", "text/plain"]
    assert cells[3]["outputs"] == []


def test_disable_and_enable_notebook_display(tmp_path):
    cells = run_cells(
        tmp_path,
        [
            SETUP + "ask('a')",
            "trace = threadline.get_trace(ids[-1])\nthreadline.tracing.disable_notebook_display()",
            "ask('b')",
            "threadline.search_traces()",
            "display(trace)",
            "threadline.tracing.enable_notebook_display()",
            "ask('c')",
            "display(trace)",
        ],
    )
    assert len(cells[0]["outputs"]) == 1
    assert cells[2]["outputs"] == [] and cells[3]["outputs"] == []
    [plain] = cells[4]["outputs"]
    assert "text/html" not in plain  # a Trace falls back to text while display is off
    assert len(cells[6]["outputs"]) == 1
    [rich] = cells[7]["outputs"]
    assert "text/html" in rich


def test_a_failing_display_never_raises_into_the_notebook(tmp_path):
    cells = run_cells(
        tmp_path,
        [
            SETUP + "ask('a')",
            "import threadline._query\n"
            "def broken(trace_id): raise RuntimeError('store is down')\n"
            "threadline._query.get_trace = broken",
            "ask('b')\nprint('cell finished')",
        ],
        strict=False,
    )
    assert all(cell["ok"] for cell in cells)
    assert cells[2]["outputs"] == []
    assert "cell finished" in cells[2]["stdout"]
    assert "could not display traces in the notebook" in cells[2]["stderr"]
    assert "store is down" in cells[2]["stderr"]


def test_no_display_at_all_outside_ipython(tmp_path):
    script = (
        "import sys, threadline\n"
        "import IPython  # imported, but no shell is running\n"
        "from threadline.tracing._runtime import RT\n"
        "@threadline.trace\n"
        "def f(x): return x\n"
        "f(1); f(2)\n"
        "print(RT.display_checked, RT.on_trace_end)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env["THREADLINE_TRACKING_URI"] = f"sqlite:///{tmp_path / 'traces.db'}"
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == "True None\n"
    assert done.stderr == ""


def test_the_display_module_does_not_import_ipython():
    code = "import sys, threadline.tracing.display; print('IPython' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"


PAYLOAD = "</script><script>alert(1)</script><!-- <img src=x onerror=alert(1)> & \u2028 caf\u00e9 \u65e5\u672c"


def _trace_with(value: Any) -> Trace:
    span = Span(
        trace_id="tr-" + "a" * 32,
        span_id="b" * 16,
        parent_id=None,
        name="</script>name",
        start_time_ns=1_700_000_000_000_000_000,
        end_time_ns=1_700_000_000_500_000_000,
        status=SpanStatus("OK"),
        inputs={"question": value},
        outputs=value,
        attributes={"note": value, "nan": float("nan")},
    )
    info = TraceInfo(
        trace_id="tr-" + "a" * 32,
        experiment_id="0",
        request_time=1_700_000_000_000,
        execution_duration=500,
        state="OK",
        tags={"tag": value},
        name="</script>name",
    )
    return Trace(info, TraceData([span]))


def test_the_html_embeds_trace_data_safely():
    trace = _trace_with(PAYLOAD)
    html = display.traces_html([trace])
    scripts = scripts_of(html)
    assert [attrs.get("type") for attrs, _ in scripts] == ["application/json", None]
    [embedded] = embedded_traces(html)
    assert embedded["data"]["spans"][0]["inputs"] == {"question": PAYLOAD}
    assert embedded["info"]["tags"] == {"tag": PAYLOAD}
    assert embedded["data"]["spans"][0]["attributes"]["nan"] == "nan"  # JSON.parse rejects NaN
    assert "</script><script>alert" not in html and "<img" not in html
    assert html.isascii()  # reads the same whatever encoding the page around it declares
    # The static fallback (shown where scripts do not run) escapes the name too.
    assert "&lt;/script&gt;name" in html


def test_the_html_is_self_contained():
    html = display.traces_html([_trace_with("x")])
    for needle in ("<link", "<iframe", " src=", " href=", "http://", "https://", "import("):
        assert needle not in html
    assert "<style>" in html and "renderTraceList(" in html and "export {" not in html


def test_the_renderer_source_follows_the_safety_rules():
    from threadline.ui import read_asset

    source = read_asset("trace_view.js")
    assert source.isascii() and read_asset("trace_view.css").isascii()
    assert "</script" not in source.lower() and "<!--" not in source
    code = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", source, flags=re.S))
    banned = ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "Function(", "write(")
    for word in (*banned, 'setAttribute("on', 'setAttribute("style', "javascript:"):
        assert word not in code, word
    assert "</style" not in read_asset("trace_view.css")
