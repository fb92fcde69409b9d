"""Behind a load balancer: the real client address, TLS and certificate name (15.1)."""

from __future__ import annotations

from csms.security.proxy import TrustedProxies, parse_networks, subject_names
from csms.storage.chargers import set_credentials
from tests.conftest import StartCsms
from tests.csms.security.conftest import PASSWORD
from tests.csms.security.test_handshake import HEARTBEAT, basic, refused
from tests.ocpp_clients import raw_charger
from tests.waiting import eventually

LB = TrustedProxies(parse_networks("10.0.0.0/8, 127.0.0.1"))


def test_forwarded_for_is_read_right_to_left_and_only_from_a_trusted_peer() -> None:
    assert LB.client("10.1.2.3", ["203.0.113.5"]).host == "203.0.113.5"
    # The client wrote its own X-Forwarded-For; the proxy appended the real address.
    assert LB.client("10.1.2.3", ["1.2.3.4, 203.0.113.5"]).host == "203.0.113.5"
    assert LB.client("10.1.2.3", ["203.0.113.5, 10.9.9.9"]).host == "203.0.113.5"
    assert LB.client("198.51.100.1", ["203.0.113.5"]).host == "198.51.100.1"  # not trusted
    assert LB.client("10.1.2.3", ["not-an-ip"]).host == "10.1.2.3"
    assert LB.client("10.1.2.3", ["[2001:db8::1]:4711"]).host == "2001:db8::1"
    assert LB.client("198.51.100.1", [], "https").tls is None  # not trusted: our own socket


def test_certificate_subject_names() -> None:
    assert subject_names("CN=CP-1,O=Example,C=DE") == {"CP-1"}
    assert subject_names("/C=DE/O=Example/CN=CP-2") == {"CP-2"}
    assert subject_names("") == frozenset()


async def test_the_rate_limiter_counts_the_client_behind_the_proxy(
    start_csms: StartCsms,
) -> None:
    csms = await start_csms(trusted_proxies="127.0.0.1", auth_failure_limit=2)
    await set_credentials(csms.pool, "CP1", password=PASSWORD, security_profile=1)
    guesser = {"X-Forwarded-For": "203.0.113.5"} | basic("CP1", "wrong-password-0000")
    for _ in range(2):
        assert (await refused(csms.ocpp_url, "CP1", headers=guesser)).response.status_code == 401
    assert (await refused(csms.ocpp_url, "CP1", headers=guesser)).response.status_code == 429
    # Another charger behind the same balancer is not blocked with the guesser.
    honest = {"X-Forwarded-For": "203.0.113.6"} | basic("CP1", PASSWORD)
    async with raw_charger(csms.ocpp_url, "CP1", headers=honest) as charger:
        assert (await charger.exchange(HEARTBEAT))[0] == 3
    address = await eventually(
        lambda: csms.pool.fetchval(
            "SELECT payload->>'remote_address' FROM events WHERE type = 'charger_connected'"
        )
    )
    assert address == "203.0.113.6"


async def test_profile_3_through_a_tls_terminating_proxy(start_csms: StartCsms) -> None:
    csms = await start_csms(trusted_proxies="127.0.0.1", tls_client_cert_header="X-SSL-Client-S-DN")
    await set_credentials(csms.pool, "CP3", password=None, security_profile=3)
    assert (await refused(csms.ocpp_url, "CP3")).response.status_code == 403
    wrong = {"X-SSL-Client-S-DN": "CN=OTHER,O=Example", "X-Forwarded-Proto": "https"}
    assert (await refused(csms.ocpp_url, "CP3", headers=wrong)).response.status_code == 403
    right = {"X-SSL-Client-S-DN": "CN=CP3,O=Example", "X-Forwarded-Proto": "https"}
    async with raw_charger(csms.ocpp_url, "CP3", headers=right) as charger:
        assert (await charger.exchange(HEARTBEAT))[0] == 3
