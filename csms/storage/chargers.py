"""The charger registry and connector state."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.events import ChargerBooted, ConnectorStatusChanged, RegistrationStatus
from csms.security.passwords import hash_password
from csms.security.policy import PROFILES, StoredCredentials
from csms.storage import Executor


async def registration_of(conn: Executor, charge_point_id: str) -> RegistrationStatus | None:
    """The registration an operator (or the policy) gave this charger; None if unknown."""
    value = await conn.fetchval(
        "SELECT registration FROM chargers WHERE charge_point_id = $1", charge_point_id
    )
    return None if value is None else RegistrationStatus(value)


async def register(
    conn: Executor, charge_point_id: str, registration: RegistrationStatus
) -> RegistrationStatus:
    """Add a charger unless it exists; return the registration it has afterwards."""
    value = await conn.fetchval(
        """
        INSERT INTO chargers (charge_point_id, registration) VALUES ($1, $2)
        ON CONFLICT (charge_point_id) DO UPDATE SET charge_point_id = EXCLUDED.charge_point_id
        RETURNING registration
        """,
        charge_point_id,
        registration.value,
    )
    return RegistrationStatus(value)


async def record_boot(conn: Executor, event: ChargerBooted, answered: RegistrationStatus) -> None:
    await conn.execute(
        """
        UPDATE chargers SET protocol = $2, vendor = $3, model = $4, serial_number = $5,
               firmware_version = $6, iccid = $7, imsi = $8, meter_type = $9,
               meter_serial_number = $10, last_boot_at = $11, last_boot_reason = $12,
               last_boot_status = $13, updated_at = now()
        WHERE charge_point_id = $1
        """,
        event.charge_point_id,
        event.protocol.value,
        event.vendor,
        event.model,
        event.serial_number,
        event.firmware_version,
        event.iccid,
        event.imsi,
        event.meter_type,
        event.meter_serial_number,
        event.occurred_at,
        event.reason,
        answered.value,
    )


@dataclass(frozen=True, slots=True)
class Presence:
    """Which node's socket holds a connected charger, and which connection it is."""

    node_id: str
    generation: int
    protocol: str


async def presence_of(conn: Executor, charge_point_id: str) -> Presence | None:
    """Where the charger is connected; None when it is offline, unknown, or held by a
    node whose lease has expired (it is about to be reaped: as good as offline)."""
    row = await conn.fetchrow(
        """
        SELECT c.node_id, c.connection_generation, c.protocol FROM chargers c
        JOIN nodes n ON n.node_id = c.node_id AND n.lease_expires_at > now()
        WHERE c.charge_point_id = $1 AND c.connected AND c.connection_generation IS NOT NULL
        """,
        charge_point_id,
    )
    if row is None:
        return None
    return Presence(row["node_id"], row["connection_generation"], row["protocol"])


async def held_by(conn: Executor, node_id: str) -> dict[str, int]:
    """The chargers marked connected through ``node_id``, with their generation."""
    rows = await conn.fetch(
        "SELECT charge_point_id, connection_generation FROM chargers"
        " WHERE connected AND node_id = $1",
        node_id,
    )
    return {r["charge_point_id"]: r["connection_generation"] for r in rows}


async def next_generation(conn: Executor) -> int:
    """A new connection generation: the fencing token of one accepted socket."""
    value = await conn.fetchval("SELECT nextval('connection_generation_seq')")
    return int(value)


async def claim_presence(
    conn: Executor,
    charge_point_id: str,
    *,
    node_id: str,
    generation: int,
    at: datetime,
    protocol: str | None = None,
) -> bool:
    """Mark the charger connected through ``node_id``'s socket ``generation``.

    False (nothing changed) when a newer connection already holds the charger:
    a socket accepted later, on any node, always wins over an earlier one.
    """
    claimed = await conn.fetchval(
        """
        UPDATE chargers SET connected = true, connected_at = $2, last_seen_at = $2,
               protocol = COALESCE($3, protocol), node_id = $4, connection_generation = $5,
               updated_at = now()
        WHERE charge_point_id = $1
          AND (connection_generation IS NULL OR connection_generation < $5)
        RETURNING true
        """,
        charge_point_id,
        at,
        protocol,
        node_id,
        generation,
    )
    return bool(claimed)


async def release_presence(
    conn: Executor, charge_point_id: str, *, generation: int, at: datetime
) -> bool:
    """Mark the charger disconnected if socket ``generation`` still holds it.

    False when the charger has since connected again (here or on another node)
    or was already marked offline (e.g. reaped after its node's lease expired):
    a stale socket closing never marks a charger that moved disconnected.
    """
    released = await conn.fetchval(
        """
        UPDATE chargers SET connected = false, disconnected_at = $2, updated_at = now()
        WHERE charge_point_id = $1 AND connection_generation = $3 AND connected
        RETURNING true
        """,
        charge_point_id,
        at,
        generation,
    )
    return bool(released)


# A connector's status moves only forward in time: one older than what is stored (a
# queued message delivered late) changes nothing. Shared with the group-commit writer.
CONNECTOR_STATUS_UPSERT = """
    ON CONFLICT (charge_point_id, evse_id, connector_id) DO UPDATE
    SET status = EXCLUDED.status, detail = EXCLUDED.detail,
        error_code = EXCLUDED.error_code, info = EXCLUDED.info,
        vendor_error_code = EXCLUDED.vendor_error_code, status_at = EXCLUDED.status_at,
        updated_at = now()
    WHERE connectors.status_at <= EXCLUDED.status_at
"""


