"""LIKE patterns with one meaning on SQLite and PostgreSQL; every LIKE the store builds.

``%`` stands for any run of characters, ``_`` for one character, and a backslash makes
the next ``%``, ``_`` or backslash literal (``ESCAPE '\\'`` on both back ends). Anything
else after a backslash, and a lone backslash at the end, is refused before any SQL runs:
PostgreSQL raises an error on a trailing escape while SQLite silently matches nothing, so
accepting it would give each back end its own answer (and PostgreSQL's error read as "store
unavailable"). ``LIKE`` is case-sensitive on both (the store turns SQLite's
``case_sensitive_like`` on); ``ILIKE`` is not.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from threadline.errors import InvalidArgumentError

MAX_LIKE_PATTERN = 10_000  # characters (SQLite's own limit is 50,000 bytes)
LIKE_ESCAPE = "\\"
_ESCAPABLE = "%_\\"


def like_pattern_problem(pattern: str) -> str | None:
    """What makes ``pattern`` unusable as a LIKE pattern, or ``None`` if nothing does."""
    if len(pattern) > MAX_LIKE_PATTERN:
        return f"is longer than {MAX_LIKE_PATTERN} characters"
    at = pattern.find(LIKE_ESCAPE)
    while at >= 0:
        escaped = pattern[at + 1 : at + 2]
        if not escaped:
            return "ends with an unpaired backslash"
        if escaped not in _ESCAPABLE:
            return (
                f"has a backslash before {escaped!r} at character {at}: a backslash makes only "
                "%, _ or another backslash literal"
            )
        at = pattern.find(LIKE_ESCAPE, at + 2)
    return None


def check_name_like(pattern: str, what: str = "name_like") -> str:
    """``pattern`` if it is a valid LIKE pattern; else ``InvalidArgumentError`` naming ``what``."""
    if not isinstance(pattern, str):
        raise InvalidArgumentError(f"{what} must be a string, got {type(pattern).__name__}.")
    problem = like_pattern_problem(pattern)
    if problem is not None:
        shown = pattern if len(pattern) <= 80 else pattern[:80] + "…"
        raise InvalidArgumentError(
            f"Invalid {what} {shown!r}: the pattern {problem} (write \\\\ for a literal backslash)."
        )
    return pattern


def like(
    column: sa.ColumnElement[Any], pattern: str, *, ignore_case: bool = False
) -> sa.ColumnElement[bool]:
    """``column LIKE pattern ESCAPE '\\'`` (``ILIKE`` with ``ignore_case``), the pattern a
    bound parameter already checked by ``like_pattern_problem``."""
    if ignore_case:
        return column.ilike(pattern, escape=LIKE_ESCAPE)
    return column.like(pattern, escape=LIKE_ESCAPE)
