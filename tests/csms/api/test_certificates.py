"""Charger certificates: the CSMS CA signs CSRs (both versions), root certificates are
managed from the API, expiring certificates are renewed, OCSP answers are passed on."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from ocpp.exceptions import InternalError
from ocpp.routing import on
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as call_result201

from charge_point_sim import Fleet, FleetConfig
from charge_point_sim.certificates import CertificateStore, hash_data
from charge_point_sim.v16 import V16Charger
from charge_point_sim.v201 import V201Charger
from csms.certificates.contract_provider import local_test_response
from tests.conftest import StartCsms
from tests.csms.api.conftest import CHARGER, Api
from tests.ocpp_clients import charger_v201
from tests.waiting import eventually

BOTH = pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])


async def certificates_of(api: Api, charger: str) -> list[dict[str, Any]]:
    answer = await api.reader.get(f"/chargers/{charger}/certificates")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["certificates"]
    return found


@BOTH
async def test_sign_certificate_issues_and_delivers_a_certificate(
    api: Api, fleet: Fleet, protocol: str
) -> None:
    charger = cast(V16Charger | V201Charger, fleet.charger(CHARGER[protocol]))
    answer = await charger.request_certificate()
    assert answer.status == "Accepted"

    async def accepted() -> list[dict[str, Any]]:
        return [
            c for c in await certificates_of(api, CHARGER[protocol]) if c["status"] == "Accepted"
        ]

    [issued] = await eventually(accepted)
    assert issued["certificate_type"] == "ChargingStationCertificate"
    leaf, ca_cert = charger.certificates.own_chain
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CHARGER[protocol]
    assert format(leaf.serial_number, "x") == issued["serial_number"]
    leaf.verify_directly_issued_by(ca_cert)
    ca = (await api.reader.get("/certificates/ca")).json()
    assert ca["certificate_pem"] == ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    assert issued["not_after"] > issued["not_before"]


async def test_csr_for_another_identity_is_rejected(api: Api, fleet: Fleet) -> None:
    charger = cast(V201Charger, fleet.charger(CHARGER["ocpp2.0.1"]))
    charger._certificate_store = CertificateStore("SOMEONE-ELSE")
    assert (await charger.request_certificate()).status == "Rejected"
    reason = await api.csms.pool.fetchval(
        "SELECT payload->>'reason' FROM events WHERE type = 'certificate_signing_requested'"
    )
    assert "common name must be the charger id" in reason
    assert await certificates_of(api, CHARGER["ocpp2.0.1"]) == []


@BOTH
async def test_triggered_signing_then_root_certificates_managed_from_the_api(
    api: Api, fleet: Fleet, protocol: str
) -> None:
    charger_id = CHARGER[protocol]
    triggered = await api.operator.post(
        f"/chargers/{charger_id}/commands/trigger_message",
        json={"message": "SignChargingStationCertificate"},
    )
    assert triggered.json()["response"]["status"] == "Accepted", triggered.text
    await eventually(
        lambda: api.csms.pool.fetchval(
            "SELECT count(*) FROM charger_certificates WHERE charge_point_id = $1 "
            "AND status = 'Accepted'",
            charger_id,
        )
    )

    ca_pem = (await api.reader.get("/certificates/ca")).json()["certificate_pem"]

    async def send(name: str, body: dict[str, Any]) -> Any:
        answer = await api.operator.post(f"/chargers/{charger_id}/commands/{name}", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    installed = await send(
        "install_certificate", {"certificate_type": "CSMSRootCertificate", "certificate": ca_pem}
    )
    assert installed["response"]["status"] == "Accepted"
    wanted = {"certificate_types": ["CSMSRootCertificate"]}
    listed = (await send("get_installed_certificate_ids", wanted))["response"]
    if protocol == "ocpp1.6":
        assert installed["request"]["certificateType"] == "CentralSystemRootCertificate"
        [ids] = listed["certificateHashData"]
    else:
        [entry] = listed["certificateHashDataChain"]
        ids = entry["certificateHashData"]
    expected = hash_data(x509.load_pem_x509_certificate(ca_pem.encode()))
    assert ids["serialNumber"] == expected["serial_number"]
    hash_body = {
        "hash_algorithm": ids["hashAlgorithm"],
        "issuer_name_hash": ids["issuerNameHash"],
        "issuer_key_hash": ids["issuerKeyHash"],
        "serial_number": ids["serialNumber"],
    }
    deleted = await send("delete_certificate", {"certificate_hash_data": hash_body})
    assert deleted["response"]["status"] == "Accepted"
    assert (await send("get_installed_certificate_ids", wanted))["response"]["status"] == "NotFound"


async def test_expiring_certificates_are_renewed(start_csms: StartCsms) -> None:
    # Issued for one day, renewed when fewer than 30 days are left: due at once.
    csms = await start_csms(certificates_validity_days=1.0, certificates_renewal_interval=0.2)
    fleet = Fleet(
        FleetConfig(
            url=csms.ocpp_url, chargers=2, v201_share=0.5, speed=60.0, arrival_rate=0.0, seed=3
        )
    )
    await fleet.start()
    try:
        assert await fleet.wait_online()
        for charger in fleet.chargers:
            await cast(V16Charger | V201Charger, charger).request_certificate()
        for charger in fleet.chargers:
            await eventually(
                lambda cp=charger.cfg.charger_id: csms.pool.fetchval(
                    "SELECT count(*) >= 2 FROM charger_certificates "
                    "WHERE charge_point_id = $1 AND status = 'Accepted'",
                    cp,
                ),
                within=15,
            )
    finally:
        await fleet.stop()


@pytest.fixture
async def ocsp_responder() -> AsyncIterator[tuple[str, x509.Certificate, x509.Certificate]]:
    """A minimal RFC 6960 responder on 127.0.0.1: every certificate asked about is good."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "contract")]))
        .issuer_name(name)
        .public_key(leaf_key.public_key())
        .serial_number(0xABC123)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=9))
        .sign(key, hashes.SHA256())
    )

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        request = ocsp.load_der_ocsp_request(await reader.readexactly(length))
        assert request.serial_number == leaf.serial_number
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf,
                issuer=root,
                algorithm=hashes.SHA256(),
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=now,
                next_update=now + dt.timedelta(hours=1),
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, root)
            .sign(key, hashes.SHA256())
        ).public_bytes(serialization.Encoding.DER)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
            + f"Content-Length: {len(response)}\r\nConnection: close\r\n\r\n".encode()
            + response
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/ocsp", root, leaf
    server.close()
    await server.wait_closed()


