"""The filter language's grammar: tokens into ``Comparison`` nodes with resolved fields.

The parser is recursive descent, one method per rule; fields are resolved by
``_filter_fields`` and the typed value of each literal is checked against its field here,
so the SQL compiler (``_filter_sql``) only ever sees well-formed conditions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from threadline.entities.run import RunStatus
from threadline.errors import FilterSyntaxError
from threadline.store._filter_fields import (
    Field,
    FieldResolver,
    resolve_trace_field,
)
from threadline.store._filter_tokens import (
    MAX_CONDITIONS,
    MAX_IN_VALUES,
    SPAN_STATUSES,
    TRACE_STATES,
    Token,
    _Source,
    tokenize,
)
from threadline.store._like import like_pattern_problem

# --- parser ------------------------------------------------------------------------------

Operator = Literal[
    "=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"
]  # fmt: skip
_STRING_OPS: tuple[Operator, ...] = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_ENUM_OPS: tuple[Operator, ...] = ("=", "!=", "IN", "NOT IN")
_NUMBER_OPS: tuple[Operator, ...] = ("=", "!=", "<", "<=", ">", ">=")
_ORDERING_OPS = ("<", "<=", ">", ">=")
_ASSESSMENT_OPS: tuple[Operator, ...] = (*_NUMBER_OPS, "LIKE", "ILIKE", "IN", "NOT IN")
_NULL_OPS: tuple[Operator, ...] = ("IS NULL", "IS NOT NULL")
_ENUM_VALUES: dict[str, tuple[str, ...]] = {
    "trace_state": TRACE_STATES,
    "span_status": SPAN_STATUSES,
    "run_status": RunStatus.ALL,
}
_BOOLEAN_WORDS = {"TRUE": True, "FALSE": False}

#: A literal: text, a number, or (for feedback and expectations) a boolean.
Value = str | int | float | bool


@dataclass(frozen=True)
class Comparison:
    """One condition of a filter: ``field op value`` (a tuple of values for IN / NOT IN,
    ``None`` for IS NULL / IS NOT NULL)."""

    field: Field
    op: Operator
    value: Value | tuple[Value, ...] | None


class _Parser:
    """Recursive descent over the token list; one method per grammar rule.

    ``conjunction`` joins ``term``s with AND. A term is one comparison today; it is the
    rule that parentheses and NOT will extend, with ``OR`` as a rule above ``conjunction``.
    """

    def __init__(self, src: _Source, tokens: list[Token], resolve: FieldResolver) -> None:
        self.src = src
        self.tokens = tokens
        self.index = 0
        self.resolve = resolve
        self.list_values = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "EOF":
            self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "KEYWORD" and self.current.value in words

    def fail(self, detail: str, token: Token | None = None) -> FilterSyntaxError:
        token = token or self.current
        shown = token.text or "end of input"
        return self.src.error(detail, token=shown, position=token.position)

    def parse_filter(self) -> list[Comparison]:
        """filter := [ conjunction ] EOF"""
        if self.current.kind == "EOF":
            return []
        comparisons = self.conjunction()
        if self.at_keyword("OR"):
            raise self.fail("'OR' is not supported: a filter is conditions joined by AND")
        if self.current.kind != "EOF":
            raise self.fail(f"expected 'AND' or the end of the filter, got {self.current.text!r}")
        return comparisons

    def conjunction(self) -> list[Comparison]:
        """conjunction := term ( AND term )*"""
        comparisons = [self.term()]
        while self.at_keyword("AND"):
            self.advance()
            if self.current.kind == "EOF":
                raise self.fail("expected a condition after 'AND'")
            comparisons.append(self.term())
            if len(comparisons) > MAX_CONDITIONS:
                raise self.fail(f"more than {MAX_CONDITIONS} conditions")
        return comparisons

    def term(self) -> Comparison:
        """term := comparison"""
        if self.current.kind == "LPAREN" or self.at_keyword("NOT"):
            raise self.fail(
                f"{self.current.text!r} is not supported here: a filter is conditions joined by AND"
            )
        return self.comparison()

    def comparison(self) -> Comparison:
        """comparison := field op value | field [NOT] IN ( values ) | field IS [NOT] NULL"""
        token = self.current
        if token.kind != "IDENT":
            raise self.fail(f"expected a field name{_got(token)}")
        self.advance()
        field = self.resolve(token, self.src)
        op_token = self.current
        op = self.operator(field)
        if op in _NULL_OPS:
            return Comparison(field, op, None)
        if op in ("IN", "NOT IN"):
            return Comparison(field, op, self.value_list(field, op, op_token))
        value = self.value(field, op, op_token)
        if op in ("LIKE", "ILIKE"):
            _check_like_pattern(self, str(value), op_token)
        return Comparison(field, op, value)

    def operator(self, field: Field) -> Operator:
        token = self.current
        if token.kind == "OP":
            op: Operator = token.value
        elif self.at_keyword("LIKE", "ILIKE", "IN"):
            op = token.value
        elif self.at_keyword("NOT"):
            self.advance()
            if not self.at_keyword("IN"):
                raise self.fail("expected 'IN' after 'NOT'")
            op = "NOT IN"
        elif self.at_keyword("IS"):
            self.advance()
            negated = self.at_keyword("NOT")
            if negated:
                self.advance()
            if not self.at_keyword("NULL"):
                raise self.fail(f"expected 'NULL' after {'IS NOT' if negated else 'IS'}")
            op = "IS NOT NULL" if negated else "IS NULL"
        else:
            raise self.fail(f"expected an operator after {field.text!r}{_got(token)}")
        allowed = _allowed_ops(field)
        if op not in allowed:
            hint = (
                "; IS NULL and IS NOT NULL are for feedback.<name> and expectation.<name>"
                if op in _NULL_OPS
                else ""
            )
            raise self.fail(
                f"operator {op!r} is not supported for {_type_label(field)} field "
                f"{field.text!r}; use one of {', '.join(allowed)}{hint}",
                token,
            )
        self.advance()
        return op

    def value(self, field: Field, op: Operator, after: Token) -> Value:
        token = self.current
        if token.kind not in ("STRING", "NUMBER") and not self.at_keyword(*_BOOLEAN_WORDS):
            hint = " (string values must be quoted)" if token.kind == "IDENT" else ""
            raise self.fail(f"expected a value after {after.text!r}{_got(token)}{hint}")
        self.advance()
        return _typed_value(self, field, op, token)

    def value_list(self, field: Field, op: Operator, after: Token) -> tuple[Value, ...]:
        if self.current.kind != "LPAREN":
            raise self.fail(f"expected '(' after {after.text!r}")
        self.advance()
        if self.current.kind == "RPAREN":
            raise self.fail(f"empty list after {after.text!r}; give at least one value")
        values: list[Value] = []
        while True:
            value = self.value(field, op, self.tokens[self.index - 1])
            values.append(value if field.value_type == "assessment" else str(value))
            self.list_values += 1
            if self.list_values > MAX_IN_VALUES:
                raise self.fail(f"more than {MAX_IN_VALUES} values in IN lists")
            if self.current.kind == "COMMA":
                self.advance()
                continue
            if self.current.kind == "RPAREN":
                self.advance()
                return tuple(values)
            raise self.fail(f"expected ',' or ')' in the value list, got {self.current.text!r}")


def _got(token: Token) -> str:
    """``", got 'x'"`` for a token, nothing at the end of input (the position says it)."""
    return "" if token.kind == "EOF" else f", got {token.text!r}"


def _allowed_ops(field: Field) -> tuple[Operator, ...]:
    if field.value_type == "assessment":
        return (*_ASSESSMENT_OPS, *_NULL_OPS)
    if field.value_type == "number":
        return _NUMBER_OPS
    if field.value_type in _ENUM_VALUES:
        return _ENUM_OPS
    return _STRING_OPS


def _type_label(field: Field) -> str:
    labels = {"number": "numeric", "string": "string", "assessment": field.kind}
    return labels.get(field.value_type, "status")


def _typed_value(parser: _Parser, field: Field, op: Operator, token: Token) -> Value:
    """Check the literal's type against the field's; normalise status values."""
    if field.value_type == "assessment":
        return _assessment_value(parser, field, op, token)
    word = token.kind == "KEYWORD"  # TRUE or FALSE
    if field.value_type == "number":
        if token.kind != "NUMBER":
            raise parser.fail(f"{field.text!r} is numeric: expected a number", token)
        return token.value
    if token.kind == "NUMBER" or word:
        if field.kind == "span_attribute":  # compared with the attribute's JSON text
            return token.text.lower() if word else token.text.lstrip("+")
        kind = "a number" if token.kind == "NUMBER" else token.text
        raise parser.fail(f"{field.text!r} takes a quoted string, not {kind}", token)
    value: str = token.value
    choices = _ENUM_VALUES.get(field.value_type)
    if choices is not None:
        if value.upper() not in choices:
            raise parser.fail(
                f"invalid value {value!r} for {field.text!r}; use one of {', '.join(choices)}",
                token,
            )
        return value.upper()
    return value


def _assessment_value(parser: _Parser, field: Field, op: Operator, token: Token) -> Value:
    """Numbers as numbers, ``true``/``false`` (bare or quoted) as booleans, other strings as
    text; LIKE and ILIKE take text only, and ``<``, ``<=``, ``>``, ``>=`` numbers only."""
    value: Value
    if token.kind == "NUMBER":
        value = token.value
    elif token.kind == "KEYWORD":
        value = _BOOLEAN_WORDS[token.value]
    elif op not in ("LIKE", "ILIKE") and token.value.upper() in _BOOLEAN_WORDS:
        value = _BOOLEAN_WORDS[token.value.upper()]
    else:
        value = token.value
    if op in ("LIKE", "ILIKE") and token.kind != "STRING":
        raise parser.fail(f"{op} on {field.text!r} takes a quoted pattern", token)
    if op in _ORDERING_OPS and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise parser.fail(f"{op!r} on {field.text!r} compares numbers: expected a number", token)
    return value


def _check_like_pattern(parser: _Parser, pattern: str, op_token: Token) -> None:
    problem = like_pattern_problem(pattern)
    if problem is not None:
        raise parser.fail(
            f"the {op_token.text} pattern {_shown(pattern)} {problem} (a literal backslash "
            "is \\\\\\\\ in a filter: the string, then the pattern, unescape it)",
            parser.tokens[parser.index - 1],
        )


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:80] + "…")


def parse_filter(
    text: str | None, resolve: FieldResolver = resolve_trace_field
) -> list[Comparison]:
    """Parse a filter string into comparisons (``[]`` for ``None`` or blank text)."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise FilterSyntaxError(f"filter_string must be a string, got {type(text).__name__}")
    src = _Source(text)
    return _Parser(src, tokenize(text), resolve).parse_filter()
