"""The CA's checks on a CSR and what it issues (pure: no database)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.certificates.authority import (
    CHARGING_STATION_CERTIFICATE,
    V2G_CERTIFICATE,
    CertificateAuthority,
    CsrRefused,
    _new_ca,
)

NOW = dt.datetime.now(dt.UTC)


def authority(certificate_type: str = CHARGING_STATION_CERTIFICATE) -> CertificateAuthority:
    cert_pem, key_pem = _new_ca(NOW)
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return CertificateAuthority(
        x509.load_pem_x509_certificate(cert_pem.encode()),
        key,
        dt.timedelta(days=30),
        certificate_type,
    )


def csr(common_name: str | None, key: CertificateIssuerPrivateKeyTypes | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    names = [] if common_name is None else [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    signed = request.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return signed.public_bytes(serialization.Encoding.PEM).decode()


def test_a_good_csr_gets_a_client_certificate_for_the_charger() -> None:
    ca = authority()
    request = ca.check_csr(csr("CP-1"), "CP-1", CHARGING_STATION_CERTIFICATE)
    issued = ca.sign(request, NOW)
    issued.verify_directly_issued_by(ca.certificate)
    assert issued.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-1"
    usage = issued.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    assert issued.not_valid_after_utc - NOW <= dt.timedelta(days=30)
    assert not issued.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.chain_pem(issued).count("BEGIN CERTIFICATE") == 2


@pytest.mark.parametrize(
    ("pem", "why"),
    [
        ("not a csr", "not a PEM certificate signing request"),
        (csr("CP-2"), "common name must be the charger id"),
        (csr(None), "common name must be the charger id"),
        (
            csr("CP-1", rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            "at least 2048",
        ),
    ],
)
def test_unfit_csrs_are_refused_with_the_reason(pem: str, why: str) -> None:
    with pytest.raises(CsrRefused, match=why):
        authority().check_csr(pem, "CP-1", CHARGING_STATION_CERTIFICATE)


def test_each_ca_signs_only_its_type() -> None:
    with pytest.raises(CsrRefused, match="not V2GCertificate"):
        authority().check_csr(csr("CP-1"), "CP-1", V2G_CERTIFICATE)
    v2g = authority(V2G_CERTIFICATE)
    issued = v2g.sign(v2g.check_csr(csr("SECC-7"), "CP-1", V2G_CERTIFICATE), NOW)
    with pytest.raises(x509.ExtensionNotFound):  # no TLS client usage on an SECC certificate
        issued.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    with pytest.raises(CsrRefused, match="no common name"):
        v2g.check_csr(csr(None), "CP-1", V2G_CERTIFICATE)
