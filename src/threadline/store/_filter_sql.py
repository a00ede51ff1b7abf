"""The filter language's SQL compiler: ``Comparison`` nodes into SQLAlchemy conditions.

Every value is a bound parameter, so user text never becomes SQL text; the only SQL text
written here is our own constants. Conditions on other tables are ``EXISTS`` subqueries
correlated with the row being filtered (``traces`` or ``runs``).

``feedback.<name>`` / ``expectation.<name>`` test the valid (not overridden) assessments of
that name through their typed columns: a number literal the numeric values, ``true`` /
``false`` the boolean ones, a string the text values. A comparison only ever matches values
of its literal's type (``feedback.x != 5`` is "a numeric x other than 5"), as a NULL never
matches; ``IS NOT NULL`` is "has a valid one with a value", ``IS NULL`` its negation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from threadline.store import tables as t
from threadline.store._filter_parser import Comparison
from threadline.store._like import like

# --- compiler: traces --------------------------------------------------------------------


def compile_trace_filter(
    comparisons: Sequence[Comparison], dialect: str
) -> list[sa.ColumnElement[bool]]:
    """SQL conditions on ``traces`` for the parsed filter (to be ANDed)."""
    return [_planned(_compile_trace_comparison(c, dialect), dialect) for c in comparisons]


def _planned(condition: sa.ColumnElement[bool], dialect: str) -> sa.ColumnElement[bool]:
    """Keep PostgreSQL from turning each EXISTS into a semi-join.

    Flattened, a filter with dozens of key conditions costs the planner seconds (join-order
    search over dozens of relations); as ``EXISTS (…) IS TRUE`` each stays a correlated
    sub-plan, checked per trace in ORDER BY order until the page is full.
    """
    if dialect == "postgresql" and isinstance(condition, sa.Exists):
        return condition.is_(sa.true())
    return condition


def _compile_trace_comparison(comparison: Comparison, dialect: str) -> sa.ColumnElement[bool]:
    field = comparison.field
    if field.kind == "trace":
        return _apply(t.traces.c[field.key], comparison)
    if field.kind in ("tag", "metadata"):
        table = t.trace_tags if field.kind == "tag" else t.trace_metadata
        return sa.exists().where(
            table.c.trace_id == t.traces.c.trace_id,
            table.c.key == field.key,
            _apply(table.c.value, comparison),
        )
    if field.kind == "span":
        return sa.exists().where(
            t.spans.c.trace_id == t.traces.c.trace_id,
            _apply(t.spans.c[field.key], comparison),
        )
    if field.kind == "span_attribute":
        return _span_attribute_exists(comparison, dialect)
    if field.kind in ("feedback", "expectation"):
        return _assessment_condition(comparison)
    raise AssertionError(f"unexpected field kind {field.kind!r}")


def _assessment_condition(comparison: Comparison) -> sa.ColumnElement[bool]:
    """EXISTS a valid assessment of the trace with this kind and name that passes the test."""
    a = t.assessments.c
    scope = [
        a.trace_id == t.traces.c.trace_id,
        a.name == comparison.field.key,
        a.kind == comparison.field.kind,
        a.valid == sa.true(),
    ]
    if comparison.op in ("IS NULL", "IS NOT NULL"):
        present = sa.exists().where(*scope, a.value_type.is_not(None))
        return present if comparison.op == "IS NOT NULL" else sa.not_(present)
    return sa.exists().where(*scope, _assessment_test(comparison))


def _assessment_test(comparison: Comparison) -> sa.ColumnElement[bool]:
    a = t.assessments.c
    op, value = comparison.op, comparison.value
    if isinstance(value, tuple):  # IN / NOT IN: each value against the values of its type
        groups: dict[str, tuple[sa.ColumnElement[Any], list[Any]]] = {}
        for item in value:
            kind, column, literal = _typed_column(item)
            groups.setdefault(kind, (column, []))[1].append(literal)
        matches = [
            sa.and_(a.value_type == kind, column.in_(literals))
            for kind, (column, literals) in groups.items()
        ]
        if op == "IN":
            return sa.or_(*matches)
        return sa.and_(a.value_type.in_(list(groups)), sa.not_(sa.or_(*matches)))
    assert value is not None
    kind, column, literal = _typed_column(value)
    return sa.and_(a.value_type == kind, _operate(column, op, literal))


def _typed_column(value: Any) -> tuple[str, sa.ColumnElement[Any], Any]:
    """The value type a literal matches, the column holding such values, the literal there."""
    a = t.assessments.c
    if isinstance(value, bool):
        return "boolean", a.value_number, 1.0 if value else 0.0
    if isinstance(value, (int, float)):  # as float: PostgreSQL would compare in NUMERIC
        return "number", a.value_number, float(value)
    return "string", a.value_text, value


def _span_attribute_exists(comparison: Comparison, dialect: str) -> sa.ColumnElement[bool]:
    """EXISTS a span of the trace whose attribute ``key``, read as text, satisfies the test."""
    key = comparison.field.key
    attributes = t.spans.c.attributes
    prefilter = _text_prefilter(attributes, comparison, dialect)
    if dialect == "postgresql":
        key_param = sa.cast(sa.bindparam(None, key, sa.Text), sa.Text)
        value = sa.cast(attributes, sa.JSON).op("->>")(key_param)
        return sa.exists().where(
            t.spans.c.trace_id == t.traces.c.trace_id,
            *prefilter,
            _apply(sa.type_coerce(value, sa.String), comparison),
        )
    if '"' not in key and "\\" not in key:
        # A quoted JSON path reads one key without expanding every attribute (json_each).
        path = sa.bindparam(None, f'$."{key}"', sa.Text)
        as_text = _sqlite_text(
            sa.func.json_type(attributes, path),
            sa.cast(sa.func.json_extract(attributes, path), sa.Text),
        )
        return sa.exists().where(
            t.spans.c.trace_id == t.traces.c.trace_id, *prefilter, _apply(as_text, comparison)
        )
    # A key holding '"' cannot be written as a JSON path: json_each finds it exactly.
    entries = sa.func.json_each(attributes).table_valued("key", "value", "type")
    entries = entries.alias("attribute")
    as_text = _sqlite_text(entries.c.type, sa.cast(entries.c.value, sa.Text))
    return sa.exists(
        sa.select(sa.literal_column("1"))
        .select_from(t.spans.join(entries, sa.true()))
        .where(
            t.spans.c.trace_id == t.traces.c.trace_id,
            entries.c.key == key,
            _apply(as_text, comparison),
        )
    )


def _sqlite_text(
    json_type: sa.ColumnElement[Any], value: sa.ColumnElement[Any]
) -> sa.ColumnElement[Any]:
    """A JSON value as the filter language compares it: true/false as words, null as NULL."""

    def constant(word: str) -> sa.ColumnElement[Any]:  # our own SQL text, not a parameter
        return sa.literal_column(f"'{word}'")

    return sa.case(
        (json_type == constant("true"), constant("true")),
        (json_type == constant("false"), constant("false")),
        (json_type == constant("null"), sa.null()),
        else_=value,
    )


# Text every JSON encoder writes as it is inside a string (no escapes): a substring test on
# the stored attributes text can then rule a span out before any JSON is parsed.
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9 _.:@+-]{1,200}")
# Values that may be the text of a JSON number or literal rather than of a string.
_NUMBER_OR_WORD = re.compile(r"[0-9.eE+-]*|true|false|null")


def _text_prefilter(
    attributes: sa.ColumnElement[Any], comparison: Comparison, dialect: str
) -> list[sa.ColumnElement[bool]]:
    """Cheap necessary conditions: the quoted key (and, for ``=`` on a string, the quoted
    value) appear in the attributes' JSON text. The exact JSON test still follows."""
    find = sa.func.strpos if dialect == "postgresql" else sa.func.instr
    needles = []
    if _PLAIN_TEXT.fullmatch(comparison.field.key):
        needles.append(f'"{comparison.field.key}"')
    value = comparison.value
    if (
        comparison.op == "="
        and isinstance(value, str)
        and _PLAIN_TEXT.fullmatch(value)
        and not _NUMBER_OR_WORD.fullmatch(value)  # those are stored unquoted
    ):
        needles.append(f'"{value}"')
    return [find(attributes, sa.bindparam(None, n, sa.Text)) > 0 for n in needles]


