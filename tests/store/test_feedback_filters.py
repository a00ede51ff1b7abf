"""``feedback.<name>`` / ``expectation.<name>`` filters, and ``trace.session_id`` /
``trace.user``, on SQLite and PostgreSQL: every operator against known answers, then
random comparisons against a model of the semantics written in Python."""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store._factory import simple_trace, tid
from threadline.entities.assessment import AssessmentError, Expectation, Feedback
from threadline.errors import FilterSyntaxError
from threadline.store.sql import SqlStore


def numbers(store: SqlStore, filter_string: str) -> list[int]:
    traces, _ = store.search_traces(filter_string=filter_string, include_spans=False)
    return sorted(int(x.info.trace_id[3:], 16) for x in traces)


@pytest.fixture
def judged(store: SqlStore) -> SqlStore:
    """Traces 1-7 with known feedback and expectations (see the table in the test)."""
    rows, spans = [], []
    for n in range(1, 8):
        metadata = {"session_id": f"s{n % 2}", "user": "ann" if n < 4 else "bob"}
        row, trace_spans = simple_trace(n, metadata=metadata)
        rows.append(row)
        spans += trace_spans
    store.log_batch(rows, spans)
    log = store.log_assessment
    log(tid(1), Feedback(name="score", value=0.9))
    log(tid(2), Feedback(name="score", value=3))
    old = log(tid(3), Feedback(name="score", value=0.95))
    store.override_feedback(tid(3), old.assessment_id or "", Feedback(value=0.1))
    log(tid(4), Feedback(name="score", error=AssessmentError("TIMEOUT")))
    log(tid(1), Feedback(name="thumbs", value=True))
    log(tid(2), Feedback(name="thumbs", value=False))
    log(tid(5), Feedback(name="thumbs", value="true"))  # a string, not a boolean
    log(tid(1), Feedback(name="label", value="Good answer"))
    log(tid(2), Feedback(name="label", value="bad"))
    log(tid(6), Feedback(name="label", value=["good", "bad"]))  # JSON: only IS NOT NULL
    log(tid(6), Feedback(name="score", value=True))  # a boolean under a numeric name
    log(tid(7), Expectation("answer", "42"))
    log(tid(3), Expectation("answer", 42))
    log(tid(4), Expectation("score", 5))  # an expectation, not feedback
    return store


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("feedback.score = 0.9", [1]),
        ("feedback.score = 3", [2]),
        ("feedback.score != 3", [1, 3]),  # numeric scores other than 3 (3's is 0.1 now)
        ("feedback.score > 0.5", [1, 2]),  # 3's 0.95 was overridden
        ("feedback.score >= 3", [2]),
        ("feedback.score < 0.5", [3]),
        ("feedback.score <= 0.9", [1, 3]),
        ("feedback.score IN (3, 0.1)", [2, 3]),
        ("feedback.score NOT IN (3)", [1, 3]),
        ("feedback.score IS NOT NULL", [1, 2, 3, 6]),  # 4 has only an error
        ("feedback.score IS NULL", [4, 5, 7]),
        ("feedback.score = true", [6]),
        ("feedback.thumbs = true", [1]),
        ("feedback.thumbs = TRUE", [1]),
        ("feedback.thumbs = 'true'", [1]),
        ('feedback.thumbs = "False"', [2]),
        ("feedback.thumbs != true", [2]),
        ("feedback.thumbs LIKE 'tr%'", [5]),  # a pattern compares text
        ("feedback.thumbs IN (true, false)", [1, 2]),
        ("feedback.label = 'bad'", [2]),
        ("feedback.label != 'bad'", [1]),
        ("feedback.label LIKE 'Good%'", [1]),
        ("feedback.label LIKE 'good%'", []),
        ("feedback.label ILIKE 'good%'", [1]),
        ("feedback.label IN ('bad', 'Good answer')", [1, 2]),
        ("feedback.label NOT IN ('bad')", [1]),
        ("feedback.label IS NOT NULL", [1, 2, 6]),
        ("feedback.label IN ('bad', 3, true)", [2]),
        ("expectation.answer = '42'", [7]),
        ("expectation.answer = 42", [3]),
        ("expectation.score = 5", [4]),
        ("expectation.answer IS NULL", [1, 2, 4, 5, 6]),
        ("feedback.`score` > 0", [1, 2, 3]),
        ("feedback.nothing IS NULL", [1, 2, 3, 4, 5, 6, 7]),
        ("feedback.nothing = 1", []),
        ("feedback.score > 0 AND feedback.thumbs = true", [1]),
        ("feedback.score IS NOT NULL AND trace.user = 'ann'", [1, 2, 3]),
        ("trace.session_id = 's1'", [1, 3, 5, 7]),
        ("trace.user IN ('bob')", [4, 5, 6, 7]),
        ("trace.user = 'bob' AND expectation.answer IS NOT NULL", [7]),
        ("feedback.score > 0.5 AND tags.missing = 'x'", []),
    ],
)
def test_every_operator(judged: SqlStore, filter_string: str, expected: list[int]) -> None:
    assert numbers(judged, filter_string) == expected


