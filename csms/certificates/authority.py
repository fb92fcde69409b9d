"""The certificate authority that signs charger certificates (SignCertificate, A02/A03).

By default the CA is built in: an ECDSA P-256 key and self-signed certificate
made on first use and kept in Postgres (``certificate_authority``), so every
CSMS process and node signs with the same one. An operator with their own CA
sets ``CSMS_CERTIFICATES_CA_CERT_FILE`` and ``CSMS_CERTIFICATES_CA_KEY_FILE``
(PEM) instead. Either way the CA's certificate is what chargers must trust
(install it as their root) and what the TLS server checks client certificates
against (``CSMS_TLS_CA_FILE``) for security profile 3.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.config import Settings
from csms.storage import Executor

BUILT_IN = "charger-ca"
CHARGING_STATION_CERTIFICATE = "ChargingStationCertificate"
V2G_CERTIFICATE = "V2GCertificate"


class CsrRefused(ValueError):
    """The CSR cannot be signed; the message says why (it goes to the event log)."""


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    validity: dt.timedelta
    certificate_type: str = CHARGING_STATION_CERTIFICATE  # what this CA signs

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def check_csr(
        self, csr_pem: str, charge_point_id: str, certificate_type: str
    ) -> x509.CertificateSigningRequest:
        """Refuse a CSR that is unreadable, badly signed, weak or not for this charger."""
        if certificate_type != self.certificate_type:
            raise CsrRefused(f"this CA signs {self.certificate_type}, not {certificate_type}")
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError as error:
            raise CsrRefused(f"not a PEM certificate signing request: {error}") from None
        if not csr.is_signature_valid:
            raise CsrRefused("the CSR's signature does not match its key")
        key = csr.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < 2048:
                raise CsrRefused(f"RSA key of {key.key_size} bits; at least 2048 are needed")
        elif not isinstance(key, ec.EllipticCurvePublicKey):
            raise CsrRefused("the key must be RSA or elliptic-curve")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if certificate_type == V2G_CERTIFICATE:
            if not names:  # ISO 15118-2: the SECC certificate's CN names the charger
                raise CsrRefused("the CSR has no common name")
        elif [n.value for n in names] != [charge_point_id]:
            # A02.FR.03 / the 1.6 security whitepaper: the CN is the charger's identity.
            raise CsrRefused(f"the CSR's common name must be the charger id {charge_point_id!r}")
        return csr

    def sign(self, csr: x509.CertificateSigningRequest, now: dt.datetime) -> x509.Certificate:
        key = csr.public_key()
        usage_agreement = isinstance(key, ec.EllipticCurvePublicKey)
        assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate charger clock skew
            .not_valid_after(now + self.validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=not usage_agreement,
                    data_encipherment=False,
                    key_agreement=usage_agreement,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if self.certificate_type == CHARGING_STATION_CERTIFICATE:  # TLS client (profile 3)
            usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
            builder = builder.add_extension(usage, critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def chain_pem(self, leaf: x509.Certificate) -> str:
        """The CertificateSigned chain: the charger's certificate, then the CA's."""
        return leaf.public_bytes(serialization.Encoding.PEM).decode() + self.certificate_pem


def _new_ca(now: dt.datetime) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CSMS"),
            x509.NameAttribute(NameOID.COMMON_NAME, "CSMS charger CA"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


async def load(conn: Executor, settings: Settings) -> CertificateAuthority:
    """The configured CA, or the built-in one (created by whichever process asks first)."""
    cert_file, key_file = settings.certificates_ca_cert_file, settings.certificates_ca_key_file
    if cert_file is not None and key_file is not None:
        cert_pem, key_pem = cert_file.read_text(), key_file.read_text()
    else:
        row = await conn.fetchrow(
            "SELECT certificate_pem, private_key_pem FROM certificate_authority WHERE name = $1",
            BUILT_IN,
        )
        if row is None:
            cert_pem, key_pem = _new_ca(dt.datetime.now(dt.UTC))
            await conn.execute(
                """
                INSERT INTO certificate_authority (name, certificate_pem, private_key_pem)
                VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING
                """,
                BUILT_IN,
                cert_pem,
                key_pem,
            )
            row = await conn.fetchrow(  # another process may have won the race
                "SELECT certificate_pem, private_key_pem FROM certificate_authority "
                "WHERE name = $1",
                BUILT_IN,
            )
            assert row is not None
        cert_pem, key_pem = row["certificate_pem"], row["private_key_pem"]
    return _from_pem(cert_pem, key_pem, settings)


async def load_for(
    conn: Executor, settings: Settings, certificate_type: str
) -> CertificateAuthority:
    """The CA that signs ``certificate_type``; raises CsrRefused if none is configured.

    V2G (ISO 15118 SECC) certificates are signed by the operator's V2G sub-CA
    (``CSMS_CERTIFICATES_V2G_CA_CERT_FILE`` / ``..._KEY_FILE``, e.g. a CPO Sub-CA 2),
    never by the built-in CA: EVs only trust chains up to a V2G root.
    """
    if certificate_type == CHARGING_STATION_CERTIFICATE:
        return await load(conn, settings)
    if certificate_type == V2G_CERTIFICATE:
        cert_file = settings.certificates_v2g_ca_cert_file
        key_file = settings.certificates_v2g_ca_key_file
        if cert_file is None or key_file is None:
            raise CsrRefused("no V2G signer is configured (CSMS_CERTIFICATES_V2G_CA_*_FILE)")
        ca = _from_pem(cert_file.read_text(), key_file.read_text(), settings)
        return dataclasses.replace(ca, certificate_type=V2G_CERTIFICATE)
    raise CsrRefused(f"no signer is configured for {certificate_type}")


def _from_pem(cert_pem: str, key_pem: str, settings: Settings) -> CertificateAuthority:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be RSA or elliptic-curve")
    validity = dt.timedelta(days=settings.certificates_validity_days)
    return CertificateAuthority(x509.load_pem_x509_certificate(cert_pem.encode()), key, validity)
