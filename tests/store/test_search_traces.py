"""``search_traces``: every field and operator of the filter language on real data."""

from __future__ import annotations

import dataclasses
import time

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store._factory import BASE_MS, simple_trace, span_row, tid, trace_row
from tests.store.test_filter_parser import token_soup
from threadline.errors import FilterSyntaxError, InvalidArgumentError
from threadline.store import search
from threadline.store import tables as t
from threadline.store.base import SpanRow, TraceRow
from threadline.store.sql import SqlStore

RUN_A = "a" * 32


def dataset() -> tuple[list[TraceRow], list[SpanRow]]:
    """Five traces that differ in every searchable field."""
    rows = [
        trace_row(
            1,
            state="OK",
            execution_duration=100,
            name="chat",
            request_preview="hello world",
            response_preview="Hi there",
            client_request_id="req-1",
            run_id=RUN_A,
            tags={"env": "prod", "my.key": "dotted", "my key": "spaced", "a`b": "tick"},
            metadata={"user": "alice"},
        ),
        trace_row(
            2,
            state="ERROR",
            execution_duration=250,
            name="chat",
            request_preview="100% sure",
            response_preview="it's broken",
            client_request_id="req-2",
            tags={"env": "dev"},
            metadata={"user": "bob"},
        ),
        trace_row(
            3,
            state="IN_PROGRESS",
            execution_duration=None,
            name="Agent Run",
            request_preview="HELLO again",
            run_id=RUN_A,
            metadata={"user": "alice", "session_id": "s-1"},
        ),
        trace_row(4, state="OK", execution_duration=50, name="retrieval"),
        trace_row(5, state="OK", execution_duration=400, name="chat", tags={"env": "staging"}),
    ]
    spans = [
        span_row(1, 0, name="chat", span_type="CHAIN"),
        span_row(
            1,
            1,
            parent=0,
            name="openai",
            span_type="LLM",
            attributes={"gen_ai.model": "gpt-4o", "temperature": 0.7, "stream": True, "n": 3},
        ),
        span_row(1, 2, parent=0, name="search", span_type="TOOL", status="ERROR"),
        span_row(2, 0, name="chat", span_type="CHAIN", status="ERROR"),
        span_row(
            2,
            1,
            parent=0,
            name="anthropic",
            span_type="CHAT_MODEL",
            attributes={"gen_ai.model": "claude-3", "temperature": 0, "stream": False},
        ),
        span_row(3, 0, name="Agent Run", span_type="AGENT", status="UNSET"),
        span_row(3, 1, parent=0, name="search", span_type="RETRIEVER", attributes={"k": "v"}),
        span_row(4, 0, name="retrieval", span_type="RETRIEVER", attributes={'weird "key"': "x"}),
        span_row(5, 0, name="chat", span_type="CHAIN", attributes={"gen_ai.model": None}),
    ]
    return rows, spans


@pytest.fixture
def loaded(store: SqlStore) -> SqlStore:
    rows, spans = dataset()
    store.log_batch(rows, spans)
    return store


ALL = {1, 2, 3, 4, 5}
TS = BASE_MS  # trace n has request_time TS + n * 1000