@pytest.mark.parametrize(
    ("filter_string", "token"),
    [
        ("feedback.score > 'high'", "'high'"),
        ("feedback.score < true", "true"),
        ("feedback.label LIKE 3", "3"),
        ("feedback.label ILIKE true", "true"),
        ("feedback = 1", "feedback"),
        ("expectation. = 1", " "),
        ("feedback.score IS 1", "1"),
        ("feedback.score IS NOT 'x'", "'x'"),
        ("tags.env IS NULL", "IS"),
        ("trace.name = true", "true"),
        ("trace.timestamp_ms = false", "false"),
        ("feedback.score = ", "end of input"),
        ("feedback.score NOT LIKE 'a'", "LIKE"),
    ],
)
def test_bad_feedback_filters_name_the_token(
    judged: SqlStore, filter_string: str, token: str
) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        judged.search_traces(filter_string=filter_string)
    assert caught.value.token == token


# --- random comparisons against a model -------------------------------------------------

NAMES = ("q", "label")
WORDS = ("a", "ab", "Ab", "b", "")


def _random_value(rng: random.Random) -> Any:
    pick = rng.randrange(6)
    if pick == 0:
        return rng.choice([True, False])
    if pick == 1:
        return rng.randint(-3, 3)
    if pick == 2:
        return rng.choice([0.5, -1.25, 2.0])
    if pick == 3:
        return rng.choice(WORDS)
    if pick == 4:
        return [rng.randint(0, 2)]
    return None  # an error (feedback) / a string (expectation)


def _dataset(store: SqlStore) -> dict[int, list[tuple[str, str, Any, bool]]]:
    """Traces 1-24, each with up to 4 random assessments: (kind, name, value, valid)."""
    rng = random.Random(15)
    rows, spans = [], []
    for n in range(1, 25):
        row, trace_spans = simple_trace(n)
        rows.append(row)
        spans += trace_spans
    store.log_batch(rows, spans)
    model: dict[int, list[tuple[str, str, Any, bool]]] = {}
    for n in range(1, 25):
        for _ in range(rng.randrange(5)):
            kind = rng.choice(["feedback", "expectation"])
            name, value, valid = rng.choice(NAMES), _random_value(rng), rng.random() < 0.8
            if kind == "feedback":
                error = AssessmentError("E") if value is None else None
                store.log_assessment(
                    tid(n), Feedback(name=name, value=value, error=error, valid=valid)
                )
            else:
                value = "b" if value is None else value
                store.log_assessment(tid(n), Expectation(name, value, valid=valid))
            model.setdefault(n, []).append((kind, name, value, valid))
    return model


