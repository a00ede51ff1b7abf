"""The filter language's tokenizer and parser, without a database."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.errors import FilterSyntaxError, InvalidArgumentError
from threadline.store import search
from threadline.store.search import Comparison, parse_filter


def only(text: str) -> Comparison:
    (comparison,) = parse_filter(text)
    return comparison


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_an_empty_filter_has_no_conditions(text: str | None) -> None:
    assert parse_filter(text) == []


@pytest.mark.parametrize(
    ("text", "kind", "key", "op", "value"),
    [
        ("trace.status = 'OK'", "trace", "state", "=", "OK"),
        ("trace.state != 'error'", "trace", "state", "!=", "ERROR"),
        ("status = 'in_progress'", "trace", "state", "=", "IN_PROGRESS"),
        ("trace.timestamp_ms >= 17", "trace", "request_time", ">=", 17),
        ("timestamp_ms < 1.5", "trace", "request_time", "<", 1.5),
        ("execution_time_ms <= -3", "trace", "execution_duration", "<=", -3),
        ("trace.name LIKE 'a%'", "trace", "name", "LIKE", "a%"),
        ("name ilike 'A%'", "trace", "name", "ILIKE", "A%"),
        ('trace.request_preview = "say \\"hi\\""', "trace", "request_preview", "=", 'say "hi"'),
        ("response_preview = 'it''s'", "trace", "response_preview", "=", "it's"),
        ("trace.client_request_id = 'r\\'1'", "trace", "client_request_id", "=", "r'1"),
        ("run_id = 'abc'", "trace", "run_id", "=", "abc"),
        ("metadata.run_id = 'abc'", "trace", "run_id", "=", "abc"),
        ("tags.env = 'prod'", "tag", "env", "=", "prod"),
        ("tags.`my.key` = 'v'", "tag", "my.key", "=", "v"),
        ("tags.`my key-2` = 'v'", "tag", "my key-2", "=", "v"),
        ("tags.`a``b` = 'v'", "tag", "a`b", "=", "v"),
        ("tags.a.b = 'v'", "tag", "a.b", "=", "v"),
        ("metadata.user != 'x'", "metadata", "user", "!=", "x"),
        ("span.name = 'llm'", "span", "name", "=", "llm"),
        ("span.type IN ('LLM', 'TOOL')", "span", "span_type", "IN", ("LLM", "TOOL")),
        ("span.status NOT IN ('ok')", "span", "status_code", "NOT IN", ("OK",)),
        ("span.attributes.`gen_ai.model` = 'gpt'", "span_attribute", "gen_ai.model", "=", "gpt"),
        ("span.attributes.temperature = 0.70", "span_attribute", "temperature", "=", "0.70"),
        ("span.attributes.n = +3", "span_attribute", "n", "=", "3"),
        ("trace.name = 'a\\%b'", "trace", "name", "=", "a\\%b"),
        ("trace.name = 'line\\nbreak'", "trace", "name", "=", "line\nbreak"),
    ],
)
def test_comparisons_parse_to_fields_operators_and_values(
    text: str, kind: str, key: str, op: str, value: object
) -> None:
    comparison = only(text)
    assert (comparison.field.kind, comparison.field.key) == (kind, key)
    assert (comparison.op, comparison.value) == (op, value)


@pytest.mark.parametrize(
    ("text", "kind", "key", "op", "value"),
    [
        ("feedback.score > 0.5", "feedback", "score", ">", 0.5),
        ("feedback.`llm.judge` = 3", "feedback", "llm.judge", "=", 3),
        ("feedback.a.b != 'x'", "feedback", "a.b", "!=", "x"),
        ("feedback.ok = true", "feedback", "ok", "=", True),
        ("feedback.ok = FALSE", "feedback", "ok", "=", False),
        ("feedback.ok = 'True'", "feedback", "ok", "=", True),
        ("feedback.ok LIKE 'true'", "feedback", "ok", "LIKE", "true"),
        ("feedback.ok IN (true, 1, 'x')", "feedback", "ok", "IN", (True, 1, "x")),
        ("feedback.ok is null", "feedback", "ok", "IS NULL", None),
        ("feedback.ok IS NOT NULL", "feedback", "ok", "IS NOT NULL", None),
        ("expectation.answer ILIKE '4%'", "expectation", "answer", "ILIKE", "4%"),
        ("trace.session_id = 's'", "metadata", "session_id", "=", "s"),
        ("trace.USER IN ('a')", "metadata", "user", "IN", ("a",)),
        ("span.attributes.stream = true", "span_attribute", "stream", "=", "true"),
    ],
)
def test_feedback_expectation_and_session_fields(
    text: str, kind: str, key: str, op: str, value: object
) -> None:
    comparison = only(text)
    assert (comparison.field.kind, comparison.field.key) == (kind, key)
    assert (comparison.op, comparison.value) == (op, value)
    assert type(comparison.value) is type(value)


def test_conditions_are_joined_by_and_in_any_case() -> None:
    comparisons = parse_filter("status = 'OK' and tags.a = 'b' AnD span.type = 'LLM'")
    assert [c.field.kind for c in comparisons] == ["trace", "tag", "span"]


def test_huge_integers_become_floats_rather_than_overflowing() -> None:
    assert only("timestamp_ms > 99999999999999999999999").value == 1e23


@pytest.mark.parametrize(
    ("text", "message", "token", "position"),
    [
        (
            "trace.status = ",
            "Invalid filter 'trace.status = ': expected a value after '=' at position 15",
            "end of input",
            15,
        ),
        (
            "trace.foo = 'x'",
            "unknown field 'trace.foo'; valid fields are trace.status",
            "trace.foo",
            0,
        ),
        ("attributes.x = 'y'", "unknown field 'attributes.x'", "attributes.x", 0),
        ("span.attributes = 'y'", "unknown field 'span.attributes'", "span.attributes", 0),
        (
            "trace.timestamp_ms LIKE '1%'",
            "operator 'LIKE' is not supported for numeric field 'trace.timestamp_ms'",
            "LIKE",
            19,
        ),
        ("trace.name > 'a'", "operator '>' is not supported for string field", ">", 11),
        ("trace.status LIKE 'O%'", "operator 'LIKE' is not supported for status field", "LIKE", 13),
        ("trace.name = 'abc", 'unterminated string starting with "\'abc"', "'abc", 13),
        (
            "trace.name = 'a' garbage",
            "expected 'AND' or the end of the filter, got 'garbage'",
            "garbage",
            17,
        ),
        ("trace.name = 'a' )", "expected 'AND' or the end of the filter, got ')'", ")", 17),
        ("trace.name IN ()", "empty list after 'IN'", ")", 15),
        ("trace.name NOT IN ('a',)", "expected a value after ','", ")", 23),
        ("trace.name IN ('a' 'b')", "expected ',' or ')' in the value list", "'b'", 19),
        ("trace.name IN 'a'", "expected '(' after 'IN'", "'a'", 14),
        ("trace.name NOT LIKE 'a'", "expected 'IN' after 'NOT'", "LIKE", 15),
        (
            "trace.status = 'DONE'",
            "invalid value 'DONE' for 'trace.status'; use one of OK, ERROR, IN_PROGRESS",
            "'DONE'",
            15,
        ),
        ("span.status = 'RUNNING'", "use one of OK, ERROR, UNSET", "'RUNNING'", 14),
        (
            "trace.status = OK",
            "expected a value after '=', got 'OK' (string values must be quoted)",
            "OK",
            15,
        ),
        ("trace.name = 'a' OR trace.name = 'b'", "'OR' is not supported", "OR", 17),
        ("trace.name = 'a' AND", "expected a condition after 'AND'", "end of input", 20),
        ("AND trace.name = 'a'", "expected a field name, got 'AND'", "AND", 0),
        ("= 'a'", "expected a field name, got '='", "=", 0),
        (
            "trace.name",
            "expected an operator after 'trace.name' at position 10",
            "end of input",
            10,
        ),
        (
            "trace.timestamp_ms = 'x'",
            "'trace.timestamp_ms' is numeric: expected a number",
            "'x'",
            21,
        ),
        ("trace.name = 5", "'trace.name' takes a quoted string, not a number", "5", 13),
        ("tags.`key = 'v'", "unterminated backtick-quoted key", "`key = 'v'", 5),
        ("tags.`` = 'v'", "empty backtick-quoted key", "``", 5),
        ("tags. = 'v'", "expected a key after '.'", " ", 5),
        ("tags.my-key = 'v'", "unexpected character '-'", "-", 7),
        ("`x` = 'v'", "a backtick-quoted key must follow a field prefix", "`", 0),
        ("trace.name = 'a\x00b'", "character '\\x00' is not allowed", "\x00", 15),
        ("timestamp_ms > 1e999", "number '1e999' is out of range", "1e999", 15),
        ("trace.name LIKE 'abc\\'", "unterminated string", "'abc\\'", 16),
        ("trace.name LIKE 'abc\\\\'", "ends with an unpaired backslash", "'abc\\\\'", 16),
        ("trace.name == 'a'", "expected a value after '=', got '='", "=", 12),
        ("trace.name <> 'a'", "operator '<' is not supported", "<", 11),
        ("trace.name = 'a';", "unexpected character ';'", ";", 16),
        ("feedback.x > 'a'", "'>' on 'feedback.x' compares numbers", "'a'", 13),
        ("feedback.x >= TRUE", "compares numbers", "TRUE", 14),
        ("feedback.x LIKE 5", "LIKE on 'feedback.x' takes a quoted pattern", "5", 16),
        ("feedback.x IS 'a'", "expected 'NULL' after IS", "'a'", 14),
        ("feedback.x IS NOT", "expected 'NULL' after IS NOT", "end of input", 17),
        ("tags.a IS NULL", "operator 'IS NULL' is not supported for string field", "IS", 7),
        ("trace.name = true", "'trace.name' takes a quoted string, not true", "true", 13),
        ("feedback = 1", "unknown field 'feedback'", "feedback", 0),
        ("NOT trace.name = 'a'", "'NOT' is not supported here", "NOT", 0),
        ("(trace.name = 'a')", "'(' is not supported here", "(", 0),
    ],
)
def test_errors_name_the_token_and_its_position(
    text: str, message: str, token: str, position: int
) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"Invalid filter {text!r}:")
    assert (caught.value.token, caught.value.position) == (token, position)


def test_filter_errors_are_argument_errors() -> None:
    assert issubclass(FilterSyntaxError, InvalidArgumentError)


def test_limits_on_list_size_and_condition_count() -> None:
    many_values = ", ".join(f"'{i}'" for i in range(search.MAX_IN_VALUES + 1))
    with pytest.raises(FilterSyntaxError, match="more than 500 values in IN lists"):
        parse_filter(f"trace.name IN ({many_values})")
    half = ", ".join(f"'{i}'" for i in range(search.MAX_IN_VALUES // 2 + 1))
    with pytest.raises(FilterSyntaxError, match="more than 500 values in IN lists"):
        parse_filter(f"trace.name IN ({half}) AND tags.x NOT IN ({half})")
    with pytest.raises(FilterSyntaxError, match="longer than 10000 characters"):
        parse_filter(f"trace.name LIKE '{'%' * (search.MAX_LIKE_PATTERN + 1)}'")
    many_conditions = " AND ".join(["trace.name = 'a'"] * (search.MAX_CONDITIONS + 1))
    with pytest.raises(FilterSyntaxError, match="more than 100 conditions"):
        parse_filter(many_conditions)
    with pytest.raises(FilterSyntaxError, match="longer than"):
        parse_filter("x" * (search.MAX_FILTER_LENGTH + 1))


HUGE_NUMBER = "9" * 5000  # issue 12: int() of it raised ValueError (Python's digit limit)


@pytest.mark.parametrize(
    ("text", "message", "token", "position"),
    [
        (
            f"trace.timestamp_ms > {HUGE_NUMBER}",
            f"the number starting with {'9' * 20!r} has 5000 characters; a number has at most 100",
            "9" * 20,
            21,
        ),
        (f"span.attributes.n = -{HUGE_NUMBER}", "has 5001 characters", "-" + "9" * 19, 20),
        (f"timestamp_ms > 1.{'0' * 99}", "has 101 characters", "1." + "0" * 18, 15),
        (
            f"trace.name = '{'a' * 10_001}'",
            f"the string value starting with {chr(39) + 'a' * 19!r} is longer than 10000",
            "'" + "a" * 19,
            13,
        ),
        (f'tags.x IN ("{"b" * 20_000}")', "is longer than 10000 characters", '"' + "b" * 19, 11),
        (
            f"trace.name LIKE '{'%' * 10_001}'",
            "is longer than 10000 characters",
            "'" + "%" * 19,
            16,
        ),
    ],
)
def test_literals_over_their_limit_name_the_token(
    text: str, message: str, token: str, position: int
) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith("Invalid filter ")
    assert len(str(caught.value)) < 500  # the filter is shown cut, not whole
    assert (caught.value.token, caught.value.position) == (token, position)


def test_literals_up_to_their_limit_are_accepted() -> None:
    assert only(f"timestamp_ms > {'9' * search.MAX_NUMBER_LITERAL}").value == float("9" * 100)
    assert only(f"span.attributes.n = {'1' * 100}").value == "1" * 100
    assert only(f"trace.name = '{'a' * search.MAX_STRING_LITERAL}'").value == "a" * 10_000
    doubled = only(f"trace.name = '{chr(39) * 2 * search.MAX_STRING_LITERAL}'")
    assert doubled.value == "'" * 10_000  # the limit counts decoded characters


def test_a_non_string_filter_is_refused() -> None:
    with pytest.raises(FilterSyntaxError, match="must be a string"):
        parse_filter(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "column", "ascending"),
    [
        ("timestamp_ms DESC", "request_time", False),
        ("trace.timestamp_ms asc", "request_time", True),
        ("execution_time_ms", "execution_duration", True),
        ("name DESC", "name", False),
        ("trace.status ASC", "state", True),
    ],
)
def test_order_by_clauses(text: str, column: str, ascending: bool) -> None:
    (key,) = search.parse_order_by(
        [text], search.TRACE_ORDER_COLUMNS, prefix="trace", default=search.OrderKey("x", True)
    )
    assert key == search.OrderKey(column, ascending)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo DESC", "cannot order by 'foo'"),
        ("timestamp_ms DOWN", "expected ASC, DESC or the end, got 'DOWN'"),
        ("timestamp_ms DESC extra", "expected ASC, DESC or the end, got 'extra'"),
        ("", "expected a column name"),
        ("'timestamp_ms'", "expected a column name"),
        ("span.name", "cannot order by 'span.name'"),
    ],
)
def test_bad_order_by_is_a_filter_syntax_error(text: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError, match=message) as caught:
        search.parse_order_by(
            [text], search.TRACE_ORDER_COLUMNS, prefix="trace", default=search.OrderKey("x", True)
        )
    assert str(caught.value).startswith(f"Invalid order_by {text!r}:")


def test_page_tokens_round_trip_and_bad_ones_are_argument_errors() -> None:
    assert search.decode_page_token(search.encode_page_token(300)) == 300
    assert search.decode_page_token(None) == 0
    for bad in [
        "garbage!",
        "eyJ4IjogMX0=",
        search.encode_page_token(-1),
        search.encode_page_token(10**30),
        "bnVsbA==",
        "w6k=",
    ]:
        with pytest.raises(InvalidArgumentError, match="Invalid page_token"):
            search.decode_page_token(bad)


# --- fuzzing -------------------------------------------------------------------------------

GRAMMAR_TOKENS = [
    "trace.status", "trace.state", "status", "trace.timestamp_ms", "execution_time_ms",
    "trace.name", "name", "request_preview", "trace.response_preview", "client_request_id",
    "run_id", "tags.env", "tags.`a.b`", "metadata.user", "span.name", "span.type",
    "span.status", "span.attributes.model", "span.attributes.`gen_ai.model`", "trace.foo",
    "=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT", "AND", "and", "OR",
    "(", ")", ",", "'OK'", "'ERROR'", "'IN_PROGRESS'", "'x'", "'%a%'", "\"b\"", "''", "'",
    "`", "0", "-1", "1.5", "1e999", "99999999999999999999999", "'\\\\'", "'a\\'", ";", "--",
    "feedback.score", "feedback.`a.b`", "expectation.answer", "trace.session_id", "trace.user",
    "IS", "NULL", "is", "TRUE", "false", "'true'", "'FALSE'",
]  # fmt: skip

token_soup = st.lists(st.sampled_from(GRAMMAR_TOKENS), max_size=12).map(" ".join)


def _parse_or_syntax_error(text: str) -> None:
    try:
        parse_filter(text)
    except FilterSyntaxError as error:
        assert error.position is not None and 0 <= error.position <= len(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_random_text_parses_or_raises_filter_syntax_error(text: str) -> None:
    _parse_or_syntax_error(text)


@settings(max_examples=400, deadline=None)
@given(token_soup)
def test_grammar_token_soup_parses_or_raises_filter_syntax_error(text: str) -> None:
    _parse_or_syntax_error(text)


def test_nulls_last_only_where_a_column_can_hold_null() -> None:
    """PostgreSQL reads ``request_time DESC`` off an index and stops after a page, but
    ``DESC NULLS LAST`` makes it sort every match: a NOT NULL column gets no NULLS LAST."""
    from sqlalchemy.dialects import postgresql

    from threadline.store import tables as t

    keys = [
        search.OrderKey("request_time", ascending=False),
        search.OrderKey("execution_duration", ascending=False),
    ]
    clauses = search.order_clauses(keys, t.traces, "trace_id")
    rendered = [str(c.compile(dialect=postgresql.dialect())) for c in clauses]
    assert rendered == [
        "traces.request_time DESC",
        "traces.execution_duration DESC NULLS LAST",
        "traces.trace_id ASC",
    ]
