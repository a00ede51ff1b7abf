"""Span payloads on their way in, before anything is queued: the per-span size limit, and
moving large payloads to the artifact store.

Both run on every transport (``POST /api/v1/traces/batch`` and OTLP ``/v1/traces``) and
before the rows reach the ingest queue, so a refusal refuses the whole request and leaves
nothing half-written: a payload over the limit answers 413 naming the span and the field;
an artifact store that fails answers 503 with ``Retry-After`` (sending again is safe: keys
are derived from the experiment, trace and span ids, so the same objects are overwritten).
Offloading here rather than in the writer also keeps large bodies out of the queue's memory.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from threadline.artifacts.base import ArtifactStoreError
from threadline.server.errors import STORE_RETRY_AFTER_SECONDS, ApiError
from threadline.store.base import SpanRow, Store, TraceRow
from threadline.store.offload import OffloadingStore, payload_bytes

_FIELDS = (
    ("inputs_json", "inputs"),
    ("outputs_json", "outputs"),
    ("attributes_json", "attributes"),
    ("events_json", "events"),
)
_MiB = 1024 * 1024


def check_payload_sizes(spans: Sequence[SpanRow], limit: int) -> None:
    """Raise a 413 ``ApiError`` for the first span payload larger than ``limit`` bytes."""
    for span in spans:
        for field, name in _FIELDS:
            text = getattr(span, field)
            size = payload_bytes(text, limit) if isinstance(text, str) else None
            if size is not None:
                raise ApiError(
                    413,
                    f"Span {span.name!r} (span {span.span_id} of trace {span.trace_id}) has "
                    f"{name} of {size} bytes ({size / _MiB:.1f} MiB), more than the limit of "
                    f"{limit} bytes ({limit / _MiB:g} MiB) for one span payload "
                    "(THREADLINE_SERVER_MAX_PAYLOAD_BYTES). Nothing in this request was stored.",
                )


async def offload_payloads(
    store: Store, spans: Sequence[SpanRow], traces: Sequence[TraceRow] = ()
) -> Sequence[SpanRow]:
    """The rows to queue: large payloads already in the artifact store (when there is one).

    ``traces`` are the trace rows of the same request: the experiments the spans are sent
    into, which the artifact keys depend on (without them, the stored traces' are looked up).
    """
    if not isinstance(store, OffloadingStore) or not spans:
        return spans
    try:
        return await run_in_threadpool(store.offload, spans, traces)
    except ArtifactStoreError as exc:
        raise ApiError(
            503,
            f"The artifact store failed, so nothing in this request was stored: {exc}",
            headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
        ) from None
