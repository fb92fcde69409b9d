"""Security-profile upgrade as a guided command: the charger is told, the profile is pending
until the charger connects meeting it, and from then on nothing less is accepted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from charge_point_sim import Fleet, FleetConfig
from csms.storage import api_keys, chargers
from tests.conftest import RunningCsms, StartCsms
from tests.csms.api.conftest import CHARGER
from tests.csms.security.conftest import PASSWORD, Pki
from tests.csms.security.test_handshake import HEARTBEAT, basic, refused, tls_settings, tls_url
from tests.ocpp_clients import raw_charger


@pytest.fixture
async def running(
    start_csms: StartCsms, pki: Pki
) -> AsyncIterator[tuple[RunningCsms, httpx.AsyncClient, Fleet]]:
    csms = await start_csms(
        response_timeout=2.0,
        ocpp_tls_public_url="wss://csms.example:9443/ocpp",
        **tls_settings(pki),
    )
    for charger in CHARGER.values():
        await chargers.set_credentials(csms.pool, charger, password=PASSWORD, security_profile=1)
    _, key = await api_keys.create(csms.pool, "ops", "operator")
    base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
    fleet = Fleet(
        FleetConfig(
            url=csms.ocpp_url,
            chargers=2,
            v201_share=0.5,
            speed=60.0,
            arrival_rate=0.0,
            seed=7,
            password=PASSWORD,
        )
    )
    await fleet.start()
    assert await fleet.wait_online()
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as op:
        yield csms, op, fleet
    await fleet.stop()


async def profiles(csms: RunningCsms, charger: str) -> tuple[int, int | None]:
    row = await csms.pool.fetchrow(
        "SELECT security_profile, pending_security_profile FROM chargers "
        "WHERE charge_point_id = $1",
        charger,
    )
    return row["security_profile"], row["pending_security_profile"]


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_upgrade_to_profile_2(
    running: tuple[RunningCsms, httpx.AsyncClient, Fleet], pki: Pki, protocol: str
) -> None:
    csms, operator, fleet = running
    charger = CHARGER[protocol]
    answer = await operator.post(f"/chargers/{charger}/security-profile", json={"profile": 2})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["pending"] is True
    steps = [s["step"].split(".")[1] for s in body["steps"]]
    if protocol == "ocpp2.0.1":
        assert steps == ["get_priority", "set_network_profile", "set_priority", "reset"]
        sim = fleet.charger(charger)
        [profile] = sim.network_profiles.values()  # type: ignore[attr-defined]
        assert profile["security_profile"] == 2
        assert profile["ocpp_csms_url"] == "wss://csms.example:9443/ocpp"
        assert sim.network_priority.startswith("1,")  # type: ignore[attr-defined]
    else:
        assert steps == ["change_configuration"]
    assert await profiles(csms, charger) == (1, 2)  # still 1 until it connects with TLS

    # The charger comes back over TLS with its password: the upgrade is done.
    async with raw_charger(
        tls_url(csms), charger, protocol, headers=basic(charger, PASSWORD), ssl=pki.client_context()
    ) as cp:
        assert (await cp.exchange(HEARTBEAT))[0] in (3, 4)
    assert await profiles(csms, charger) == (2, None)
    # ... and plain ws is no longer good enough for it.
    error = await refused(csms.ocpp_url, charger, headers=basic(charger, PASSWORD))
    assert error.response.status_code == 403


async def test_prerequisites_are_checked_first(
    running: tuple[RunningCsms, httpx.AsyncClient, Fleet],
) -> None:
    csms, operator, _ = running
    charger = CHARGER["ocpp2.0.1"]
    to_3 = await operator.post(f"/chargers/{charger}/security-profile", json={"profile": 3})
    assert to_3.status_code == 409 and "SignChargingStationCertificate" in to_3.json()["error"]
    await chargers.set_credentials(csms.pool, charger, password=PASSWORD, security_profile=2)
    same = await operator.post(f"/chargers/{charger}/security-profile", json={"profile": 2})
    assert same.status_code == 409 and "at security profile 2" in same.json()["error"]
    assert await csms.pool.fetchval("SELECT count(*) FROM command_audit") == 0  # nothing sent
