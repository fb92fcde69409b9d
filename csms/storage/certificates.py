"""Certificates the CSMS's CA issued to chargers, and whether the charger installed them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509

from csms.events import CertificateSigningRequested
from csms.storage import Executor


async def record_issued(conn: Executor, event: CertificateSigningRequested) -> None:
    """Store what the CA issued for an accepted SignCertificate (status Issued)."""
    if event.certificate_pem is None:
        return
    certificate = x509.load_pem_x509_certificate(event.certificate_pem.encode())
    await conn.execute(
        """
        INSERT INTO charger_certificates (charge_point_id, certificate_type, serial_number,
                                          subject, certificate_pem, not_before, not_after,
                                          issued_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """,
        event.charge_point_id,
        event.certificate_type,
        event.serial_number,
        certificate.subject.rfc4514_string(),
        event.certificate_pem,
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
        event.occurred_at,
    )


async def set_delivery(
    conn: Executor, charge_point_id: str, serial_number: str, status: str
) -> None:
    """The charger's CertificateSigned answer: Accepted, Rejected, or NotDelivered."""
    await conn.execute(
        """
        UPDATE charger_certificates SET status = $3, answered_at = now()
        WHERE charge_point_id = $1 AND serial_number = $2
        """,
        charge_point_id,
        serial_number,
        status,
    )


async def issued(conn: Executor, charge_point_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT id, certificate_type, serial_number, subject, not_before, not_after, status,
               issued_at, answered_at, certificate_pem
        FROM charger_certificates WHERE charge_point_id = $1 ORDER BY id DESC
        """,
        charge_point_id,
    )
    return [dict(r) for r in rows]


async def find(conn: Executor, charge_point_id: str, serial_number: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """
        SELECT certificate_type, certificate_pem, status FROM charger_certificates
        WHERE charge_point_id = $1 AND serial_number = $2
        """,
        charge_point_id,
        serial_number,
    )
    return None if row is None else dict(row)


async def due_for_renewal(
    conn: Executor, charge_point_ids: list[str], expiring_before: datetime
) -> list[str]:
    """Chargers whose latest charging-station certificate is installed and expiring.

    A latest certificate still Issued (a renewal under way) or Rejected is left alone.
    """
    rows = await conn.fetch(
        """
        SELECT charge_point_id FROM (
            SELECT DISTINCT ON (charge_point_id) charge_point_id, status, not_after
            FROM charger_certificates
            WHERE certificate_type = 'ChargingStationCertificate'
              AND charge_point_id = ANY($1)
            ORDER BY charge_point_id, id DESC
        ) latest
        WHERE status = 'Accepted' AND not_after < $2
        """,
        charge_point_ids,
        expiring_before,
    )
    return [r["charge_point_id"] for r in rows]


async def undelivered(
    conn: Executor, charge_point_ids: list[str], issued_before: datetime
) -> list[tuple[str, str]]:
    """(charger, serial) of certificates issued but never answered by these chargers."""
    rows = await conn.fetch(
        """
        SELECT charge_point_id, serial_number FROM charger_certificates
        WHERE status IN ('Issued', 'NotDelivered') AND charge_point_id = ANY($1)
          AND issued_at < $2 AND not_after > now()
        ORDER BY id
        """,
        charge_point_ids,
        issued_before,
    )
    return [(r["charge_point_id"], r["serial_number"]) for r in rows]
