"""A00.FR.317/318: a TLS 1.2 charger connects with each required suite, RSA and ECDSA alike."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from csms.config import Settings
from csms.security.tls import context_from
from tests.conftest import StartCsms
from tests.ocpp_clients import raw_charger

HEARTBEAT = '[2, "hb", "Heartbeat", {}]'
SUITES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256",  # TLS_RSA_WITH_AES_128_GCM_SHA256
    "AES256-GCM-SHA384",  # TLS_RSA_WITH_AES_256_GCM_SHA384
    "ECDHE-RSA-AES128-GCM-SHA256",
]


def _cert(
    name: str,
    key: CertificateIssuerPrivateKeyTypes,
    issuer: x509.Name,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    path: Path, cert: x509.Certificate, key: CertificateIssuerPrivateKeyTypes
) -> tuple[Path, Path]:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path.with_suffix(".pem"), path.with_suffix(".key")


@pytest.fixture(scope="module")
def two_certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls-suites")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "suites root")])
    ca = _cert("suites root", ca_key, ca_name, ca_key, ca=True)
    ca_file, _ = _write(folder / "ca", ca, ca_key)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_cert, ec_key_file = _write(
        folder / "ec", _cert("localhost", ec_key, ca_name, ca_key, False), ec_key
    )
    rsa_cert, rsa_key_file = _write(
        folder / "rsa", _cert("localhost", rsa_key, ca_name, ca_key, False), rsa_key
    )
    return {
        "ca": ca_file,
        "ec_cert": ec_cert,
        "ec_key": ec_key_file,
        "rsa_cert": rsa_cert,
        "rsa_key": rsa_key_file,
    }


def client(ca: Path, suite: str) -> ssl.SSLContext:
    """A TLS 1.2 charger that offers exactly one suite."""
    context = ssl.create_default_context(cafile=ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(suite)
    return context


async def test_each_required_suite_connects(
    start_csms: StartCsms, two_certificates: dict[str, Path]
) -> None:
    files = two_certificates
    csms = await start_csms(
        tls_cert_file=files["ec_cert"],
        tls_key_file=files["ec_key"],
        tls_second_cert_file=files["rsa_cert"],
        tls_second_key_file=files["rsa_key"],
        tls_port=0,
    )
    url = f"wss://localhost:{csms.app.tls_port}/ocpp"
    for n, suite in enumerate(SUITES):
        async with raw_charger(
            url, f"SUITE-{n}", "ocpp2.0.1", ssl=client(files["ca"], suite)
        ) as cp:
            tls = cp.websocket.transport.get_extra_info("ssl_object")
            assert tls.cipher()[0] == suite and tls.version() == "TLSv1.2"
            assert (await cp.exchange(HEARTBEAT))[0] in (3, 4)  # the session works over it


async def test_rsa_suites_need_the_rsa_certificate(
    start_csms: StartCsms, two_certificates: dict[str, Path]
) -> None:
    files = two_certificates
    csms = await start_csms(
        tls_cert_file=files["ec_cert"], tls_key_file=files["ec_key"], tls_port=0
    )
    url = f"wss://localhost:{csms.app.tls_port}/ocpp"
    with pytest.raises(OSError):  # the handshake fails (SSLError or a reset)
        async with raw_charger(
            url, "RSA-ONLY", "ocpp1.6", ssl=client(files["ca"], "AES128-GCM-SHA256")
        ):
            pass


def test_second_certificate_needs_its_key(two_certificates: dict[str, Path]) -> None:
    settings = Settings(
        tls_cert_file=two_certificates["ec_cert"],
        tls_key_file=two_certificates["ec_key"],
        tls_second_cert_file=two_certificates["rsa_cert"],
    )
    with pytest.raises(ValueError, match="go together"):
        context_from(settings)