CASES: list[tuple[str | None, set[int]]] = [
    (None, ALL),
    ("", ALL),
    # trace.status / trace.state / status
    ("trace.status = 'OK'", {1, 4, 5}),
    ("trace.state = 'ERROR'", {2}),
    ("status = 'in_progress'", {3}),
    ("trace.status != 'OK'", {2, 3}),
    ("trace.status IN ('ERROR', 'IN_PROGRESS')", {2, 3}),
    ("trace.status NOT IN ('OK')", {2, 3}),
    # trace.timestamp_ms
    (f"trace.timestamp_ms = {TS + 2000}", {2}),
    (f"trace.timestamp_ms != {TS + 2000}", ALL - {2}),
    (f"trace.timestamp_ms < {TS + 2000}", {1}),
    (f"trace.timestamp_ms <= {TS + 2000}", {1, 2}),
    (f"timestamp_ms > {TS + 4000}", {5}),
    (f"timestamp_ms >= {TS + 4000}.0", {4, 5}),
    ("timestamp_ms > 99999999999999999999999", set()),
    # trace.execution_time_ms (NULL for the running trace never matches)
    ("trace.execution_time_ms > 200", {2, 5}),
    ("execution_time_ms <= 100", {1, 4}),
    ("execution_time_ms != 100", {2, 4, 5}),
    ("execution_time_ms = 2.5e2", {2}),
    # trace.name
    ("trace.name = 'chat'", {1, 2, 5}),
    ("name != 'chat'", {3, 4}),
    ("trace.name LIKE 'Agent%'", {3}),
    ("trace.name LIKE 'agent%'", set()),
    ("trace.name ILIKE 'agent%'", {3}),
    ("trace.name IN ('retrieval', 'Agent Run')", {3, 4}),
    ("trace.name NOT IN ('chat')", {3, 4}),
    # previews and client request id
    ("trace.request_preview LIKE '%world'", {1}),
    ("request_preview ILIKE 'hello%'", {1, 3}),
    ("request_preview LIKE '100\\%%'", {2}),
    ("request_preview LIKE '1_0%'", {2}),
    ("trace.response_preview = 'it''s broken'", {2}),
    ('response_preview = "it\'s broken"', {2}),
    ("response_preview = 'it\\'s broken'", {2}),
    ("response_preview != 'Hi there'", {2}),
    ("trace.client_request_id = 'req-1'", {1}),
    ("client_request_id IN ('req-1', 'req-2', 'nope')", {1, 2}),
    # run_id and metadata
    (f"run_id = '{RUN_A}'", {1, 3}),
    (f"metadata.run_id = '{RUN_A}'", {1, 3}),
    (f"run_id != '{RUN_A}'", set()),
    ("metadata.user = 'alice'", {1, 3}),
    ("metadata.user != 'alice'", {2}),
    ("metadata.session_id LIKE 's-%'", {3}),
    ("metadata.user IN ('bob')", {2}),
    ("metadata.`user` ILIKE 'ALI%'", {1, 3}),
    # tags (a missing tag never matches)
    ("tags.env = 'prod'", {1}),
    ("tags.env != 'prod'", {2, 5}),
    ("tags.env IN ('dev', 'staging')", {2, 5}),
    ("tags.env NOT IN ('dev')", {1, 5}),
    ("tags.env LIKE '%a%'", {5}),
    ("tags.env ILIKE 'PROD'", {1}),
    ("tags.`my.key` = 'dotted'", {1}),
    ("tags.my.key = 'dotted'", {1}),
    ("tags.`my key` = 'spaced'", {1}),
    ("tags.`a``b` = 'tick'", {1}),
    ("tags.missing = 'x'", set()),
    # spans: each condition is "some span of the trace matches"
    ("span.name = 'search'", {1, 3}),
    ("span.name != 'chat'", {1, 2, 3, 4}),
    ("span.name LIKE 'open%'", {1}),
    ("span.name ILIKE 'AGENT%'", {3}),
    ("span.type = 'LLM'", {1}),
    ("span.type IN ('LLM', 'CHAT_MODEL')", {1, 2}),
    ("span.type NOT IN ('CHAIN')", {1, 2, 3, 4}),
    ("span.status = 'ERROR'", {1, 2}),
    ("span.status = 'unset'", {3}),
    ("span.status != 'OK'", {1, 2, 3}),
    ("span.name = 'search' AND span.type = 'TOOL'", {1}),
    ("span.name = 'chat' AND span.type = 'LLM'", {1}),  # two different spans of trace 1
    # span attributes compare their JSON value as text
    ("span.attributes.`gen_ai.model` = 'gpt-4o'", {1}),
    ("span.attributes.`gen_ai.model` != 'gpt-4o'", {2}),
    ("span.attributes.`gen_ai.model` LIKE 'gpt%'", {1}),
    ("span.attributes.`gen_ai.model` ILIKE 'CLAUDE%'", {2}),
    ("span.attributes.`gen_ai.model` IN ('claude-3', 'x')", {2}),
    ("span.attributes.`gen_ai.model` NOT IN ('claude-3')", {1}),
    ("span.attributes.temperature = '0.7'", {1}),
    ("span.attributes.temperature = 0.7", {1}),
    ("span.attributes.temperature = 0", {2}),
    ("span.attributes.n = 3", {1}),
    ("span.attributes.stream = 'true'", {1}),
    ("span.attributes.stream = 'false'", {2}),
    ("span.attributes.k = 'v'", {3}),
    ("span.attributes.`weird \"key\"` = 'x'", {4}),
    ("span.attributes.missing = 'x'", set()),
    # conjunctions mixing everything
    ("trace.status = 'OK' AND tags.env = 'prod' and span.type = 'LLM'", {1}),
    (f"name = 'chat' AND timestamp_ms > {TS + 1000} AND execution_time_ms < 300", {2}),
    ("metadata.user = 'alice' AND trace.status = 'OK'", {1}),
]


