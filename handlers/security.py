"""Security messages both versions share: certificate signing and security events.

SignCertificate is answered from the CSMS's CA (:mod:`csms.certificates.authority`):
Accepted when the CSR is fit to sign, and the issued certificate is stored in the
same transaction as the event. The CertificateSigned that delivers it is sent by
:class:`csms.certificates.service.CertificateService` once the event is committed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from csms.certificates import authority
from csms.connection import OcppConnection
from csms.events import CertificateSigningRequested, SecurityEventReported
from csms.meter import parse_timestamp
from handlers._time import now

log = structlog.get_logger(__name__)


class SecurityHandlers(OcppConnection):
    """Mixed into the 1.6 and 2.0.1 handler classes."""

    async def _security_event(self, type: str, timestamp: str, tech_info: str | None) -> None:
        await self.central.record(
            SecurityEventReported(
                charge_point_id=self.id,
                occurred_at=parse_timestamp(timestamp),
                event_type=type,
                tech_info=tech_info,
            )
        )

    async def _sign_certificate(self, csr: str, certificate_type: str) -> bool:
        """Check and sign the CSR; record the request (and certificate); say if accepted."""
        certificate: x509.Certificate | None = None
        reason: str | None = None
        try:
            async with self.central.pool.acquire() as conn:
                ca = await authority.load_for(conn, self.settings, certificate_type)
            request = ca.check_csr(csr, self.id, certificate_type)
            certificate = ca.sign(request, datetime.now(UTC))
        except authority.CsrRefused as error:
            reason = str(error)
        pem = None
        if certificate is not None:
            pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        await self.central.record(
            CertificateSigningRequested(
                charge_point_id=self.id,
                occurred_at=now(),
                certificate_type=certificate_type,
                csr=csr,
                accepted=certificate is not None,
                reason=reason,
                certificate_pem=pem,
                serial_number=(
                    None if certificate is None else format(certificate.serial_number, "x")
                ),
            )
        )
        log.info("certificate.sign_requested", accepted=certificate is not None, reason=reason)
        return certificate is not None
