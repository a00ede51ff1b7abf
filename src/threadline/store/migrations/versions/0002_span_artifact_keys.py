"""``spans.artifact_keys``: which payloads the server moved to its artifact store, and where.

Before this revision a payload counted as a reference when its text had the reference
shape and named the key derived from the row's own ids (``traces/<trace>/<span>/<field>
.json``, ids outside ``[A-Za-z0-9_-]`` or over 128 characters as ``h-<sha256[:40]>``), which
a client could produce. From now on only this column says so, and only the server writes
it. The references already stored are carried over by that same old rule, so they keep
resolving, with one exception: where two rows name the same old key (a trace or span id
spelling ``h-<40 hex>`` next to the id whose hash that is: a collision, deliberate or not),
the row with the spelt-out id is left as plain data, so it can neither read nor delete
the other's payload. The old rule is written out here, not imported, so that later code
cannot change what this revision did.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

logger = logging.getLogger(__name__)

_REFERENCE = "threadline.artifact"
_FIELDS = ("inputs", "outputs", "events")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_SPELT_HASH = re.compile(r"h-[0-9a-f]{40}")
# A reference the server wrote holds a preview of at most 1,000 characters (up to 6 each
# once escaped) and a key of at most 1,024: longer texts are a client's, not read here.
_MAX_REFERENCE_CHARS = 8192
_UPDATE_BATCH = 500

_spans = sa.table(
    "spans",
    sa.column("trace_id", sa.String),
    sa.column("span_id", sa.String),
    sa.column("inputs", sa.Text),
    sa.column("outputs", sa.Text),
    sa.column("events", sa.Text),
    sa.column("artifact_keys", sa.Text),
)


def upgrade() -> None:
    op.add_column("spans", sa.Column("artifact_keys", sa.Text, nullable=True))
    _carry_over_references(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("spans") as batch:
        batch.drop_column("artifact_keys")


def _carry_over_references(conn: sa.Connection) -> None:
    found = list(_old_references(conn))  # (trace id, span id, field, key): few, small
    claims: dict[str, set[tuple[str, str]]] = {}
    for trace_id, span_id, _field, key in found:
        claims.setdefault(key, set()).add((trace_id, span_id))
    keys: dict[tuple[str, str], dict[str, str]] = {}
    dropped = 0
    for trace_id, span_id, field, key in found:
        if len(claims[key]) > 1 and _spells_a_hash(trace_id, span_id):
            dropped += 1
            continue
        keys.setdefault((trace_id, span_id), {})[field] = key
    if dropped:
        logger.warning(
            "%d stored artifact references named the artifact of another trace or span "
            "(colliding ids); they are now plain data.",
            dropped,
        )
    update = (
        _spans.update()
        .where(
            _spans.c.trace_id == sa.bindparam("t"),
            _spans.c.span_id == sa.bindparam("s"),
        )
        .values(artifact_keys=sa.bindparam("keys"))
    )
    rows = [
        {"t": t, "s": s, "keys": json.dumps(k, sort_keys=True, separators=(",", ":"))}
        for (t, s), k in sorted(keys.items())
    ]
    for start in range(0, len(rows), _UPDATE_BATCH):
        conn.execute(update, rows[start : start + _UPDATE_BATCH])


def _old_references(conn: sa.Connection) -> Iterator[tuple[str, str, str, str]]:
    """The references the old code would have followed, as (trace, span, field, key)."""
    c = _spans.c
    marker = f"%{_REFERENCE}%"
    short = [
        sa.case((sa.func.length(c[name]) <= _MAX_REFERENCE_CHARS, c[name]), else_=sa.null())
        for name in _FIELDS
    ]
    query = sa.select(c.trace_id, c.span_id, *short).where(
        sa.or_(*(c[name].like(marker) for name in _FIELDS))
    )
    for trace_id, span_id, *texts in conn.execute(query):
        for field, text in zip(_FIELDS, texts):
            key = _old_key(trace_id, span_id, field)
            if text is not None and _names(field, text) == key:
                yield trace_id, span_id, field, key


def _names(field: str, text: str) -> Any:
    """The key a reference-shaped payload text names (``None`` if it is no reference)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if field == "events":
        if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)):
            return None
        event = value[0]
        attributes = event.get("attributes")
        if event.get("name") != _REFERENCE or not isinstance(attributes, dict):
            return None
        return attributes.get("key")
    if not (isinstance(value, dict) and len(value) == 1 and _REFERENCE in value):
        return None
    reference = value[_REFERENCE]
    return reference.get("key") if isinstance(reference, dict) else None


def _old_key(trace_id: str, span_id: str, field: str) -> str:
    return f"traces/{_segment(trace_id)}/{_segment(span_id)}/{field}.json"


def _segment(text: str) -> str:
    if _SAFE_ID.fullmatch(text):
        return text
    return "h-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _spells_a_hash(*ids: str) -> bool:
    return any(_SPELT_HASH.fullmatch(i) for i in ids)
