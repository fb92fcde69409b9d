"""A charger's set-up writes, for many chargers in one statement each.

A known charger's connect, boot and disconnect used to take a transaction of
five to seven round trips each (registration, resend check, presence, event,
BEGIN/COMMIT); after an outage ten thousand of them arrive at once. Here each
is ONE statement, written as a bulk writer (:class:`csms.storage.group_commit.BulkWriter`)
so that group commit can write the set-ups of many chargers in one go; alone (a
batch of one) the statement commits by itself:

* :data:`CONNECTED` -- takes the connection's fencing generation, claims the
  charger's presence with it unless a newer connection holds the charger, and
  appends the ChargerConnected event if (and only if) it claimed;
* :data:`BOOTED` -- resend check, the boot's fields on the charger row, and the
  ChargerBooted event, for a charger that is registered;
* :data:`DISCONNECTED` -- marks the charger disconnected if the closing socket's
  generation still holds it, and appends the ChargerDisconnected event then;
* :data:`CREDENTIALS` -- a read: the stored credentials the authentication at
  the WebSocket handshake checks (:mod:`csms.security.gate`).

An unknown charger (no row) is left to the caller, which registers it in a
transaction of its own (:mod:`csms.presence`): rare, and a policy decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from csms.events import ChargerBooted, ChargerConnected, ChargerDisconnected, Event
from csms.storage import Executor, chargers
from csms.storage.event_log import NEW_EVENTS_ONLY, RESEND


def _event_arrays(events: Sequence[Event]) -> list[list[Any]]:
    """The columns of ``events`` rows the statements below append, as arrays."""
    return [
        [e.event_id for e in events],
        [e.type for e in events],
        [e.evse[0] for e in events],
        [e.evse[1] for e in events],
        [e.payload_json() for e in events],  # as every other write to events
    ]


_APPEND_EVENTS_OF = """
    INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                        occurred_at, payload)
    SELECT i.event_id, i.type, i.charge_point_id, i.evse_id, i.connector_id, i.at,
           i.payload::jsonb
    FROM input i JOIN {done} d ON d.charge_point_id = i.charge_point_id
"""

# Every multi-row write of ``chargers`` locks its rows in key order first (here and in
# :func:`csms.storage.chargers.touch_last_seen`): locked in the order a join happened
# to visit them, two statements on overlapping chargers could each hold a row the
# other waits for, and Postgres would fail one of them (a deadlock). $2 is the
# chargers' ids in each statement below (an array: found through the primary key).
_LOCK_CHARGERS_OF_INPUT = """
    SELECT c.charge_point_id FROM chargers c
    WHERE c.charge_point_id = ANY($2::text[])
    ORDER BY c.charge_point_id FOR UPDATE
"""

# -- connect -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connection:
    """What a connect needs: the event, and the node whose socket it is."""

    event: ChargerConnected
    node_id: str


@dataclass(frozen=True, slots=True)
class Connected:
    """A connect's outcome. ``registration`` None: the charger is unknown (nothing done)."""

    generation: int
    registration: str | None
    claimed: bool  # False: a newer connection holds the charger, nothing recorded


_CONNECT_MANY = f"""
    WITH input AS MATERIALIZED (
        SELECT i.*, nextval('connection_generation_seq') AS generation
        FROM unnest($1::int[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                    $6::uuid[], $7::text[], $8::int[], $9::int[], $10::text[])
             AS i(n, charge_point_id, at, protocol, node_id, event_id, type, evse_id,
                  connector_id, payload)
        ORDER BY i.n
    ), locked AS ({_LOCK_CHARGERS_OF_INPUT}), claimed AS (
        UPDATE chargers c
        SET connected = true, connected_at = i.at, last_seen_at = i.at,
            protocol = COALESCE(i.protocol, c.protocol), node_id = i.node_id,
            connection_generation = i.generation, updated_at = now()
        FROM input i JOIN locked l ON l.charge_point_id = i.charge_point_id
        WHERE c.charge_point_id = i.charge_point_id
          AND (c.connection_generation IS NULL OR c.connection_generation < i.generation)
        RETURNING c.charge_point_id
    ), logged AS ({_APPEND_EVENTS_OF.format(done="claimed")})
    SELECT i.n, i.generation, c.registration, cl.charge_point_id IS NOT NULL AS claimed
    FROM input i
    LEFT JOIN chargers c ON c.charge_point_id = i.charge_point_id
    LEFT JOIN claimed cl ON cl.charge_point_id = i.charge_point_id
    ORDER BY i.n
"""


async def connect_many(conn: Executor, items: Sequence[Connection]) -> list[Connected]:
    """Claim the presence of many chargers (at most one connect per charger)."""
    events = [item.event for item in items]
    rows = await conn.fetch(
        _CONNECT_MANY,
        list(range(len(items))),
        [e.charge_point_id for e in events],
        [e.occurred_at for e in events],
        [e.protocol.value for e in events],
        [item.node_id for item in items],
        *_event_arrays(events),
    )
    return [Connected(r["generation"], r["registration"], r["claimed"]) for r in rows]


# -- boot --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Booted:
    """A boot's outcome. ``registration`` None: the charger is unknown (nothing done)."""

    registration: str | None
    duplicate: bool  # a resend of a boot already stored: nothing stored again


