"""The ingest budget: request bodies read and decoded at once are bounded, one that does not
fit is refused early with 503 and Retry-After, the read API answers meanwhile, and memory
goes back down after. In process (concurrent requests on the app's own event loop) and
against a real ``threadline server`` whose resident memory is read from /proc."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import PROTOBUF, ClientFactory, batch, otlp_request
from tests.server.test_server_process import _call, _wait_healthy, running_server
from threadline.server.ingest.budget import ByteBudget, release_memory

KiB, MiB = 1024, 1024 * 1024
BUDGET_TEXT = "THREADLINE_SERVER_INGEST_MAX_INFLIGHT_BYTES"


def test_a_budget_refuses_what_does_not_fit_but_never_a_request_alone() -> None:
    budget = ByteBudget(10 * MiB)
    first, second = budget.reservation(), budget.reservation()
    assert first.take(6 * MiB) and not second.take(5 * MiB) and second.take(4 * MiB)
    assert budget.used == 10 * MiB
    assert not first.close()  # another request is still in: no memory release yet
    assert second.take(5 * MiB) and budget.used == 9 * MiB
    assert second.close()  # idle after 15 MiB: release memory now
    alone, other = budget.reservation(), budget.reservation()
    assert alone.take(50 * MiB)  # larger than the budget, but nobody else holds any
    assert not other.take(1) and not other.close()
    assert alone.close() and not alone.close()  # released once
    assert not alone.take(1)  # a request that is over reserves nothing more
    assert budget.used == 0 and budget.holders == 0


async def _held_body(first: bytes, release: asyncio.Event, rest: bytes) -> AsyncIterator[bytes]:
    """A chunked body that stops after ``first`` until ``release`` is set."""
    yield first
    await release.wait()
    yield rest


async def _pieces(*pieces: bytes) -> AsyncIterator[bytes]:
    """A chunked body (no Content-Length) of these pieces."""
    for piece in pieces:
        yield piece
        await asyncio.sleep(0)


def _otlp_body(size: int) -> bytes:
    spans = [{"trace": 1, "span": 1, "attributes": {"input.value": "x" * size}}]
    return otlp_request(spans).SerializeToString()


def test_bodies_that_do_not_fit_are_refused_before_and_while_reading(
    make_client: ClientFactory,
) -> None:
    client = make_client(ingest_max_inflight_bytes=1 * MiB)
    app = client.app
    assert client.portal is not None  # the app's lifespan runs on this portal's event loop

    async def scenario() -> dict[str, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            release = asyncio.Event()
            body = _otlp_body(900 * KiB)
            held = asyncio.create_task(
                http.post(
                    "/v1/traces",
                    content=_held_body(body[: 600 * KiB], release, body[600 * KiB :]),
                    headers=PROTOBUF,
                )
            )
            await asyncio.sleep(0.2)  # the held request has 600 KiB of the budget
            out = {
                "declared": await http.post(
                    "/v1/traces", content=_otlp_body(500 * KiB), headers=PROTOBUF
                ),
                "expect": await http.post(
                    "/v1/traces",
                    content=_otlp_body(500 * KiB),
                    headers={**PROTOBUF, "Expect": "100-continue"},
                ),
                "chunked": await http.post(  # refused at its third piece
                    "/api/v1/traces/batch",
                    content=_pieces(
                        b"{" + b" " * (200 * KiB - 1), b" " * 200 * KiB, b" " * 200 * KiB + b"}"
                    ),
                    headers={"Content-Type": "application/json"},
                ),
                "gzip": await http.post(
                    "/v1/traces",
                    content=gzip.compress(_otlp_body(800 * KiB)),
                    headers={**PROTOBUF, "Content-Encoding": "gzip"},
                ),
                "read": await http.get("/api/v1/experiments"),
            }
            release.set()
            out["held"] = await held
            out["after"] = await http.post(
                "/v1/traces", content=_otlp_body(500 * KiB), headers=PROTOBUF
            )
            return out

    responses = client.portal.call(scenario)
    for name in ("declared", "expect", "chunked", "gzip"):
        response = responses[name]
        assert response.status_code == 503, (name, response.text)
        assert response.headers["retry-after"] == "1"
        assert BUDGET_TEXT in response.json()["error"]["message"]
    assert responses["expect"].headers["connection"] == "close"  # its body was never read
    assert "connection" not in responses["declared"].headers  # read and dropped: kept alive
    assert responses["read"].status_code == 200
    assert responses["held"].status_code == 200, responses["held"].text
    assert responses["after"].status_code == 200, responses["after"].text


def test_requests_that_fit_are_served_as_before(make_client: ClientFactory) -> None:
    client = make_client(ingest_max_inflight_bytes=1 * MiB)
    for n in range(1, 4):  # one after the other: each has the whole budget
        body = json.dumps(batch(n)).encode()
        assert (
            client.post(
                "/api/v1/traces/batch", content=body, headers={"Content-Type": "application/json"}
            ).status_code
            == 200
        )
    big = _otlp_body(3 * MiB)  # alone, larger than the budget: accepted, not refused for ever
    assert client.post("/v1/traces", content=big, headers=PROTOBUF).status_code == 200


def test_memory_is_released_through_glibc_where_it_is() -> None:
    import platform

    from threadline.server.ingest import budget

    glibc = platform.libc_ver()[0] == "glibc"
    assert (budget._malloc_trim() is not None) is glibc
    assert release_memory() in ((True, False) if glibc else (False,))


# --- a real server: memory measured from /proc ----------------------------------------

BODIES = 8  # concurrent bodies of ~29 MB each, as the issue sent
SPANS_PER_BODY = 20_000
PEAK_ALLOWANCE_MB = 600  # above the idle baseline; without the budget it went past 1,100
AFTER_ALLOWANCE_MB = 250  # after the burst; without it the process kept over 600
SETTLE_SECONDS = 60.0


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _large_body() -> bytes:
    spans = [
        {"trace": 1 + i // 100, "span": i + 1, "attributes": {"input.value": "x" * 1400, "k": i}}
        for i in range(SPANS_PER_BODY)
    ]
    return otlp_request(spans).SerializeToString()


def _post(url: str, body: bytes) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(f"{url}/v1/traces", data=body, method="POST", headers=PROTOBUF)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, ""
    except urllib.error.HTTPError as error:
        with error:
            return (
                error.code,
                {k.lower(): v for k, v in error.headers.items()},
                error.read().decode(),
            )


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_concurrent_large_bodies_stay_within_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THREADLINE_SERVER_INGEST_MAX_INFLIGHT_BYTES", str(64 * MiB))
    body = _large_body()
    assert 25 * MiB < len(body) < 32 * MiB
    db = f"sqlite:///{tmp_path / 'big.db'}"
    with running_server(tmp_path, "--backend-store-uri", db) as (process, url):
        _wait_healthy(url)
        _call(f"{url}/api/v1/experiments")  # the read path warmed up
        baseline = _rss_mb(process.pid)
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_mb(process.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with ThreadPoolExecutor(BODIES + 1) as pool:
            sent = [pool.submit(_post, url, body) for _ in range(BODIES)]
            time.sleep(0.5)
            listed: Any = _call(f"{url}/api/v1/traces?experiment_ids=0&max_results=5")
            results = [future.result() for future in sent]
        done.set()
        sampler.join(5)
        settled = _rss_mb(process.pid)
        deadline = time.monotonic() + SETTLE_SECONDS
        while settled > baseline + AFTER_ALLOWANCE_MB and time.monotonic() < deadline:
            time.sleep(0.5)
            settled = _rss_mb(process.pid)

    assert "traces" in listed  # the read API answered during the burst
    statuses = [status for status, _headers, _text in results]
    refused = [(h, text) for status, h, text in results if status == 503]
    assert statuses.count(200) >= 1 and len(refused) >= BODIES // 2, statuses
    assert set(statuses) <= {200, 503}, statuses
    for headers, text in refused:  # refused by the budget (not the queue), told when to retry
        assert headers.get("retry-after") == "1" and BUDGET_TEXT in text
    assert peak[0] - baseline <= PEAK_ALLOWANCE_MB, (baseline, peak[0])
    assert settled - baseline <= AFTER_ALLOWANCE_MB, (baseline, peak[0], settled)
