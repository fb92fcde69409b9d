"""The simulated charger's certificate store and key pair (security profile 3 flows).

Version-neutral: the 1.6 security extension and 2.0.1 handlers
(:mod:`charge_point_sim.v16_security`, :mod:`charge_point_sim.v201_security`)
translate payloads and call these. A charger makes its own key pair and a
CSR for SignCertificate; CertificateSigned installs the chain the CSMS sends if
it is for that key; InstallCertificate / DeleteCertificate /
GetInstalledCertificateIds manage root certificates by their OCPP hash data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def hash_data(certificate: x509.Certificate) -> dict[str, str]:
    """OCPP CertificateHashDataType (SHA256) of a certificate, snake_case keys."""
    issuer_name = certificate.issuer.public_bytes()
    # The issuer key hash is over the issuer's public key; for the roots a charger
    # stores (self-signed) that is the certificate's own key.
    key_bytes = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "hash_algorithm": "SHA256",
        "issuer_name_hash": _sha256(issuer_name),
        "issuer_key_hash": _sha256(key_bytes),
        "serial_number": format(certificate.serial_number, "x"),
    }


def _sha256(data: bytes) -> str:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize().hex()


@dataclass
class CertificateStore:
    """What a charger keeps: installed roots by type, and its own certificate chain."""

    charger_id: str
    installed: list[tuple[str, x509.Certificate]] = field(default_factory=list)
    key: ec.EllipticCurvePrivateKey | None = None
    own_chain: list[x509.Certificate] = field(default_factory=list)
    pending_csr: bool = False

    def csr_pem(self, organization: str = "csms-sim") -> str:
        """A new key pair and its CSR (CN = charger id, as OCPP A02 asks)."""
        self.key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, self.charger_id),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                    ]
                )
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pending_csr = True
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def accept_signed(self, chain_pem: str) -> str:
        """CertificateSigned: Accepted when the leaf is for our pending key, else Rejected."""
        try:
            chain = x509.load_pem_x509_certificates(chain_pem.encode())
        except ValueError:
            return "Rejected"
        if not chain or self.key is None or not self.pending_csr:
            return "Rejected"
        ours = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        leaf = (
            chain[0]
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        if leaf != ours:
            return "Rejected"
        self.own_chain, self.pending_csr = chain, False
        return "Accepted"

    def install(self, certificate_type: str, pem: str) -> str:
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            return "Rejected"
        self.installed.append((certificate_type, certificate))
        return "Accepted"

    def delete(self, wanted: dict[str, Any]) -> str:
        keep = [(t, c) for t, c in self.installed if not _same(hash_data(c), wanted)]
        if len(keep) == len(self.installed):
            return "NotFound"
        self.installed = keep
        return "Accepted"

    def ids(self, types: list[str] | None) -> list[tuple[str, dict[str, str]]]:
        return [(t, hash_data(c)) for t, c in self.installed if not types or t in types]


def _same(a: dict[str, str], b: dict[str, Any]) -> bool:
    keys = ("issuer_name_hash", "issuer_key_hash", "serial_number")
    return all(str(a[k]).lower() == str(b.get(k, "")).lower() for k in keys)
