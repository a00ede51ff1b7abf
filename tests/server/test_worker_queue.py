"""``--workers N`` splits the server's ingest queue bound between the workers."""

from __future__ import annotations

from threadline.server.main import MIN_WORKER_QUEUE_ROWS, worker_queue_rows


def test_each_worker_holds_its_share_of_the_queue() -> None:
    assert worker_queue_rows(100_000, 1) == 100_000
    assert worker_queue_rows(100_000, 2) == 50_000
    assert worker_queue_rows(100_000, 3) == 33_334  # rounded up: the total is not cut
    assert worker_queue_rows(100_000, 64) == MIN_WORKER_QUEUE_ROWS  # at least a few requests
