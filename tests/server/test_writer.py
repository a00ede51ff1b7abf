"""The ingest queue and its single writer: batching, back-pressure, store failures, drain."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from threadline.errors import InvalidArgumentError, StoreError
from threadline.server.ingest import writer as writer_module
from threadline.server.ingest.writer import (
    BatchWriter,
    QueueFullError,
    StoreUnavailableError,
    WriterClosedError,
)
from threadline.store.base import SpanRow, TraceRow


def _span(n: int) -> SpanRow:
    return SpanRow(
        trace_id=f"tr-{n:032x}",
        span_id=f"{n:016x}",
        parent_id=None,
        name="s",
        span_type="UNKNOWN",
        start_time_ns=n,
        end_time_ns=n,
        status_code="OK",
        status_message="",
        inputs_json="null",
        outputs_json="null",
        attributes_json="{}",
        events_json="[]",
    )


class FakeStore:
    """Records batches; ``down`` fails every call, ``poison`` fails batches holding a span."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.down = False
        self.poison: set[str] = set()

    def log_batch(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        if self.down:
            raise StoreError("database unreachable")
        ids = [s.span_id for s in spans]
        if self.poison & set(ids):
            raise StoreError("value out of range")
        self.batches.append(ids)

    def search_experiments(self, **_: object) -> tuple[list[object], None]:
        if self.down:
            raise StoreError("database unreachable")
        return [], None


def _flat(batches: list[list[str]]) -> list[str]:
    return [span_id for batch in batches for span_id in batch]


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "FIRST_RETRY_DELAY", 0.01)
    monkeypatch.setattr(writer_module, "MAX_RETRY_DELAY", 0.02)


def _writer(store: FakeStore, rows: int = 100, batch_rows: int = 10) -> BatchWriter:
    return BatchWriter(store, max_queued_rows=rows, batch_rows=batch_rows)  # type: ignore[arg-type]


def test_queued_requests_are_merged_into_batches() -> None:
    async def scenario() -> FakeStore:
        store = FakeStore()
        writer = _writer(store, batch_rows=4)
        for n in range(6):
            writer.submit([], [_span(2 * n), _span(2 * n + 1)])
        assert await writer.close(5) == 0
        return store

    store = asyncio.run(scenario())
    assert [len(b) for b in store.batches] == [4, 4, 4]
    assert _flat(store.batches) == [f"{n:016x}" for n in range(12)]


def test_a_full_queue_refuses_and_a_closed_writer_too() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.down = True
        writer = _writer(store, rows=3)
        writer.submit([], [_span(1), _span(2)])
        with pytest.raises(QueueFullError) as full:
            writer.submit([], [_span(3), _span(4)])
        assert full.value.retry_after == 1
        writer.submit([], [_span(5)])  # fits exactly
        store.down = False
        await writer.close(5)
        with pytest.raises(WriterClosedError):
            writer.submit([], [_span(6)])
        assert _flat(store.batches) == [f"{n:016x}" for n in (1, 2, 5)]

    asyncio.run(scenario())


def test_check_room_refuses_early_when_a_request_like_the_last_would_not_fit() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.down = True
        writer = _writer(store, rows=5)
        writer.check_room()  # empty: always room
        writer.submit([], [_span(1), _span(2)])
        writer.check_room()  # 2 queued + 2 like the last = 4 <= 5
        writer.submit([], [_span(3)])
        writer.check_room()  # 3 queued + 1 = 4
        writer.submit([], [_span(4), _span(5)])
        with pytest.raises(QueueFullError):
            writer.check_room()  # 5 queued + 2 > 5
        store.down = False
        await writer.close(5)
        with pytest.raises(WriterClosedError):
            writer.check_room()

    asyncio.run(scenario())


def test_an_unreachable_store_is_retried_until_it_answers() -> None:
    async def scenario() -> FakeStore:
        store = FakeStore()
        store.down = True
        writer = _writer(store)
        done = writer.submit([], [_span(1)], wait=True)
        assert done is not None
        # The waiting request is answered at once (503), its rows stay queued...
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(done, 5)
        assert store.batches == [] and writer.queued_rows == 1
        assert not writer.store_available
        # ...and new requests are refused before they are queued, while the store is down.
        with pytest.raises(StoreUnavailableError):
            writer.check_room()
        with pytest.raises(StoreUnavailableError):
            writer.submit([], [_span(2)], wait=True)
        store.down = False
        for _ in range(500):  # the retry writes the queued rows once the store is back
            if writer.queued_rows == 0:
                break
            await asyncio.sleep(0.01)
        assert writer.store_available
        again = writer.submit([], [_span(3)], wait=True)
        assert again is not None
        await asyncio.wait_for(again, 5)
        await writer.close(5)
        return store

    assert asyncio.run(scenario()).batches == [[f"{1:016x}"], [f"{3:016x}"]]


def test_a_refused_request_does_not_hold_back_the_others_of_its_batch() -> None:
    class Refusing(FakeStore):
        def log_batch(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
            if any(s.span_id == f"{2:016x}" for s in spans):
                raise InvalidArgumentError("value too long for the column")
            super().log_batch(traces, spans)

    async def scenario() -> tuple[Refusing, list[BaseException | None]]:
        store = Refusing()
        writer = _writer(store, batch_rows=10)
        futures = [writer.submit([], [_span(n)], wait=True) for n in (1, 2, 3)]
        await writer.close(5)
        return store, [f.exception() if f is not None else None for f in futures]

    store, errors = asyncio.run(scenario())
    assert sorted(_flat(store.batches)) == [f"{1:016x}", f"{3:016x}"]
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], InvalidArgumentError)


def test_a_poison_request_is_dropped_and_the_rest_written() -> None:
    async def scenario() -> tuple[FakeStore, BatchWriter, BaseException | None]:
        store = FakeStore()
        store.poison = {f"{2:016x}"}
        writer = _writer(store)
        writer.submit([], [_span(1)])
        bad = writer.submit([], [_span(2)], wait=True)
        writer.submit([], [_span(3)])
        await writer.close(5)
        assert bad is not None
        return store, writer, bad.exception()

    store, writer, error = asyncio.run(scenario())
    assert sorted(_flat(store.batches)) == [f"{1:016x}", f"{3:016x}"]
    assert writer.dropped_rows == 1 and isinstance(error, StoreError)


def test_invalid_rows_are_dropped_at_once() -> None:
    class Refusing(FakeStore):
        def log_batch(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
            raise InvalidArgumentError("bad state")

    async def scenario() -> BatchWriter:
        writer = _writer(Refusing())
        writer.submit([], [_span(1)])
        await writer.close(5)
        return writer

    assert asyncio.run(scenario()).dropped_rows == 1


def test_close_gives_up_after_its_timeout_and_counts_the_loss() -> None:
    async def scenario() -> int:
        store = FakeStore()
        store.down = True
        writer = _writer(store)
        writer.submit([], [_span(1), _span(2)])
        return await writer.close(0.1)

    assert asyncio.run(scenario()) == 2