# A registered charger's boot event is inserted first (its resend check, see
# csms.storage.event_log.NEW_EVENTS_ONLY), its row updated only if the event is new.
_BOOT_MANY = f"""
    WITH input AS (
        SELECT * FROM unnest($1::int[], $2::text[], $3::timestamptz[], $4::text[],
                             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                             $10::text[], $11::text[], $12::text[], $13::text[],
                             $14::uuid[], $15::text[], $16::int[], $17::int[], $18::text[])
        AS i(n, charge_point_id, at, protocol, vendor, model, serial_number,
             firmware_version, iccid, imsi, meter_type, meter_serial_number, reason,
             event_id, type, evse_id, connector_id, payload)
    ), locked AS ({_LOCK_CHARGERS_OF_INPUT}), event AS (
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload)
        SELECT i.event_id, i.type, i.charge_point_id, i.evse_id, i.connector_id, i.at,
               i.payload::jsonb
        FROM input i JOIN locked l ON l.charge_point_id = i.charge_point_id
        ORDER BY i.n
        {NEW_EVENTS_ONLY}
    ), marked AS (
        SELECT i.n, i.charge_point_id, c.registration,
               c.charge_point_id IS NOT NULL AND {RESEND} AS duplicate
        FROM input i LEFT JOIN chargers c ON c.charge_point_id = i.charge_point_id
             LEFT JOIN event ON event.event_id = i.event_id
    ), booted AS (
        UPDATE chargers c
        SET protocol = i.protocol, vendor = i.vendor, model = i.model,
            serial_number = i.serial_number, firmware_version = i.firmware_version,
            iccid = i.iccid, imsi = i.imsi, meter_type = i.meter_type,
            meter_serial_number = i.meter_serial_number, last_boot_at = i.at,
            last_boot_reason = i.reason, last_boot_status = c.registration,
            updated_at = now()
        FROM input i JOIN marked m ON m.n = i.n
             JOIN locked l ON l.charge_point_id = i.charge_point_id
        WHERE c.charge_point_id = i.charge_point_id AND NOT m.duplicate
    )
    SELECT n, registration, duplicate FROM marked ORDER BY n
"""


async def boot_many(conn: Executor, events: Sequence[ChargerBooted]) -> list[Booted]:
    """Record the boots of many registered chargers (at most one boot per charger)."""
    rows = await conn.fetch(
        _BOOT_MANY,
        list(range(len(events))),
        [e.charge_point_id for e in events],
        [e.occurred_at for e in events],
        [e.protocol.value for e in events],
        [e.vendor for e in events],
        [e.model for e in events],
        [e.serial_number for e in events],
        [e.firmware_version for e in events],
        [e.iccid for e in events],
        [e.imsi for e in events],
        [e.meter_type for e in events],
        [e.meter_serial_number for e in events],
        [e.reason for e in events],
        *_event_arrays(events),
    )
    return [Booted(r["registration"], r["duplicate"]) for r in rows]


# -- disconnect --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Disconnection:
    """What a disconnect needs: the event, and the generation of the socket that closed."""

    event: ChargerDisconnected
    generation: int


_DISCONNECT_MANY = f"""
    WITH input AS (
        SELECT * FROM unnest($1::int[], $2::text[], $3::bigint[], $4::timestamptz[],
                             $5::uuid[], $6::text[], $7::int[], $8::int[], $9::text[])
        AS i(n, charge_point_id, generation, at, event_id, type, evse_id, connector_id,
             payload)
    ), locked AS ({_LOCK_CHARGERS_OF_INPUT}), released AS (
        UPDATE chargers c SET connected = false, disconnected_at = i.at, updated_at = now()
        FROM input i JOIN locked l ON l.charge_point_id = i.charge_point_id
        WHERE c.charge_point_id = i.charge_point_id
          AND c.connection_generation = i.generation AND c.connected
        RETURNING c.charge_point_id
    ), logged AS ({_APPEND_EVENTS_OF.format(done="released")})
    SELECT i.n, r.charge_point_id IS NOT NULL AS released
    FROM input i LEFT JOIN released r ON r.charge_point_id = i.charge_point_id
    ORDER BY i.n
"""


async def disconnect_many(conn: Executor, items: Sequence[Disconnection]) -> list[bool]:
    """Mark chargers disconnected where the closing socket still held them; True: released.

    False for a charger that has since connected again (here or on another node)
    or was already marked offline: a stale socket never marks a moved charger offline.
    """
    events = [item.event for item in items]
    rows = await conn.fetch(
        _DISCONNECT_MANY,
        list(range(len(items))),
        [e.charge_point_id for e in events],
        [item.generation for item in items],
        [e.occurred_at for e in events],
        *_event_arrays(events),
    )
    return [bool(r["released"]) for r in rows]


class _Writer:
    """A bulk writer (group commit's protocol) around one of the functions above.

    Each is one statement, atomic on its own: a batch of one kind needs no BEGIN
    and COMMIT (a charger setting up alone pays one round trip instead of three).
    """

    single_statement = True

    def __init__(self, name: str, write: Any) -> None:
        self.name = name
        self._write = write

    async def __call__(self, conn: Executor, items: Sequence[Any]) -> Sequence[Any]:
        result: Sequence[Any] = await self._write(conn, items)
        return result


CONNECTED = _Writer("charger_connected", connect_many)
BOOTED = _Writer("charger_booted", boot_many)
DISCONNECTED = _Writer("charger_disconnected", disconnect_many)
CREDENTIALS = _Writer("charger_credentials", chargers.credentials_of_many)
