"""Password rotation as a CSMS flow: the charger takes a new password and reconnects with it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from charge_point_sim import Fleet, FleetConfig
from csms.storage import api_keys, chargers
from tests.conftest import RunningCsms, StartCsms
from tests.csms.api.conftest import CHARGER
from tests.ocpp_clients import charger_v16
from tests.waiting import eventually

FIRST = "first-password-0123456789"


@pytest.fixture
async def secured(start_csms: StartCsms) -> AsyncIterator[tuple[RunningCsms, httpx.AsyncClient]]:
    csms = await start_csms(response_timeout=2.0, security_profile_min=1)
    for charger in CHARGER.values():
        await chargers.set_credentials(csms.pool, charger, password=FIRST, security_profile=1)
    _, key = await api_keys.create(csms.pool, "ops", "operator")
    base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as op:
        yield csms, op


async def connections(csms: RunningCsms, charger: str) -> int:
    count = await csms.pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'charger_connected' AND charge_point_id = $1",
        charger,
    )
    return int(count)


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_rotation_changes_the_password_without_locking_the_charger_out(
    secured: tuple[RunningCsms, httpx.AsyncClient], protocol: str
) -> None:
    csms, operator = secured
    fleet = Fleet(
        FleetConfig(
            url=csms.ocpp_url,
            chargers=2,
            v201_share=0.5,
            speed=60.0,
            arrival_rate=0.0,
            seed=7,
            password=FIRST,
        )
    )
    await fleet.start()
    try:
        assert await fleet.wait_online()
        charger_id = CHARGER[protocol]
        before = await connections(csms, charger_id)
        rotated = await operator.post(f"/chargers/{charger_id}/password-rotation")
        assert rotated.status_code == 200, rotated.text
        body = rotated.json()
        assert body["rotated"] is True and body["charger_status"] == "Accepted"
        new_password = fleet.charger(charger_id).cfg.password
        assert new_password != FIRST and new_password not in rotated.text
        audit = await csms.pool.fetchrow(
            "SELECT * FROM command_audit WHERE id = $1", body["audit_id"]
        )
        assert audit["command"] == "password_rotation" and new_password not in str(dict(audit))

        # The charger reconnects with the new password; that ends the rotation.
        await eventually(lambda: _more(csms, charger_id, before), within=15)
        row = await csms.pool.fetchrow(
            "SELECT pending_password_hash, previous_password_hash FROM chargers "
            "WHERE charge_point_id = $1",
            charger_id,
        )
        assert row["pending_password_hash"] is None
        await eventually(
            lambda: csms.pool.fetchval(
                "SELECT previous_password_hash IS NULL FROM chargers WHERE charge_point_id = $1",
                charger_id,
            )
        )
        stored_values = await csms.pool.fetch("SELECT value FROM device_model_variables")
        assert new_password not in {r["value"] for r in stored_values}  # write-only
    finally:
        await fleet.stop()

    # The old password no longer opens the door.
    headers = {"Authorization": "Basic " + _basic(charger_id, FIRST)}
    with pytest.raises(Exception, match="401"):
        async with charger_v16(csms.ocpp_url, charger_id, headers=headers):
            pass


async def _more(csms: RunningCsms, charger: str, before: int) -> bool:
    return await connections(csms, charger) > before


def _basic(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_an_offline_charger_is_409(
    secured: tuple[RunningCsms, httpx.AsyncClient],
) -> None:
    _, operator = secured
    offline = await operator.post("/chargers/NOBODY/password-rotation")
    assert offline.status_code == 409
