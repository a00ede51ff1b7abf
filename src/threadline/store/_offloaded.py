"""The format of offloaded span payloads (for ``OffloadingStore``): where they go, what
the row keeps instead, and how they read back.

Keys. A payload of span ``s`` of trace ``t``, sent into experiment ``e`` (the experiment of
the trace row it came with, else of the stored trace, else "0": always one the sender may
write to), is kept under ``traces/<H(e, t)>/<H(s)>/<field>.json``, ``H`` being the full
SHA-256 (hex) of the ids as a JSON array: an encoding no two distinct id tuples share, so
distinct (experiment, trace, span) never meet under one key, and ids need no character
rules. Keys depend on the ids alone, so sending a span again overwrites its own objects.
Rows stored before schema revision 0002 keep their older keys (that migration recorded
them).

The reference bit. The row keeps a readable reference in the payload's place
(``{"threadline.artifact": {"key", "bytes", "preview"}}``; for events, one event of that
name), but whether a payload *is* a reference is decided by the ``spans.artifact_keys``
column: a JSON object ``{field: key}`` that only ``OffloadingStore`` writes, through an
``OffloadedSpanRow``. Every other row (a client's, the SDK's) writes NULL there in the same
upsert, so text that merely looks like a reference stays the client's data.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, fields
from typing import Any

from threadline import _json as fast_json
from threadline.entities.span import Span, SpanEvent
from threadline.entities.trace import truncate_preview
from threadline.store._stored_span import StoredSpan
from threadline.store.base import SpanRow

logger = logging.getLogger(__name__)

REFERENCE = "threadline.artifact"
#: ``SpanRow`` payload attributes that may be offloaded, and the field names of their keys.
FIELDS = {"inputs_json": "inputs", "outputs_json": "outputs", "events_json": "events"}
ENCODING = ("utf-8", "surrogatepass")  # lossless, even for text with lone surrogates
_ROW_FIELDS = tuple(f.name for f in fields(SpanRow))


@dataclass(slots=True)
class OffloadedSpanRow(SpanRow):
    """A ``SpanRow`` some of whose payloads the server moved to the artifact store.

    ``artifact_keys`` (``{field: key}`` as JSON) is stored in ``spans.artifact_keys``;
    ``SqlStore`` writes NULL there for any other row.
    """

    artifact_keys: str | None = None


def artifact_key(experiment_id: str, trace_id: str, span_id: str, field: str) -> str:
    """Where ``field`` (``inputs``, ``outputs`` or ``events``) of a span sent into
    ``experiment_id`` is kept."""
    return f"{trace_prefix(experiment_id, trace_id)}{_digest(span_id)}/{field}.json"


def trace_prefix(experiment_id: str, trace_id: str) -> str:
    """The folder of the artifacts of a trace's spans sent into ``experiment_id``."""
    return f"traces/{_digest(experiment_id, trace_id)}/"


def _digest(*ids: str) -> str:
    text = json.dumps([str(i) for i in ids], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode(*ENCODING)).hexdigest()


def offloaded_row(row: SpanRow, texts: dict[str, str], keys: dict[str, str]) -> OffloadedSpanRow:
    """``row`` with the payload ``texts`` (by ``SpanRow`` attribute) replaced by references
    and ``keys`` (by field) recorded, added to any it already had."""
    values = {name: getattr(row, name) for name in _ROW_FIELDS}
    values.update(texts)
    return OffloadedSpanRow(**values, artifact_keys=encode_keys({**row_keys(row), **keys}))


def row_keys(row: SpanRow) -> dict[str, str]:
    """The ``{field: key}`` a row to be written carries (empty for a client's row)."""
    return decode_keys(getattr(row, "artifact_keys", None))


def encode_keys(keys: dict[str, str]) -> str | None:
    return json.dumps(keys, sort_keys=True, separators=(",", ":")) if keys else None


def decode_keys(text: str | None) -> dict[str, str]:
    """A ``spans.artifact_keys`` value back to ``{field: key}`` (``{}`` for NULL)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:  # not written by threadline: nothing in the row is a reference
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if k in FIELDS.values() and isinstance(v, str)}


def reference_json(name: str, key: str, size: int, text: str, start_time_ns: int) -> str:
    """The text a row keeps in place of payload ``name``: where it went, and a preview."""
    reference = {"key": key, "bytes": size, "preview": truncate_preview(text)}
    if name == "events":
        event = {"name": REFERENCE, "timestamp_ns": start_time_ns, "attributes": reference}
        return json.dumps([event], ensure_ascii=False)
    return json.dumps({REFERENCE: reference}, ensure_ascii=False)


def reference_fields(span: Span) -> list[str]:
    """The payload fields of ``span`` that hold something shaped like a reference (which
    the row's ``artifact_keys`` then confirms or not). A stored span's payload not parsed
    yet is only searched as text, and stays unparsed when the name is not in it: the
    server writes references with the name spelt out."""
    found = []
    for name in ("inputs", "outputs", "events"):
        text = span.unparsed_text(name) if isinstance(span, StoredSpan) else None
        if text is not None:
            if REFERENCE in text:
                found.append(name)
        elif _holds_reference(name, getattr(span, name)):
            found.append(name)
    return found


def _holds_reference(name: str, value: Any) -> bool:
    if name == "events":
        return any(getattr(event, "name", None) == REFERENCE for event in value or ())
    return isinstance(value, dict) and REFERENCE in value


def payload_bytes(text: str, over: int) -> int | None:
    """The UTF-8 size of ``text`` when it is larger than ``over`` bytes, else ``None``.

    Cheap for the common small payload: a text of n characters takes n to 4n bytes.
    """
    if len(text) * 4 <= over:
        return None
    size = len(text) if text.isascii() else len(text.encode(*ENCODING))
    return size if size > over else None


def payload_value(name: str, data: bytes) -> Any:
    """An artifact back to the value the span had (as the SQL store reads inline JSON)."""
    value = fast_json.stored_value(data.decode(*ENCODING))  # not JSON: kept as text
    if name != "events":
        return value
    events = []
    for item in value if isinstance(value, list) else []:
        try:
            events.append(SpanEvent.from_dict(item).to_dict())
        except (KeyError, TypeError, ValueError, AttributeError):
            logger.debug("Skipping a malformed span event in an artifact: %r", item)
    return events