@pytest.mark.parametrize(("filter_string", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_every_field_and_operator(
    loaded: SqlStore, filter_string: str | None, expected: set[int]
) -> None:
    traces, token = loaded.search_traces(filter_string=filter_string, include_spans=False)
    assert {int(x.info.trace_id[3:], 16) for x in traces} == expected
    assert token is None


HOSTILE = [
    "'; DROP TABLE traces; --",
    "trace.name = ''; DROP TABLE traces; --",
    "trace.name = 'x' ; DELETE FROM spans",
    "trace.name = 'x' UNION SELECT * FROM traces",
    "trace.name = 'x' OR 1=1",
    "tags.`x` = 'a') OR ('1'='1",
    "trace.timestamp_ms > 0 -- comment",
    "trace.name = 'x' /* c */",
    "span.attributes.`a' OR '1'='1` = 'x') OR 1=1 --",
    'trace.name = "x\\" OR \\"1\\"=\\"1""',
    "trace.status IN (SELECT state FROM traces)",
    "1=1",
    "trace.name = 'x'\x00",
]


@pytest.mark.parametrize("filter_string", HOSTILE)
def test_hostile_filters_are_syntax_errors_and_data_survives(
    loaded: SqlStore, filter_string: str
) -> None:
    with pytest.raises(FilterSyntaxError):
        loaded.search_traces(filter_string=filter_string)
    traces, _ = loaded.search_traces()
    assert len(traces) == 5


@pytest.mark.parametrize(
    "filter_string",
    [
        "trace.timestamp_ms > " + "9" * 5000,  # issue 12: a ValueError (int digit limit)
        "span.attributes.max_tokens = " + "1" * 4301,
        "trace.name = '" + "x" * (search.MAX_STRING_LITERAL + 1) + "'",
    ],
)
def test_oversized_literals_are_syntax_errors(loaded: SqlStore, filter_string: str) -> None:
    with pytest.raises(FilterSyntaxError, match="at position") as caught:
        loaded.search_traces(filter_string=filter_string)
    assert caught.value.token and caught.value.token in filter_string


@pytest.mark.parametrize(
    "filter_string",
    [
        "trace.name = '''; DROP TABLE traces; --'",
        "tags.`'; DROP TABLE traces; --` = 'x'",
        "span.attributes.`$.a\"); DROP TABLE spans; --` = 'x'",
        "trace.name LIKE '%'' OR ''1''=''1'",
    ],
)
def test_sql_inside_values_and_keys_is_just_data(loaded: SqlStore, filter_string: str) -> None:
    traces, _ = loaded.search_traces(filter_string=filter_string)
    assert traces == []
    assert len(loaded.search_traces()[0]) == 5


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (None, [5, 4, 3, 2, 1]),
        ([], [5, 4, 3, 2, 1]),
        (["timestamp_ms DESC"], [5, 4, 3, 2, 1]),
        (["timestamp_ms ASC"], [1, 2, 3, 4, 5]),
        (["trace.timestamp_ms"], [1, 2, 3, 4, 5]),
        (["execution_time_ms ASC"], [4, 1, 2, 5, 3]),
        (["execution_time_ms DESC"], [5, 2, 1, 4, 3]),
        (["name ASC", "timestamp_ms DESC"], [3, 5, 2, 1, 4]),
        (["trace.status DESC", "timestamp_ms ASC"], [1, 4, 5, 3, 2]),
        (["status"], [2, 3, 1, 4, 5]),
    ],
)
def test_order_by(loaded: SqlStore, order_by: list[str] | None, expected: list[int]) -> None:
    traces, _ = loaded.search_traces(order_by=order_by, include_spans=False)
    assert [int(x.info.trace_id[3:], 16) for x in traces] == expected


