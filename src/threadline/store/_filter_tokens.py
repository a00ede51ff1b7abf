"""The filter language's tokenizer: text into tokens, each with its position.

Strings accept doubled quotes (``'it''s'``) and backslash escapes (``\\'``, ``\\"``,
``\\\\``, ``\\n``, ``\\t``); any other backslash is kept, so ``LIKE '100\\%'`` matches a
literal ``%`` (patterns use ``\\`` as their escape character on both back ends). A number
is at most ``MAX_NUMBER_LITERAL`` characters as written and a string value at most
``MAX_STRING_LITERAL`` once decoded; a longer one is a syntax error, as is any character
no database keeps in a text parameter (NUL, a lone surrogate). ``_Source`` makes every
error a ``FilterSyntaxError`` naming the token and its position (0-based, in characters).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from threadline.errors import FilterSyntaxError
from threadline.store._like import MAX_LIKE_PATTERN

# Limits that keep every accepted filter within what both databases execute quickly:
# bound parameters (SQLite: 32,766; under 1,000 even with 100 conditions and 500 list
# values, so SQLite builds older than 3.32 cope too) and LIKE pattern size (``_like``).
MAX_CONDITIONS = 100
MAX_IN_VALUES = 500  # across all the IN lists of a filter
MAX_STRING_LITERAL = MAX_LIKE_PATTERN  # characters of one quoted value, once decoded
# Characters of one number as written: far more than any int64 or float needs, far less
# than Python's int-from-text limit (4,300 digits), so a number never fails to convert.
MAX_NUMBER_LITERAL = 100
MAX_FILTER_LENGTH = 100_000
MAX_OFFSET = 2**53

TRACE_STATES = ("OK", "ERROR", "IN_PROGRESS")
SPAN_STATUSES = ("OK", "ERROR", "UNSET")

# --- tokens ------------------------------------------------------------------------------

TokenKind = Literal[
    "IDENT", "STRING", "NUMBER", "OP", "KEYWORD", "LPAREN", "RPAREN", "COMMA", "EOF"
]
KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL", "TRUE", "FALSE"})
COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")

_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_]+")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_STRING_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Token:
    """One lexeme: its kind, source text, decoded value and position in the filter."""

    kind: TokenKind
    text: str
    position: int
    value: Any = None  # decoded string, number, identifier segments or upper-cased keyword


class _Source:
    """The filter text plus helpers to raise well-formed errors about it."""

    def __init__(self, text: str, what: str = "filter") -> None:
        self.text = text
        self.what = what

    def error(self, detail: str, *, token: str | None, position: int) -> FilterSyntaxError:
        shown = self.text if len(self.text) <= 200 else self.text[:200] + "…"
        return FilterSyntaxError(
            f"Invalid {self.what} {shown!r}: {detail} at position {position}",
            token=token,
            position=position,
        )


def tokenize(text: str, *, what: str = "filter") -> list[Token]:
    """Split ``text`` into tokens, ending with an ``EOF`` token."""
    src = _Source(text, what)
    if len(text) > MAX_FILTER_LENGTH:
        raise src.error(
            f"the {what} is longer than {MAX_FILTER_LENGTH} characters", token=None, position=0
        )
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        token = _next_token(src, pos)
        tokens.append(token)
        pos += len(token.text)
    tokens.append(Token("EOF", "", len(text)))
    return tokens


def _next_token(src: _Source, pos: int) -> Token:
    text = src.text
    char = text[pos]
    if char in "'\"":
        return _string_token(src, pos)
    if char in "(),":
        kind: TokenKind = {"(": "LPAREN", ")": "RPAREN", ",": "COMMA"}[char]  # type: ignore[assignment]
        return Token(kind, char, pos)
    two = text[pos : pos + 2]
    if two in ("!=", "<=", ">="):
        return Token("OP", two, pos, two)
    if char in "=<>":
        return Token("OP", char, pos, char)
    number = _NUMBER.match(text, pos)
    if number and (char.isdigit() or char in "+-."):
        return _number_token(src, number.group(), pos)
    if _BARE_NAME.match(text, pos):
        return _identifier_token(src, pos)
    if char == "`":
        raise src.error(
            "a backtick-quoted key must follow a field prefix such as tags. or span.attributes.",
            token="`",
            position=pos,
        )
    raise src.error(f"unexpected character {char!r}", token=char, position=pos)


def _string_token(src: _Source, start: int) -> Token:
    text, quote = src.text, src.text[start]
    out: list[str] = []
    pos = start + 1
    while pos < len(text):
        if len(out) > MAX_STRING_LITERAL:
            raise src.error(
                f"the string value starting with {text[start : start + 20]!r} is longer than "
                f"{MAX_STRING_LITERAL} characters",
                token=text[start : start + 20],
                position=start,
            )
        char = text[pos]
        _refuse_unstorable(src, char, pos)
        if char == "\\" and pos + 1 < len(text):
            nxt = text[pos + 1]
            _refuse_unstorable(src, nxt, pos + 1)
            out.append(_STRING_ESCAPES.get(nxt, "\\" + nxt))
            pos += 2
        elif char == quote and text[pos + 1 : pos + 2] == quote:
            out.append(quote)
            pos += 2
        elif char == quote:
            raw = text[start : pos + 1]
            return Token("STRING", raw, start, "".join(out))
        else:
            out.append(char)
            pos += 1
    raise src.error(
        f"unterminated string starting with {text[start : start + 20]!r}",
        token=text[start : start + 20],
        position=start,
    )


def _refuse_unstorable(src: _Source, char: str, position: int) -> None:
    """Refuse characters no database accepts in a text parameter (NUL, lone surrogates)."""
    if char == "\x00" or "\ud800" <= char <= "\udfff":
        raise src.error(
            f"character {char!r} is not allowed in a value", token=char, position=position
        )


def _number_token(src: _Source, raw: str, pos: int) -> Token:
    if len(raw) > MAX_NUMBER_LITERAL:
        raise src.error(
            f"the number starting with {raw[:20]!r} has {len(raw)} characters; a number has "
            f"at most {MAX_NUMBER_LITERAL}",
            token=raw[:20],
            position=pos,
        )
    if re.fullmatch(r"[-+]?\d+", raw):
        number: int | float = int(raw)
        if abs(number) > _INT64_MAX:
            number = float(number)
    else:
        number = float(raw)
    if math.isinf(number):
        raise src.error(f"number {raw!r} is out of range", token=raw, position=pos)
    return Token("NUMBER", raw, pos, number)


def _identifier_token(src: _Source, start: int) -> Token:
    """A dotted name; segments after the first may be bare keys or backtick-quoted keys."""
    text = src.text
    first = _BARE_NAME.match(text, start)
    assert first is not None
    segments = [first.group()]
    pos = first.end()
    if segments[0].upper() in KEYWORDS and not text.startswith(".", pos):
        return Token("KEYWORD", segments[0], start, segments[0].upper())
    while text.startswith(".", pos):
        pos += 1
        if text.startswith("`", pos):
            key, pos = _backtick_key(src, pos)
            segments.append(key)
            continue
        bare = _BARE_KEY.match(text, pos)
        if bare is None:
            raise src.error(
                "expected a key after '.' (quote keys with special characters in backticks)",
                token=text[pos : pos + 1] or "end of input",
                position=pos,
            )
        segments.append(bare.group())
        pos = bare.end()
    return Token("IDENT", text[start:pos], start, tuple(segments))


def _backtick_key(src: _Source, start: int) -> tuple[str, int]:
    """Read `key` (a doubled backtick stands for one); return the key and the end position."""
    text = src.text
    out: list[str] = []
    pos = start + 1
    while pos < len(text):
        _refuse_unstorable(src, text[pos], pos)
        if text[pos] == "`" and text[pos + 1 : pos + 2] == "`":
            out.append("`")
            pos += 2
        elif text[pos] == "`":
            key = "".join(out)
            if not key:
                raise src.error("empty backtick-quoted key", token="``", position=start)
            return key, pos + 1
        else:
            out.append(text[pos])
            pos += 1
    raise src.error(
        "unterminated backtick-quoted key", token=text[start : start + 20], position=start
    )