async def set_connector_status(conn: Executor, event: ConnectorStatusChanged) -> None:
    """Upsert a connector's status, ignoring one older than what is stored (queued messages)."""
    await conn.execute(
        f"""
        INSERT INTO connectors (charge_point_id, evse_id, connector_id, status, detail,
                                error_code, info, vendor_error_code, status_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        {CONNECTOR_STATUS_UPSERT}
        """,
        event.charge_point_id,
        event.evse_id,
        event.connector_id,
        event.status.value,
        event.detail,
        event.error_code,
        event.info,
        event.vendor_error_code,
        event.occurred_at,
    )


async def set_firmware_status(conn: Executor, charge_point_id: str, status: str) -> None:
    await conn.execute(
        "UPDATE chargers SET firmware_status = $2, updated_at = now() WHERE charge_point_id = $1",
        charge_point_id,
        status,
    )


async def touch_last_seen(conn: Executor, seen: Mapping[str, datetime]) -> list[str]:
    """Advance ``last_seen_at`` for many chargers in one statement; returns those skipped.

    The rows are locked in key order with SKIP LOCKED: a row another transaction
    holds (a set-up batch connecting that charger, which may lock rows over several
    statements) is skipped instead of waited for, so this write can never be part
    of a deadlock. The caller keeps the skipped chargers for its next flush.
    Chargers without a row (deleted meanwhile) are neither written nor returned.
    """
    if not seen:
        return []
    rows = await conn.fetch(
        """
        WITH s AS (
            SELECT * FROM unnest($1::text[], $2::timestamptz[]) AS s(id, at)
        ), locked AS (
            SELECT c.charge_point_id FROM chargers c
            WHERE c.charge_point_id = ANY($1::text[])
            ORDER BY c.charge_point_id FOR UPDATE SKIP LOCKED
        ), touched AS (
            UPDATE chargers c SET last_seen_at = GREATEST(c.last_seen_at, s.at)
            FROM s JOIN locked l ON l.charge_point_id = s.id
            WHERE c.charge_point_id = s.id
            RETURNING c.charge_point_id
        )
        SELECT s.id FROM s
        WHERE NOT EXISTS (SELECT 1 FROM touched t WHERE t.charge_point_id = s.id)
          AND EXISTS (SELECT 1 FROM chargers c WHERE c.charge_point_id = s.id)
        """,
        list(seen.keys()),
        list(seen.values()),
    )
    return [r["id"] for r in rows]


async def set_credentials(
    conn: Executor, charge_point_id: str, *, password: str | None, security_profile: int
) -> None:
    """Set how a charger authenticates, registering it (Accepted) if it is new.

    ``password`` is hashed here (argon2id, in a worker thread: it takes ~20 ms);
    None removes any password, which only profiles 0 and 3 allow. Raises
    ValueError for a profile outside 0-3 or a password outside 16-40 characters.
    A new password takes effect at the charger's next connection.
    """
    if security_profile not in PROFILES:
        raise ValueError(f"security profile must be 0, 1, 2 or 3, got {security_profile}")
    if password is None and security_profile in (1, 2):
        raise ValueError(f"security profile {security_profile} needs a password")
    password_hash = None if password is None else await asyncio.to_thread(hash_password, password)
    await conn.execute(
        """
        INSERT INTO chargers (charge_point_id, security_profile, password_hash,
                              password_changed_at)
        VALUES ($1, $2, $3, now())
        ON CONFLICT (charge_point_id) DO UPDATE
        SET security_profile = EXCLUDED.security_profile,
            password_hash = EXCLUDED.password_hash,
            password_changed_at = now(), updated_at = now()
        """,
        charge_point_id,
        security_profile,
        password_hash,
    )


async def credentials_of(conn: Executor, charge_point_id: str) -> StoredCredentials | None:
    """The charger's security profile and password hash; None if the charger is unknown."""
    return (await credentials_of_many(conn, [charge_point_id]))[0]


async def credentials_of_many(
    conn: Executor, charge_point_ids: Sequence[str]
) -> list[StoredCredentials | None]:
    """:func:`credentials_of` for many chargers in one statement, in the order given."""
    rows = await conn.fetch(
        """
        SELECT c.security_profile, c.password_hash, c.pending_password_hash,
               c.previous_password_hash, c.pending_security_profile,
               c.charge_point_id IS NOT NULL AS known
        FROM unnest($1::text[]) WITH ORDINALITY AS i(charge_point_id, n)
        LEFT JOIN chargers c ON c.charge_point_id = i.charge_point_id
        ORDER BY i.n
        """,
        list(charge_point_ids),
    )
    return [_credentials(row) if row["known"] else None for row in rows]


def _credentials(row: Any) -> StoredCredentials:
    alternates = tuple(
        h for h in (row["pending_password_hash"], row["previous_password_hash"]) if h is not None
    )
    return StoredCredentials(
        row["security_profile"], row["password_hash"], alternates, row["pending_security_profile"]
    )