async def test_get_certificate_status_passes_the_ocsp_answer_on(
    api: Api, fleet: Fleet, ocsp_responder: tuple[str, x509.Certificate, x509.Certificate]
) -> None:
    url, root, leaf = ocsp_responder
    station = cast(V201Charger, fleet.charger(CHARGER["ocpp2.0.1"]))
    root_hashes = hash_data(root)  # the issuer of the leaf: its name and key hashes
    data = {
        "hash_algorithm": "SHA256",
        "issuer_name_hash": root_hashes["issuer_name_hash"],
        "issuer_key_hash": root_hashes["issuer_key_hash"],
        "serial_number": format(leaf.serial_number, "x"),
        "responder_url": url,
    }
    answer = await station.check_certificate_status(data)
    assert answer.status == "Accepted", answer
    response = ocsp.load_der_ocsp_response(base64.b64decode(answer.ocsp_result))
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == leaf.serial_number

    unreachable = await station.check_certificate_status(
        {**data, "responder_url": "http://127.0.0.1:9/ocsp"}
    )
    assert unreachable.status == "Failed"

    ev = await station.request_ev_certificate(base64.b64encode(b"exi").decode())
    assert ev.status == "Failed"
    asked = await api.reader.get(
        f"/chargers/{CHARGER['ocpp2.0.1']}/reports", params={"action": "Get15118EVCertificate"}
    )
    assert asked.json()["reports"][0]["data"]["status"] == "Failed"


