"""Settings are declared once, documented, parsed with clear errors, and read when used."""

from __future__ import annotations

import pathlib
import re

import pytest

from threadline import settings
from threadline.errors import InvalidArgumentError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_setting_has_a_doc_and_a_unique_name():
    names = [s.name for s in settings.ALL_SETTINGS]
    assert len(names) == len(set(names))
    for setting in settings.ALL_SETTINGS:
        assert setting.name.startswith(("THREADLINE_", "OTEL_")) and len(setting.doc) > 20


def test_every_setting_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [s.name for s in settings.ALL_SETTINGS if s.name not in readme]
    assert missing == []


def test_no_other_module_reads_the_environment():
    offenders = []
    for path in (ROOT / "src" / "threadline").rglob("*.py"):
        if path.name == "settings.py" or "migrations" in path.parts:
            continue
        if re.search(r"os\.environ|os\.getenv", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("THREADLINE_TRACING_ENABLED", "maybe")
    with pytest.raises(InvalidArgumentError, match="THREADLINE_TRACING_ENABLED='maybe'"):
        settings.TRACING_ENABLED.get()
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE", "-3")
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        settings.ASYNC_MAX_QUEUE_SIZE.get()


def test_values_are_read_when_used(monkeypatch):
    assert settings.ASYNC_MAX_WORKERS.get() == 10
    monkeypatch.setenv("THREADLINE_ASYNC_TRACE_LOGGING_MAX_WORKERS", "4")
    assert settings.ASYNC_MAX_WORKERS.get() == 4
