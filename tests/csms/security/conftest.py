"""Certificates made for the test run: a CA, a server certificate and client certificates.

A second, unrelated CA signs a client certificate that must be refused.
Elliptic-curve keys keep generation fast (milliseconds).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TLS_CHARGER = "CP-TLS"
PASSWORD = "correct-horse-battery-staple"


@dataclass(frozen=True)
class Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]  # label -> (certificate, key)

    def client_context(self, client: str | None = None) -> ssl.SSLContext:
        """What a charger uses: trusts our CA (checks the server), optionally shows a cert."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if client is not None:
            cert, key = self.clients[client]
            context.load_cert_chain(cert, key)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "csms tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: Issuer | None,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    alt_names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    signer = issuer or Issuer(subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()), False
        )
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(signer.key, hashes.SHA256())


def _write(
    directory: Path, label: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_file, key_file = directory / f"{label}.pem", directory / f"{label}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _make_ca(directory: Path, label: str) -> tuple[Issuer, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"{label} root")
    cert_file, _ = _write(directory, label, _certificate(name, key, None, ca=True), key)
    return Issuer(name, key), cert_file


def _make_client(
    directory: Path, label: str, common_name: str, issuer: Issuer
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(_name(common_name), key, issuer, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return _write(directory, label, cert, key)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_file = _make_ca(directory, "ca")
    rogue_ca, _ = _make_ca(directory, "rogue-ca")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        _name("localhost"),
        server_key,
        ca,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alt_names=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    server_cert, server_key_file = _write(directory, "server", server, server_key)
    clients = {
        "good": _make_client(directory, "good", TLS_CHARGER, ca),
        "other": _make_client(directory, "other", "CP-OTHER", ca),
        "rogue": _make_client(directory, "rogue", TLS_CHARGER, rogue_ca),
    }
    return Pki(ca_file, server_cert, server_key_file, clients)
