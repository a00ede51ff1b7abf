"""LIKE patterns mean the same on SQLite and PostgreSQL, and a bad one is the caller's error.

Issue 12: ``name_like`` ending in a backslash was an SQL error on PostgreSQL, answered as
"store unavailable" (503, retried forever), while SQLite matched nothing; and the store's
error messages carried its URL.
"""

from __future__ import annotations

import pytest

from tests.store._factory import trace_row
from threadline.errors import FilterSyntaxError, InvalidArgumentError, StoreError
from threadline.store import _like
from threadline.store.sql import SqlStore

NAMES = ["100%", "100x", "a_b", "axb", "back\\slash", "back", "tail\\", "tail", "Mixed"]

ALL = set(NAMES) | {"Default"}
LIKE_CASES = [  # pattern, what LIKE finds, what ILIKE finds
    ("%", ALL, ALL),
    ("100%", {"100%", "100x"}, {"100%", "100x"}),
    ("100\\%", {"100%"}, {"100%"}),
    ("a_b", {"a_b", "axb"}, {"a_b", "axb"}),
    ("a\\_b", {"a_b"}, {"a_b"}),
    ("back\\\\slash", {"back\\slash"}, {"back\\slash"}),
    ("%\\\\%", {"back\\slash", "tail\\"}, {"back\\slash", "tail\\"}),
    ("tail\\\\", {"tail\\"}, {"tail\\"}),
    ("mixed", set(), {"Mixed"}),  # LIKE is case-sensitive on both, ILIKE on neither
    ("MIX%", set(), {"Mixed"}),
]
BAD_PATTERNS = [
    ("tail\\", "ends with an unpaired backslash"),
    ("%\\\\\\", "ends with an unpaired backslash"),
    ("back\\slash", "has a backslash before 's' at character 4"),
    ("C:\\temp%", "has a backslash before 't'"),
]


@pytest.fixture
def named(store: SqlStore) -> SqlStore:
    for name in NAMES:
        store.create_experiment(name)
    return store


def _names(store: SqlStore, pattern: str) -> set[str]:
    found, _ = store.search_experiments(name_like=pattern)
    return {experiment.name for experiment in found}


@pytest.mark.parametrize(("pattern", "expected", "_ignoring_case"), LIKE_CASES)
def test_name_like_has_one_meaning_on_both_back_ends(
    named: SqlStore, pattern: str, expected: set[str], _ignoring_case: set[str]
) -> None:
    assert _names(named, pattern) == expected


@pytest.mark.parametrize(("pattern", "problem"), BAD_PATTERNS)
def test_a_bad_name_like_is_an_argument_error_not_a_store_error(
    named: SqlStore, pattern: str, problem: str
) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        named.search_experiments(name_like=pattern)
    assert not isinstance(refused.value, StoreError)
    assert str(refused.value).startswith(f"Invalid name_like {pattern!r}: the pattern ")
    assert problem in str(refused.value)
    assert "write \\\\ for a literal backslash" in str(refused.value)
    assert _names(named, "tail%") == {"tail", "tail\\"}  # the store still answers


@pytest.fixture
def traced(store: SqlStore) -> SqlStore:
    rows = [trace_row(n + 1, name=name, tags={"name": name}) for n, name in enumerate(NAMES)]
    store.log_batch(rows, [])
    return store


def _quoted(pattern: str) -> str:
    """A LIKE pattern as a filter-language string literal (backslashes doubled)."""
    return "'" + pattern.replace("\\", "\\\\").replace("'", "''") + "'"


@pytest.mark.parametrize(("pattern", "expected", "ignoring_case"), LIKE_CASES)
@pytest.mark.parametrize("field", ["trace.name", "tags.name"])
def test_filter_like_has_the_same_meaning(
    traced: SqlStore, field: str, pattern: str, expected: set[str], ignoring_case: set[str]
) -> None:
    for op, names in (("LIKE", expected), ("ILIKE", ignoring_case)):
        traces, _ = traced.search_traces(filter_string=f"{field} {op} {_quoted(pattern)}")
        assert {t.info.name for t in traces} == names - {"Default"}, op


@pytest.mark.parametrize(("pattern", "problem"), BAD_PATTERNS)
@pytest.mark.parametrize("op", ["LIKE", "ILIKE"])
def test_a_bad_filter_pattern_is_a_syntax_error(
    traced: SqlStore, op: str, pattern: str, problem: str
) -> None:
    text = f"span.attributes.k {op} {_quoted(pattern)}"
    with pytest.raises(FilterSyntaxError) as refused:
        traced.search_traces(filter_string=text)
    assert problem in str(refused.value)
    assert refused.value.position == len(f"span.attributes.k {op} ")


def test_like_pattern_problems_without_a_database() -> None:
    assert _like.like_pattern_problem("plain_%\\%\\_\\\\") is None
    assert _like.like_pattern_problem("x" * _like.MAX_LIKE_PATTERN) is None
    assert "longer than" in str(_like.like_pattern_problem("x" * (_like.MAX_LIKE_PATTERN + 1)))
    with pytest.raises(InvalidArgumentError, match="name_like must be a string"):
        _like.check_name_like(5)  # type: ignore[arg-type]