@pytest.mark.parametrize("order_by", [["bogus"], ["timestamp_ms sideways"], ["span.name ASC"]])
def test_bad_order_by_is_a_filter_syntax_error(loaded: SqlStore, order_by: list[str]) -> None:
    with pytest.raises(FilterSyntaxError, match="order_by"):
        loaded.search_traces(order_by=order_by)


def test_equal_timestamps_page_stably_by_trace_id(store: SqlStore) -> None:
    store.log_batch([trace_row(n, request_time=BASE_MS) for n in range(1, 8)], [])
    seen: list[str] = []
    token = None
    while True:
        page, token = store.search_traces(max_results=3, page_token=token, include_spans=False)
        seen += [x.info.trace_id for x in page]
        if token is None:
            break
    assert seen == sorted(tid(n) for n in range(1, 8))


def test_paging_through_250_traces(store: SqlStore) -> None:
    rows, spans = [], []
    for n in range(1, 251):
        row, pair = simple_trace(n, tags={"parity": str(n % 2)})
        rows.append(row)
        spans += pair
    store.log_batch(rows, spans)
    pages: list[list[str]] = []
    token = None
    while True:
        page, token = store.search_traces(max_results=100, page_token=token)
        pages.append([x.info.trace_id for x in page])
        assert all(len(x.data.spans) == 2 for x in page)
        if token is None:
            break
    assert [len(p) for p in pages] == [100, 100, 50]
    flat = [trace_id for page in pages for trace_id in page]
    assert flat == [tid(n) for n in range(250, 0, -1)]
    odd, token = store.search_traces(filter_string="tags.parity = '1'", max_results=200)
    assert len(odd) == 125 and token is None


def test_include_spans_false_never_reads_the_spans_table(
    loaded: SqlStore, statements: list[str]
) -> None:
    traces, _ = loaded.search_traces(
        filter_string="tags.env = 'prod' AND metadata.user = 'alice'", include_spans=False
    )
    assert len(traces) == 1 and traces[0].data.spans == []
    assert traces[0].info.tags["env"] == "prod"
    assert statements and not any("spans" in s.lower() for s in statements)


def test_include_spans_loads_the_page_spans_in_one_query(
    loaded: SqlStore, statements: list[str]
) -> None:
    traces, _ = loaded.search_traces()
    assert sorted(len(x.data.spans) for x in traces) == [1, 1, 2, 2, 3]
    assert sum("from spans" in s.lower() for s in statements) == 1


def test_experiment_ids_and_run_id_narrow_the_search(store: SqlStore) -> None:
    store.log_batch(
        [
            trace_row(1, experiment_id="1"),
            trace_row(2, experiment_id="2", run_id=RUN_A),
            trace_row(3, experiment_id="2"),
        ],
        [],
    )

    def ids(**kwargs: object) -> list[int]:
        traces, _ = store.search_traces(**kwargs)  # type: ignore[arg-type]
        return sorted(int(x.info.trace_id[3:], 16) for x in traces)

    assert ids(experiment_ids=["2"]) == [2, 3]
    assert ids(experiment_ids=["1", "2"]) == [1, 2, 3]
    assert ids(experiment_ids=[]) == []
    assert ids(experiment_ids=["2"], run_id=RUN_A) == [2]
    assert ids() == [1, 2, 3]


@pytest.mark.parametrize("max_results", [0, -1, 50_001, "10", 1.5, None])
def test_max_results_must_be_1_to_50000(loaded: SqlStore, max_results: object) -> None:
    with pytest.raises(InvalidArgumentError, match="max_results"):
        loaded.search_traces(max_results=max_results)  # type: ignore[arg-type]


@pytest.mark.parametrize("token", ["nope", "e30=", "eyJvZmZzZXQiOiAiMSJ9"])
def test_a_bad_page_token_is_an_argument_error(loaded: SqlStore, token: str) -> None:
    with pytest.raises(InvalidArgumentError, match="page_token"):
        loaded.search_traces(page_token=token)


