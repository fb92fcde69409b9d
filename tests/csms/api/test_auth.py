"""API keys: 401 without a valid key, 403 for a read-only key on anything that changes state."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx

from tests.csms.api.conftest import Api


async def test_no_key_or_unknown_key_is_401(api: Api) -> None:
    answer = await api.anonymous.get("/chargers")
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in answer.json()["error"]
    wrong = await api.anonymous.get("/chargers", headers={"Authorization": "Bearer csms_nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unknown or revoked API key"


async def test_read_only_key_reads_but_cannot_command_or_manage(api: Api) -> None:
    assert (await api.reader.get("/chargers")).status_code == 200
    command = await api.reader.post("/chargers/CP1/commands/clear_cache", json={})
    assert command.status_code == 403 and command.json()["error"] == "this API key is read-only"
    assert (await api.reader.put("/id-tokens/T1", json={})).status_code == 403
    assert (
        await api.reader.post("/api-keys", json={"name": "x", "role": "operator"})
    ).status_code == 403


async def test_operator_issues_and_revokes_keys(api: Api) -> None:
    created = await api.operator.post("/api-keys", json={"name": "billing", "role": "read-only"})
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith(body["key_prefix"]) and body["role"] == "read-only"
    headers = {"Authorization": f"Bearer {body['key']}"}
    assert (await api.anonymous.get("/sessions", headers=headers)).status_code == 200
    listed = (await api.operator.get("/api-keys")).json()["items"]
    assert all("key" not in k for k in listed) and {k["name"] for k in listed} >= {"billing"}
    assert (await api.operator.delete(f"/api-keys/{body['id']}")).status_code == 204
    assert (await api.anonymous.get("/sessions", headers=headers)).status_code == 401
    stored = await api.csms.pool.fetchval("SELECT key_hash FROM api_keys WHERE id = $1", body["id"])
    assert body["key"] not in stored  # only the hash is kept


async def test_openapi_document_is_served(api: Api) -> None:
    document = (await api.anonymous.get("/openapi.json")).json()
    assert document["info"]["title"] == "CSMS operator API"
    assert "/api/v1/chargers/{charge_point_id}/commands/remote_start" in document["paths"]
    assert "/api/v1/sessions" in document["paths"]


async def test_api_key_cli_prints_a_working_key(api: Api, database_dsn: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "api-key", "create", "--role", "operator", "--name", "oncall",
        env={**os.environ, "DATABASE_URL": database_dsn},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    key = out.decode().strip()
    async with httpx.AsyncClient(base_url=str(api.operator.base_url)) as client:
        answer = await client.get("/api-keys", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    assert "oncall" in {k["name"] for k in answer.json()["items"]}
