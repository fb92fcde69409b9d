"""Several CSMS nodes on one test database, operator API clients, and answering chargers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201

from csms.storage import api_keys
from tests.api_clients import api_client
from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import charger_v16, charger_v201
from tests.waiting import eventually


class Answering16(ChargePoint16):  # type: ignore[misc]
    """Answers DataTransfer (echoing its data) and counts every one it receives."""

    received: list[Any]

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, **fields: Any) -> Any:
        self.received.append(fields.get("data"))
        return result16.DataTransfer(status="Accepted", data=fields.get("data"))


class Answering201(ChargePoint201):  # type: ignore[misc]
    received: list[Any]

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, **fields: Any) -> Any:
        self.received.append(fields.get("data"))
        return result201.DataTransfer(status="Accepted", data=fields.get("data"))


@contextlib.asynccontextmanager
async def answering(base_url: str, cp_id: str, protocol: str) -> AsyncIterator[Any]:
    """An answering charger of ``protocol`` ("ocpp1.6" or "ocpp2.0.1") connected to a node."""
    if protocol == "ocpp1.6":
        context = charger_v16(base_url, cp_id, Answering16)
    else:
        context = charger_v201(base_url, cp_id, Answering201)
    async with context as charger:
        charger.received = []
        yield charger


@dataclass
class Node:
    csms: RunningCsms
    operator: httpx.AsyncClient
    reader: httpx.AsyncClient

    @property
    def node_id(self) -> str:
        return self.csms.app.settings.node_id

    async def command(self, cp_id: str, name: str, body: dict[str, Any] | None = None) -> Any:
        return await self.operator.post(
            f"/chargers/{cp_id}/commands/{name}", json=body or {}, timeout=90.0
        )


@dataclass
class Cluster:
    start_csms: StartCsms
    operator_key: str
    reader_key: str
    _clients: contextlib.AsyncExitStack

    async def node(self, node_id: str, **overrides: Any) -> Node:
        csms = await self.start_csms(node_id=node_id, **overrides)
        base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
        base = base.replace(f"://{_host(base)}:", "://127.0.0.1:")
        operator = await self._clients.enter_async_context(api_client(base, self.operator_key))
        reader = await self._clients.enter_async_context(api_client(base, self.reader_key))
        return Node(csms, operator, reader)


def _host(url: str) -> str:
    return url.split("://", 1)[1].split(":", 1)[0]


@pytest.fixture
async def cluster(start_csms: StartCsms, database_dsn: str) -> AsyncIterator[Cluster]:
    import asyncpg

    conn = await asyncpg.connect(database_dsn)
    try:
        _, operator_key = await api_keys.create(conn, "ops-team", "operator")
        _, reader_key = await api_keys.create(conn, "dashboard", "read-only")
    finally:
        await conn.close()
    async with contextlib.AsyncExitStack() as clients:
        yield Cluster(start_csms, operator_key, reader_key, clients)


async def held_by(node: Node, cp_id: str) -> str | None:
    """The node holding the charger's presence (None while it is offline)."""
    value = await node.csms.pool.fetchval(
        "SELECT node_id FROM chargers WHERE charge_point_id = $1 AND connected", cp_id
    )
    return None if value is None else str(value)


async def wait_held_by(node: Node, cp_id: str, holder: str) -> None:
    async def check() -> bool:
        return await held_by(node, cp_id) == holder

    await eventually(check, within=10.0)
