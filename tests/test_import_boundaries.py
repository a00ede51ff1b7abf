"""`import threadline` is cheap and side-effect free: no heavy imports, no threads, no env."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, os, sys, threading
reads = []
class Spy(dict):
    def get(self, key, default=None):
        reads.append(key)
        return super().get(key, default)
    def __getitem__(self, key):
        reads.append(key)
        return super().__getitem__(key)
before_threads = threading.active_count()
environ = os.environ
os.environ = Spy(environ)
import threadline, threadline.tracing, threadline.config, threadline.entities, threadline.client
os.environ = environ
heavy = [m for m in ("sqlalchemy", "alembic", "pandas", "IPython", "openai", "anthropic",
                     "psycopg", "numpy", "fastapi", "threadline.store.sql")
         if m in sys.modules]
print(json.dumps({"heavy": heavy, "threads": threading.active_count() - before_threads,
                  "env_reads": [k for k in reads if k.startswith("THREADLINE")]}))
"""


def test_import_has_no_side_effects():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result == {"heavy": [], "threads": 0, "env_reads": []}


def test_sdk_never_imports_the_store_implementation_until_used():
    code = (
        "import sys, threadline\n"
        "@threadline.trace\n"
        "def f(): return 1\n"
        "threadline.tracing.disable(); f()\n"
        "print('sqlalchemy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _imported_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_semconv_imports_neither_the_opentelemetry_sdk_nor_the_server():
    modules = _imported_after(
        "import threadline.semconv, threadline.semconv.mapping, threadline.semconv.messages, "
        "threadline.semconv.otlp_rows, threadline.semconv.json_text"
    )
    assert not {m for m in modules if m.startswith(("threadline.server", "opentelemetry"))}
    assert "fastapi" not in modules


def test_the_bridge_does_not_import_the_server():
    modules = _imported_after(
        "import threadline.otel, threadline.otel._provider, threadline.otel._autolog, "
        "threadline.integrations.pydantic_ai"
    )
    assert not {m for m in modules if m.startswith("threadline.server")}
    assert "fastapi" not in modules and "opentelemetry.sdk.trace" in modules


def test_the_sdk_does_not_import_the_bridge_or_semconv():
    modules = _imported_after("import threadline, threadline.tracing; threadline.trace(len)")
    assert not {m for m in modules if m.startswith(("threadline.otel", "threadline.semconv"))}
    assert not {m for m in modules if m.startswith("opentelemetry")}