def _apply(column: sa.ColumnElement[Any], comparison: Comparison) -> sa.ColumnElement[bool]:
    """``column <op> value`` with bound parameters."""
    return _operate(column, comparison.op, comparison.value)


def _operate(column: sa.ColumnElement[Any], op: str, value: Any) -> sa.ColumnElement[bool]:
    if op == "IN":
        return column.in_(list(value))
    if op == "NOT IN":
        return column.not_in(list(value))
    if op in ("LIKE", "ILIKE"):
        return like(column, str(value), ignore_case=op == "ILIKE")
    operators: dict[str, Callable[[Any, Any], sa.ColumnElement[bool]]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return operators[op](column, value)


# --- compiler: runs ----------------------------------------------------------------------


def compile_run_filter(
    comparisons: Sequence[Comparison], dialect: str
) -> list[sa.ColumnElement[bool]]:
    """SQL conditions on ``runs`` for the parsed run filter (to be ANDed)."""
    return [_planned(_compile_run_comparison(c), dialect) for c in comparisons]


def _compile_run_comparison(comparison: Comparison) -> sa.ColumnElement[bool]:
    field = comparison.field
    if field.kind == "run":
        return _apply(t.runs.c[field.key], comparison)
    table = {
        "param": t.run_params,
        "run_tag": t.run_tags,
        "metric": t.run_latest_metrics,
    }[field.kind]
    return sa.exists().where(
        table.c.run_id == t.runs.c.run_id,
        table.c.key == field.key,
        _apply(table.c.value, comparison),
    )
