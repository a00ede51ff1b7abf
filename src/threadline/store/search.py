"""The filter language of ``search_traces`` / ``search_runs`` / ``search_sessions``, order_by
and page tokens. The language itself is four modules: ``_filter_tokens`` (text → tokens), ``_filter_fields``
(identifiers → fields and their value types), ``_filter_parser`` (tokens → ``Comparison``
nodes) and ``_filter_sql`` (nodes → SQLAlchemy conditions with bound parameters); this
module is their entry point.

Grammar (keywords are case-insensitive)::

    filter      := [ conjunction ] EOF                -- an empty filter matches all
    conjunction := term ( AND term )*
    term        := comparison                         -- NOT and parentheses will go here
    comparison  := field op value
                 | field [NOT] IN "(" value ( "," value )* ")"
                 | field IS [NOT] NULL                -- feedback.<name>, expectation.<name>
    op          := "=" | "!=" | "<" | "<=" | ">" | ">=" | LIKE | ILIKE
    field       := name ( "." ( name | `backtick key` ) )*
    value       := 'single' | "double" quoted string | number | TRUE | FALSE

Strings accept doubled quotes (``'it''s'``) and backslash escapes (``\\'``, ``\\"``,
``\\\\``, ``\\n``, ``\\t``); any other backslash is kept, so ``LIKE '100\\%'`` matches a
literal ``%`` (patterns use ``\\`` as their escape character on both back ends).
A number is at most ``MAX_NUMBER_LITERAL`` (100) characters as written and a string value
at most ``MAX_STRING_LITERAL`` (10,000) once decoded; a longer one is a syntax error.
Every mistake is a ``FilterSyntaxError`` naming the token and its position (0-based, in
characters); no user text ever becomes SQL text.

Semantics worth knowing:

* ``tags.k`` / ``metadata.k`` / ``params.k`` / ``metrics.k`` match only rows that have the
  key: ``tags.k != 'x'`` means "has tag k, with a value other than x". ``trace.session_id``
  and ``trace.user`` are ``metadata.session_id`` and ``metadata.user``.
* Each ``span.*`` condition is its own "the trace has at least one span such that …"
  (an ``EXISTS``); two span conditions may be satisfied by different spans.
* ``span.attributes.k`` compares the attribute's JSON value as text: a JSON string by its
  content, a number by its text, ``true``/``false`` as those words. A bare number is
  accepted there and compared by its text (``span.attributes.max_tokens = 100``).
* ``feedback.<name>`` / ``expectation.<name>`` test the trace's valid (not overridden)
  assessments of that name: numbers compare as numbers, ``true``/``false`` (also quoted) as
  booleans, other strings as text, each only against values of that type; ``IS NOT NULL``
  means the trace has one with a value, ``IS NULL`` that it has none.
* A missing value (``NULL``) never matches, whatever the operator.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from threadline.errors import FilterSyntaxError, InvalidArgumentError
from threadline.store._filter_fields import (
    RUN_FIELDS_HELP,
    TRACE_FIELDS_HELP,
    Field,
    FieldResolver,
    resolve_run_field,
    resolve_trace_field,
)
from threadline.store._filter_parser import Comparison, Operator, parse_filter
from threadline.store._filter_sql import _text_prefilter, compile_run_filter, compile_trace_filter
from threadline.store._filter_tokens import (
    MAX_CONDITIONS,
    MAX_FILTER_LENGTH,
    MAX_IN_VALUES,
    MAX_NUMBER_LITERAL,
    MAX_OFFSET,
    MAX_STRING_LITERAL,
    SPAN_STATUSES,
    TRACE_STATES,
    Token,
    _Source,
    tokenize,
)
from threadline.store._like import MAX_LIKE_PATTERN

__all__ = [
    "MAX_CONDITIONS",
    "MAX_FILTER_LENGTH",
    "MAX_IN_VALUES",
    "MAX_LIKE_PATTERN",
    "MAX_NUMBER_LITERAL",
    "MAX_STRING_LITERAL",
    "RUN_FIELDS_HELP",
    "RUN_ORDER_COLUMNS",
    "SPAN_STATUSES",
    "TRACE_FIELDS_HELP",
    "TRACE_ORDER_COLUMNS",
    "TRACE_STATES",
    "Comparison",
    "Field",
    "FieldResolver",
    "Operator",
    "OrderKey",
    "Token",
    "_text_prefilter",
    "check_max_results",
    "compile_run_filter",
    "compile_trace_filter",
    "decode_page_token",
    "encode_page_token",
    "order_clauses",
    "parse_filter",
    "parse_order_by",
    "resolve_run_field",
    "resolve_trace_field",
    "tokenize",
]

# --- order_by ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` clause: a column name and a direction."""

    column: str
    ascending: bool