def _like(pattern: str, text: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    flags = re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL
    return re.fullmatch(regex, text, flags) is not None


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else "json"


def _matches(value: Any, op: str, literal: Any) -> bool:
    """Whether one stored value passes ``op literal`` (the filter language's semantics)."""
    if op in ("IN", "NOT IN"):
        kinds = {_kind_of(item) for item in literal}
        same = [item for item in literal if _kind_of(item) == _kind_of(value)]
        hit = any(_matches(value, "=", item) for item in same)
        return hit if op == "IN" else (_kind_of(value) in kinds and not hit)
    if op in ("LIKE", "ILIKE"):
        return isinstance(value, str) and _like(literal, value, op == "ILIKE")
    if _kind_of(value) != _kind_of(literal):
        return False
    return (
        _ORDER[op](float(value), float(literal))
        if _kind_of(value) != "string"
        else _ORDER[op](value, literal)
    )


def expected(
    model: dict[int, list[tuple[str, str, Any, bool]]], kind: str, name: str, op: str, literal: Any
) -> list[int]:
    out = []
    for n in range(1, 25):
        mine = [
            v
            for k, nm, v, ok in model.get(n, [])
            if k == kind and nm == name and ok and v is not None
        ]
        if op == "IS NOT NULL":
            hit = bool(mine)
        elif op == "IS NULL":
            hit = not mine
        else:
            hit = any(_matches(v, op, literal) for v in mine)
        if hit:
            out.append(n)
    return out


def _literal(value: Any, draw: Callable[..., Any]) -> str:
    if isinstance(value, bool):
        word = "true" if value else "false"
        return draw(st.sampled_from([word, word.upper(), f"'{word}'", f'"{word.capitalize()}"']))
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + value.replace("'", "''") + "'"


@st.composite
def comparisons(draw: Callable[..., Any]) -> tuple[str, str, str, str, Any]:
    kind = draw(st.sampled_from(["feedback", "expectation"]))
    name = draw(st.sampled_from(NAMES))
    op = draw(
        st.sampled_from(
            [
                "=",
                "!=",
                "<",
                "<=",
                ">",
                ">=",
                "LIKE",
                "ILIKE",
                "IN",
                "NOT IN",
                "IS NULL",
                "IS NOT NULL",
            ]
        )
    )
    numbers_ = st.sampled_from([-3, -1, 0, 1, 2, 0.5, -1.25, 2.0])
    if op in ("IS NULL", "IS NOT NULL"):
        return f"{kind}.{name} {op}", kind, name, op, None
    if op in ("<", "<=", ">", ">="):
        literal = draw(numbers_)
    elif op in ("LIKE", "ILIKE"):
        literal = draw(st.sampled_from(["a%", "%b", "_b", "A%", "%", "", "ab"]))
    elif op in ("IN", "NOT IN"):
        literal = tuple(
            draw(
                st.lists(st.booleans() | numbers_ | st.sampled_from(WORDS), min_size=1, max_size=4)
            )
        )
        text = ", ".join(_literal(v, draw) for v in literal)
        return f"{kind}.{name} {op} ({text})", kind, name, op, literal
    else:
        literal = draw(st.booleans() | numbers_ | st.sampled_from(WORDS))
    return f"{kind}.{name} {op} {_literal(literal, draw)}", kind, name, op, literal


@pytest.fixture
def modelled(store: SqlStore) -> tuple[SqlStore, dict[int, list[tuple[str, str, Any, bool]]]]:
    return store, _dataset(store)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(comparison=comparisons())
def test_random_comparisons_match_the_model(modelled, comparison) -> None:  # type: ignore[no-untyped-def]
    store, model = modelled
    text, kind, name, op, literal = comparison
    assert numbers(store, text) == expected(model, kind, name, op, literal), text


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=comparisons(), second=comparisons())
def test_conditions_combine_with_and(modelled, first, second) -> None:  # type: ignore[no-untyped-def]
    store, model = modelled
    both = set(expected(model, *first[1:])) & set(expected(model, *second[1:]))
    assert numbers(store, f"{first[0]} AND {second[0]}") == sorted(both)
