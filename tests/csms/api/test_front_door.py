"""The API's front door: no body is read for a caller without a key, bodies are bounded,
slow bodies and slow answers time out, and API queries cannot take the chargers' pool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI

from csms.api.frontdoor import FrontDoor
from csms.storage import api_keys
from tests.conftest import StartCsms

ENDPOINT = "/api/v1/id-tokens/T1"


async def _raw_request(base_url: str, head: str, body: bytes = b"", within: float = 10.0) -> str:
    """Send ``head`` (request line + headers) and ``body``; return the status line + body."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), within)
        return answer.decode("latin-1")
    finally:
        writer.close()


async def _started(start_csms: StartCsms, **settings: object) -> tuple[str, str]:
    csms = await start_csms(**settings)
    _, key = await api_keys.create(csms.pool, "ops", "operator")
    return csms.app.api_url.replace("://localhost", "://127.0.0.1"), key


async def test_a_caller_without_a_key_is_refused_before_its_body_is_read(
    start_csms: StartCsms,
) -> None:
    base, _ = await _started(start_csms)
    # Announces 50 MB and sends 10 bytes: only an answer that does not wait for the body
    # arrives within the deadline.
    head = (
        f"PUT {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n"
    )
    answer = await _raw_request(base, head, b'{"status":')
    assert answer.startswith("HTTP/1.1 401"), answer
    wrong_key = head + "Authorization: Bearer csms_wrong\r\n"
    answer = await _raw_request(base, wrong_key, b'{"status":')
    assert answer.startswith("HTTP/1.1 401") and "unknown or revoked" in answer


async def test_a_body_over_the_limit_is_413(start_csms: StartCsms) -> None:
    base, key = await _started(start_csms, api_max_body_bytes=64 * 1024)
    big = json.dumps({"status": "Accepted", "group_id": "G" * 100_000})
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as c:
        declared = await c.put("/id-tokens/T1", content=big)
        assert declared.status_code == 413 and "limit of 65536 bytes" in declared.json()["error"]

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b" " * 8192

        chunked = await c.put("/id-tokens/T1", content=chunks())
        assert chunked.status_code == 413
        small = await c.put("/id-tokens/T1", json={"status": "Accepted"})
        assert small.status_code == 200


async def test_a_body_that_does_not_arrive_is_408(start_csms: StartCsms) -> None:
    base, key = await _started(start_csms, api_body_timeout=0.5)
    head = (
        f"PUT {ENDPOINT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n"
    )
    answer = await _raw_request(base, head, b'{"status":')
    assert answer.startswith("HTTP/1.1 408"), answer


async def test_the_api_answers_while_the_charger_pool_is_exhausted(start_csms: StartCsms) -> None:
    csms = await start_csms(db_pool_min=1, db_pool_max=2)
    _, key = await api_keys.create(csms.pool, "ops", "operator")
    base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
    held = [await csms.pool.acquire() for _ in range(2)]
    try:
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
        ) as client:
            assert (await client.get("/chargers")).status_code == 200
    finally:
        for conn in held:
            await csms.pool.release(conn)


async def test_an_answer_not_started_in_time_is_503_and_a_started_one_runs_on() -> None:
    app = FastAPI()
    release = asyncio.Event()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await release.wait()
        return {}

    @app.get("/fast")
    async def fast() -> dict[str, str]:
        return {"ok": "yes"}

    guarded = FrontDoor(
        app,
        routes=lambda: app.router.routes,
        key_dependency=lambda: None,
        authenticate=lambda key: asyncio.sleep(0),
        max_body=1024,
        body_timeout=1.0,
        request_timeout=0.2,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guarded), base_url="http://api"
    ) as client:
        timed_out = await client.get("/slow")
        assert timed_out.status_code == 503 and "longer than 0.2 s" in timed_out.json()["error"]
        assert (await client.get("/fast")).json() == {"ok": "yes"}
