"""The database can blip: Authorize answered from a recent decision, a clear signal (15.8)."""

from __future__ import annotations

import json

import asyncpg
import pytest

from csms.monitoring import metrics
from tests.conftest import StartCsms
from tests.ocpp_clients import raw_charger


async def _database(admin_dsn: str, name: str, allow: bool) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(allow).lower()}")
        if not allow:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                name,
            )
    finally:
        await conn.close()


@pytest.mark.timeout(90)
async def test_authorize_is_answered_from_a_recent_decision_while_the_database_is_down(
    start_csms: StartCsms, postgres_admin_dsn: str, database_dsn: str
) -> None:
    csms = await start_csms(db_acquire_timeout=2.0, db_statement_timeout=2.0)
    await csms.add_token("KNOWN")
    name = database_dsn.partition("?")[0].rsplit("/", 1)[1]
    async with raw_charger(csms.ocpp_url, "CP", "ocpp1.6") as charger:
        answer = await charger.exchange('[2, "a1", "Authorize", {"idTag": "KNOWN"}]')
        assert answer[2]["idTagInfo"]["status"] == "Accepted"
        await _database(postgres_admin_dsn, name, allow=False)
        try:
            cached = await charger.exchange('[2, "a2", "Authorize", {"idTag": "KNOWN"}]', 30)
            assert cached[:2] == [3, "a2"] and cached[2]["idTagInfo"]["status"] == "Accepted"
            assert metrics.DB_DEGRADED._value.get() == 1
            # Nothing is acknowledged that was not stored: a status gets a CALLERROR.
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
            refused = await charger.exchange(json.dumps([2, "s", "StatusNotification", status]), 30)
            assert refused[0] == 4 and refused[1] == "s"
            unknown = await charger.exchange('[2, "a3", "Authorize", {"idTag": "NEVER"}]', 30)
            assert unknown[0] == 4  # no decision to repeat: the charger falls back to its own
        finally:
            await _database(postgres_admin_dsn, name, allow=True)
        again = await charger.exchange('[2, "a4", "Authorize", {"idTag": "KNOWN"}]', 30)
        assert again[0] == 3
    assert metrics.DB_DEGRADED._value.get() == 0