def _v2g_sub_ca(folder: Path) -> tuple[Path, Path, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CPO Sub-CA 2")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "v2g-ca.pem", folder / "v2g-ca.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, certificate


async def test_v2g_certificates_need_a_v2g_signer(start_csms: StartCsms, tmp_path: Path) -> None:
    cert_file, key_file, sub_ca = _v2g_sub_ca(tmp_path)
    for configured in (False, True):
        files = (
            {"certificates_v2g_ca_cert_file": cert_file, "certificates_v2g_ca_key_file": key_file}
            if configured
            else {}
        )
        csms = await start_csms(**files)
        fleet = Fleet(
            FleetConfig(
                url=csms.ocpp_url, chargers=1, v201_share=1.0, speed=60.0, arrival_rate=0.0, seed=3
            )
        )
        await fleet.start()
        try:
            assert await fleet.wait_online()
            station = cast(V201Charger, fleet.chargers[0])
            answer = await station.request_certificate("V2GCertificate")
            assert answer.status == ("Accepted" if configured else "Rejected")
            if configured:
                await eventually(
                    lambda pool=csms.pool: pool.fetchval(
                        "SELECT status = 'Accepted' FROM charger_certificates "
                        "WHERE certificate_type = 'V2GCertificate'"
                    )
                )
                leaf, issuer = station.certificates.own_chain
                assert issuer == sub_ca
                leaf.verify_directly_issued_by(sub_ca)
        finally:
            await fleet.stop()


@pytest.fixture
async def contract_provider() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A mobility operator's contract-certificate service: answers every request."""
    seen: list[dict[str, Any]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        seen.append(json.loads(await reader.readexactly(length)))
        body = json.dumps({"status": "Accepted", "exiResponse": "UkVTUE9OU0U="}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/contracts", seen
    server.close()
    await server.wait_closed()


async def test_ev_certificate_requests_go_to_the_configured_provider(
    start_csms: StartCsms, contract_provider: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = contract_provider
    exi = base64.b64encode(b"exi request").decode()
    for provider, expected in ((url, "UkVTUE9OU0U="), ("local-test", local_test_response(exi))):
        csms = await start_csms(certificates_contract_provider=provider)
        fleet = Fleet(
            FleetConfig(
                url=csms.ocpp_url, chargers=1, v201_share=1.0, speed=60.0, arrival_rate=0.0, seed=3
            )
        )
        await fleet.start()
        try:
            assert await fleet.wait_online()
            answer = await cast(V201Charger, fleet.chargers[0]).request_ev_certificate(exi)
            assert (answer.status, answer.exi_response) == ("Accepted", expected)
        finally:
            await fleet.stop()
    [request] = seen  # only the HTTP provider was asked over the network
    assert request["exiRequest"] == exi and request["chargePointId"] == "SIM-0000"
    assert request["action"] == "Install"


class FlakyStation(ChargePoint201):  # type: ignore[misc]
    """Fails the first CertificateSigned (as if it rebooted), accepts the next."""

    delivered: ClassVar[list[str]] = []

    @on("CertificateSigned")
    def on_certificate_signed(self, certificate_chain: str, **_: Any) -> Any:
        type(self).delivered.append(certificate_chain)
        if len(type(self).delivered) == 1:
            raise InternalError(description="busy")
        return call_result201.CertificateSigned(status="Accepted")


async def test_an_undelivered_certificate_is_delivered_again(start_csms: StartCsms) -> None:
    csms = await start_csms(certificates_renewal_interval=0.5)
    async with charger_v201(csms.ocpp_url, "FLAKY", FlakyStation) as cs:
        await cs.call(
            call201.BootNotification(
                charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
            )
        )
        csr = CertificateStore("FLAKY").csr_pem()
        answer = await cs.call(call201.SignCertificate(csr=csr))
        assert answer.status == "Accepted"
        status = await eventually(
            lambda: csms.pool.fetchval(
                "SELECT status FROM charger_certificates WHERE status = 'Accepted'"
            ),
            within=10,
        )
    assert status == "Accepted" and len(FlakyStation.delivered) == 2