def test_the_tables_survive_every_search(loaded: SqlStore) -> None:
    with loaded.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {table.name for table in t.ALL_TABLES} <= tables


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.one_of(token_soup, st.text(max_size=60)))
def test_fuzzed_filters_succeed_or_raise_filter_syntax_error(loaded: SqlStore, text: str) -> None:
    try:
        loaded.search_traces(filter_string=text, max_results=10)
    except FilterSyntaxError:
        pass


def test_the_largest_accepted_filters_run_on_the_database(loaded: SqlStore) -> None:
    started = time.monotonic()
    values = ", ".join(f"'v{i}'" for i in range(search.MAX_IN_VALUES - 2))
    conditions = [f"trace.name NOT IN ({values})", "span.name IN ('chat', 'x')"]
    conditions += [f"span.attributes.`k{i}` != 'x'" for i in range(search.MAX_CONDITIONS - 3)]
    conditions.append(f"request_preview LIKE '{'%é' * (search.MAX_LIKE_PATTERN // 2)}'")
    traces, _ = loaded.search_traces(filter_string=" AND ".join(conditions))
    assert traces == []
    ids = [str(i) for i in range(400)]
    assert len(loaded.search_traces(experiment_ids=ids, filter_string=conditions[0])[0]) == 5
    with pytest.raises(InvalidArgumentError, match="at most 400 experiments"):
        loaded.search_traces(experiment_ids=[*ids, "401"])
    assert time.monotonic() - started < 5  # no planner blow-up on 100 EXISTS conditions


def test_span_attribute_filter_reads_any_json_spelling(store: SqlStore) -> None:
    """The substring pre-filter on the attributes text never hides a match: values that a
    JSON encoder may escape (or store unquoted) are still found by the exact JSON test."""
    spans = [
        span_row(1, 0, attributes={"model": "m7", "n": 100, "flag": True, "note": "a/b"}),
        span_row(2, 0, attributes={"model": "m70", "n": 1000}),
        span_row(3, 0, attributes={"model": "caf\u00e9", "note": "<tag>"}),
    ]
    # Another producer's spelling: every non-ASCII and markup character \u-escaped.
    escaped = dataclasses.replace(
        spans[2],
        attributes_json='{"model": "caf\\u00e9", "note": "\\u003ctag\\u003e"}',
    )
    store.log_batch([trace_row(n) for n in (1, 2, 3)], [spans[0], spans[1], escaped])

    def found(filter_string: str) -> set[int]:
        traces, _ = store.search_traces(filter_string=filter_string)
        return {int(x.info.trace_id[3:], 16) for x in traces}

    assert found("span.attributes.model = 'm7'") == {1}
    assert found("span.attributes.n = 100") == {1}
    assert found("span.attributes.n = '1000'") == {2}
    assert found("span.attributes.flag = 'true'") == {1}
    assert found("span.attributes.note = 'a/b'") == {1}
    assert found("span.attributes.model = 'café'") == {3}
    assert found("span.attributes.note = '<tag>'") == {3}
    assert found("span.attributes.model LIKE 'm7%'") == {1, 2}


def test_text_prefilter_needles() -> None:
    """Which substrings the span-attribute pre-filter requires (and which it must not)."""
    [comparison] = search.parse_filter("span.attributes.model = 'gpt-4o'")
    assert _needles(comparison, "sqlite") == [
        '"model"',
        '"gpt-4o"',
    ]
    for unquoted in (
        "span.attributes.n = 100",
        "span.attributes.flag = 'true'",
        "span.attributes.x = '1e5'",
    ):
        [comparison] = search.parse_filter(unquoted)
        assert _needles(comparison, "sqlite") == [f'"{comparison.field.key}"']
    [comparison] = search.parse_filter("span.attributes.`a<b` = 'x/y'")
    assert _needles(comparison, "postgresql") == []


def _needles(comparison: search.Comparison, dialect: str) -> list[str]:
    conditions = search._text_prefilter(t.spans.c.attributes, comparison, dialect)
    return [c.left.clauses.clauses[1].value for c in conditions]  # find(attributes, :needle) > 0
