"""The decode lane: ingest bodies are decoded one at a time, in arrival order, off the loop."""

from __future__ import annotations

import asyncio
import threading
import time

from threadline.server.ingest.decode_lane import DecodeLane


def test_work_runs_one_at_a_time_in_arrival_order_on_one_thread() -> None:
    events: list[tuple[str, int]] = []
    threads: set[int] = set()

    def decode(n: int) -> int:
        threads.add(threading.get_ident())
        events.append(("start", n))
        time.sleep(0.02)
        events.append(("end", n))
        return n * 10

    async def scenario() -> list[int]:
        lane = DecodeLane()
        try:
            return list(await asyncio.gather(*(lane.run(decode, n) for n in range(5))))
        finally:
            lane.close()

    assert asyncio.run(scenario()) == [0, 10, 20, 30, 40]
    assert events == [(kind, n) for n in range(5) for kind in ("start", "end")]
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_errors_reach_the_caller_and_the_lane_is_usable_after_close() -> None:
    def fail() -> None:
        raise ValueError("bad body")

    async def scenario() -> str:
        lane = DecodeLane()
        try:
            await lane.run(fail)
        except ValueError as exc:
            message = str(exc)
        lane.close()
        assert await lane.run(str.upper, "again") == "AGAIN"  # a new thread after close
        lane.close()
        return message

    assert asyncio.run(scenario()) == "bad body"