TRACE_ORDER_COLUMNS = {
    "timestamp_ms": "request_time",
    "timestamp": "request_time",
    "execution_time_ms": "execution_duration",
    "name": "name",
    "status": "state",
    "state": "state",
}
RUN_ORDER_COLUMNS = {
    "start_time": "start_time",
    "end_time": "end_time",
    "run_name": "run_name",
    "status": "status",
}


def parse_order_by(
    clauses: Sequence[str] | None,
    columns: dict[str, str],
    *,
    prefix: str | None = None,
    default: OrderKey,
) -> list[OrderKey]:
    """Parse ``["timestamp_ms DESC", …]`` into order keys (``default`` when empty)."""
    if clauses is None:
        return [default]
    if isinstance(clauses, str):
        clauses = [clauses]
    keys = [_parse_order_clause(clause, columns, prefix) for clause in clauses]
    return keys or [default]


def _parse_order_clause(clause: str, columns: dict[str, str], prefix: str | None) -> OrderKey:
    if not isinstance(clause, str):
        raise FilterSyntaxError(f"order_by entries must be strings, got {clause!r}")
    src = _Source(clause, "order_by")
    tokens = tokenize(clause, what="order_by")
    names = ", ".join(sorted(columns))
    first = tokens[0]
    if first.kind != "IDENT":
        raise src.error(
            f"expected a column name (one of {names}), got {first.text or 'end of input'!r}",
            token=first.text or "end of input",
            position=first.position,
        )
    segments = [s.lower() for s in first.value]
    if prefix and len(segments) == 2 and segments[0] == prefix:
        segments = segments[1:]
    if len(segments) != 1 or segments[0] not in columns:
        raise src.error(
            f"cannot order by {first.text!r}; use one of {names}",
            token=first.text,
            position=first.position,
        )
    direction = tokens[1]
    ascending = True
    rest = 2
    if direction.kind == "IDENT" and direction.text.upper() in ("ASC", "DESC"):
        ascending = direction.text.upper() == "ASC"
    else:
        rest = 1
    if tokens[rest].kind != "EOF":
        raise src.error(
            f"expected ASC, DESC or the end, got {tokens[rest].text!r}",
            token=tokens[rest].text,
            position=tokens[rest].position,
        )
    return OrderKey(columns[segments[0]], ascending)


def order_clauses(
    keys: Sequence[OrderKey], table: sa.Table, tie_breaker: str
) -> list[sa.UnaryExpression[Any]]:
    """ORDER BY expressions (NULLs last on both back ends) plus a unique tie-breaker.

    ``NULLS LAST`` is left out on columns that cannot hold NULL: it changes nothing there,
    but PostgreSQL then cannot read a descending order off an index (a backward scan gives
    NULLs first) and sorts every matching row instead of stopping after a page; the trace
    list at 100k traces took 137 ms that way, 28 ms without.
    """
    out = []
    for key in keys:
        column = table.c[key.column]
        ordered = column.asc() if key.ascending else column.desc()
        out.append(ordered.nulls_last() if column.nullable else ordered)
    out.append(table.c[tie_breaker].asc())
    return out


# --- page tokens -------------------------------------------------------------------------


def encode_page_token(offset: int) -> str:
    """An opaque token for the page starting at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    """The offset a page token stands for (0 for ``None``); a bad token is an argument error."""
    if token is None or token == "":
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError, AttributeError) as exc:
        raise InvalidArgumentError(
            f"Invalid page_token {token!r}: pass the token returned by the previous search."
        ) from exc
    offset = data.get("offset") if isinstance(data, dict) else None
    if type(offset) is not int or not 0 <= offset <= MAX_OFFSET:
        raise InvalidArgumentError(
            f"Invalid page_token {token!r}: pass the token returned by the previous search."
        )
    return offset


def check_max_results(max_results: int, *, limit: int = 50_000) -> int:
    """``max_results`` as an int in 1..limit, else an argument error naming the bound."""
    if type(max_results) is not int or not 1 <= max_results <= limit:
        raise InvalidArgumentError(
            f"max_results must be an integer between 1 and {limit}, got {max_results!r}."
        )
    return max_results
