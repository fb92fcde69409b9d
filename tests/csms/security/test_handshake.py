"""Real handshakes against a running CSMS: Basic Auth, TLS, mutual TLS, rate limiting."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.exceptions import InvalidMessage, InvalidStatus

from csms.security.policy import Refusal
from csms.storage.chargers import set_credentials
from tests.conftest import RunningCsms, StartCsms
from tests.csms.security.conftest import PASSWORD, TLS_CHARGER, Pki
from tests.ocpp_clients import charger_v16, charger_v201, raw_charger

HEARTBEAT = '[2, "1", "Heartbeat", {}]'
SUBPROTOCOLS = ["ocpp1.6", "ocpp2.0.1"]


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def refused(url: str, charge_point_id: str, **kwargs: Any) -> InvalidStatus:
    """Connect and expect the handshake to be refused with an HTTP status."""
    with pytest.raises(InvalidStatus) as caught:
        async with raw_charger(url, charge_point_id, **kwargs):
            pass
    return caught.value


def tls_url(csms: RunningCsms) -> str:
    assert csms.app.tls_port is not None
    return f"wss://localhost:{csms.app.tls_port}/ocpp"


def tls_settings(pki: Pki, **more: Any) -> dict[str, Any]:
    return {
        "tls_cert_file": pki.server_cert,
        "tls_key_file": pki.server_key,
        "tls_ca_file": pki.ca_file,
        "tls_port": 0,
        **more,
    }


async def no_charger_connected(csms: RunningCsms, charge_point_id: str) -> bool:
    """No OCPP session began: the charger was never marked connected, no event logged."""
    connected = await csms.pool.fetchval(
        "SELECT connected_at FROM chargers WHERE charge_point_id = $1", charge_point_id
    )
    events = await csms.pool.fetchval(
        "SELECT count(*) FROM events WHERE charge_point_id = $1", charge_point_id
    )
    return connected is None and events == 0


# -- Profile 1: Basic Auth over ws -------------------------------------------------------


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
async def test_basic_auth_with_the_right_password_is_accepted(
    csms: RunningCsms, subprotocol: str
) -> None:
    await set_credentials(csms.pool, "CP1", password=PASSWORD, security_profile=1)
    async with raw_charger(csms.ocpp_url, "CP1", subprotocol, headers=basic("CP1", PASSWORD)) as cp:
        assert (await cp.exchange(HEARTBEAT))[0] == 3


async def test_ocpp_library_chargers_authenticate_with_headers(csms: RunningCsms) -> None:
    await set_credentials(csms.pool, "CP16", password=PASSWORD, security_profile=1)
    await set_credentials(csms.pool, "CP201", password=PASSWORD, security_profile=1)
    async with charger_v16(csms.ocpp_url, "CP16", headers=basic("CP16", PASSWORD)) as cp:
        assert (await cp.call(call16.Heartbeat())).current_time
    async with charger_v201(csms.ocpp_url, "CP201", headers=basic("CP201", PASSWORD)) as cp:
        assert (await cp.call(call201.Heartbeat())).current_time


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (None, Refusal.MISSING_CREDENTIALS),
        (basic("CP1", "wrong-password-123456"), Refusal.WRONG_PASSWORD),
        (basic("CP2", PASSWORD), Refusal.WRONG_USERNAME),
        ({"Authorization": "Basic !!notbase64"}, Refusal.MALFORMED_CREDENTIALS),
        ({"Authorization": "Bearer abc"}, Refusal.MALFORMED_CREDENTIALS),
    ],
)
async def test_wrong_or_missing_password_is_refused_before_any_ocpp_message(
    csms: RunningCsms,
    subprotocol: str,
    headers: dict[str, str] | None,
    reason: Refusal,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await set_credentials(csms.pool, "CP1", password=PASSWORD, security_profile=1)
    error = await refused(csms.ocpp_url, "CP1", subprotocol=subprotocol, headers=headers)
    assert error.response.status_code == 401
    assert error.response.headers["WWW-Authenticate"].startswith('Basic realm="csms"')
    assert await no_charger_connected(csms, "CP1")
    logged = capsys.readouterr().err
    assert "security.upgrade_refused" in logged and reason.value in logged


async def test_credentials_for_a_charger_without_a_password_are_refused(
    csms: RunningCsms, capsys: pytest.CaptureFixture[str]
) -> None:
    # Unknown charger (and a known profile-0 one): no password to check them against.
    error = await refused(csms.ocpp_url, "NEW", headers=basic("NEW", PASSWORD))
    assert error.response.status_code == 401
    assert Refusal.NO_PASSWORD_SET.value in capsys.readouterr().err
    async with raw_charger(csms.ocpp_url, "NEW") as cp:  # profile 0 without credentials: fine
        assert (await cp.exchange(HEARTBEAT))[0] == 3


async def test_minimum_profile_requires_a_password_of_every_charger(
    start_csms: StartCsms,
) -> None:
    csms = await start_csms(security_profile_min=1)
    assert (await refused(csms.ocpp_url, "UNKNOWN")).response.status_code == 401
    await set_credentials(csms.pool, "CP0", password=PASSWORD, security_profile=0)
    assert (await refused(csms.ocpp_url, "CP0")).response.status_code == 401
    async with raw_charger(csms.ocpp_url, "CP0", headers=basic("CP0", PASSWORD)) as cp:
        assert (await cp.exchange(HEARTBEAT))[0] == 3


async def test_a_changed_password_replaces_the_old_one_at_once(csms: RunningCsms) -> None:
    await set_credentials(csms.pool, "CP1", password=PASSWORD, security_profile=1)
    async with raw_charger(csms.ocpp_url, "CP1", headers=basic("CP1", PASSWORD)):
        pass
    await set_credentials(csms.pool, "CP1", password="a-brand-new-password", security_profile=1)
    error = await refused(csms.ocpp_url, "CP1", headers=basic("CP1", PASSWORD))
    assert error.response.status_code == 401  # the cached success was for the old hash
    async with raw_charger(csms.ocpp_url, "CP1", headers=basic("CP1", "a-brand-new-password")):
        pass


@pytest.mark.parametrize("profile", [2, 3])
async def test_profile_2_and_3_chargers_cannot_use_plain_ws(
    csms: RunningCsms, profile: int
) -> None:
    await set_credentials(csms.pool, "CP1", password=PASSWORD, security_profile=profile)
    error = await refused(csms.ocpp_url, "CP1", headers=basic("CP1", PASSWORD))
    assert error.response.status_code == 403
    assert await no_charger_connected(csms, "CP1")


# -- Profile 2: TLS with a server certificate, plus Basic Auth ---------------------------


async def test_tls_with_basic_auth_is_accepted(start_csms: StartCsms, pki: Pki) -> None:
    csms = await start_csms(**tls_settings(pki))
    await set_credentials(csms.pool, "CP2", password=PASSWORD, security_profile=2)
    url = tls_url(csms)
    for subprotocol in SUBPROTOCOLS:
        async with raw_charger(
            url, "CP2", subprotocol, headers=basic("CP2", PASSWORD), ssl=pki.client_context()
        ) as cp:
            assert cp.websocket.subprotocol == subprotocol
            assert (await cp.exchange(HEARTBEAT))[0] == 3
    error = await refused(url, "CP2", ssl=pki.client_context())
    assert error.response.status_code == 401
    error = await refused(
        url, "CP2", headers=basic("CP2", "wrong-password-123456"), ssl=pki.client_context()
    )
    assert error.response.status_code == 401


# -- Profile 3: mutual TLS, the certificate names the charger ----------------------------


async def test_mutual_tls(start_csms: StartCsms, pki: Pki) -> None:
    csms = await start_csms(**tls_settings(pki))
    await set_credentials(csms.pool, TLS_CHARGER, password=None, security_profile=3)
    url = tls_url(csms)

    async with raw_charger(url, TLS_CHARGER, "ocpp2.0.1", ssl=pki.client_context("good")) as cp:
        assert (await cp.exchange(HEARTBEAT))[0] == 3

    # A valid certificate, but for another charger.
    error = await refused(url, TLS_CHARGER, ssl=pki.client_context("other"))
    assert error.response.status_code == 403
    # No certificate at all (what a profile-2 charger would do).
    error = await refused(url, TLS_CHARGER, ssl=pki.client_context())
    assert error.response.status_code == 403
    # A certificate naming the charger, from another CA: the TLS handshake fails.
    with pytest.raises((ssl.SSLError, InvalidMessage, ConnectionError)):
        async with raw_charger(url, TLS_CHARGER, ssl=pki.client_context("rogue")) as cp:
            await cp.exchange(HEARTBEAT)


async def test_profile_3_minimum_accepts_unknown_chargers_by_certificate(
    start_csms: StartCsms, pki: Pki
) -> None:
    csms = await start_csms(**tls_settings(pki, security_profile_min=3))
    async with raw_charger(tls_url(csms), TLS_CHARGER, ssl=pki.client_context("good")) as cp:
        assert (await cp.exchange(HEARTBEAT))[0] == 3
    assert (await refused(csms.ocpp_url, "CP-OTHER")).response.status_code == 403


# -- Rate limiting -----------------------------------------------------------------------


async def test_repeated_failures_from_one_address_are_blocked(
    start_csms: StartCsms, capsys: pytest.CaptureFixture[str]
) -> None:
    csms = await start_csms(auth_failure_limit=3, auth_block_seconds=30)
    await set_credentials(csms.pool, "CP1", password=PASSWORD, security_profile=1)
    for _ in range(3):
        error = await refused(csms.ocpp_url, "CP1", headers=basic("CP1", "guess-guess-guess-1"))
        assert error.response.status_code == 401
    # Blocked now: even the right password is not checked.
    error = await refused(csms.ocpp_url, "CP1", headers=basic("CP1", PASSWORD))
    assert error.response.status_code == 429
    assert 1 <= int(error.response.headers["Retry-After"]) <= 30
    logged = capsys.readouterr().err
    assert logged.count("security.upgrade_refused") == 3
    assert "security.address_blocked" in logged
