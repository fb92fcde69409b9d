"""A small charging history written straight to the database, with figures worked out by hand.

Chargers: ``AN-A`` with two EVSEs, ``AN-B`` with one and no sessions, so the
fleet has 3 charging points (72 point-hours a day). Sessions (UTC):

* A1, ``AN-A`` #1, 2026-03-02 08:00-10:00: register 0 -> 5000 (08:30) ->
  10000 (09:00) -> 10000 (09:30), stop 10000. 10 kWh, charging 08:00-09:00,
  full at 09:00 so 60 min idle after full; 2.5 kWh in each quarter hour
  08:00-09:00, so the peak is 10 kW.
* A2, ``AN-A`` #2, 09:00-09:30, register 1000 throughout: no energy, a failed session.
* A3, ``AN-A`` #1, 23:00 -> 01:00 next day: 0 -> 7000 (00:00) -> 14000 (01:00).
  7 kWh on each day, charging the whole hour on each day, peak 7 kW, no idle time.

2026-03-02: 17 kWh; occupied 2 + 0.5 + 1 = 3.5 h of 72 = 4.8611 %; charging
1 + 1 = 2 h of 72 = 2.7778 %; 3 sessions started, 1 failed = 33.33 %; average
duration (120 + 30 + 120) / 3 = 90 min; idle after full (60 + 0) / 2 = 30 min
(A2 never charged); peak 10 kW.
2026-03-03: 7 kWh; occupied 1 h and charging 1 h of 72 = 1.3889 %; no session
started; peak 7 kW.
Both days: 24 kWh; occupied 4.5 h of 144 = 3.125 %; charging 3 h of 144 =
2.0833 %; peak 10 kW. Durations: 30-60 min: 1, 120-240 min: 2. Energy:
0-5 kWh: 1, 10-20 kWh: 2. Per charger, ``AN-A`` has 2 points (96 h over the two
days): occupied 4.6875 %, charging 3.125 %; ``AN-B`` all zero.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

REGISTER = "Energy.Active.Import.Register"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


# (transaction, evse, start, end, meter start, meter stop, [(time, register Wh)])
SESSIONS = [
    ("A1", 1, at(2, 8), at(2, 10), 0.0, 10000.0,
     [(at(2, 8, 30), 5000.0), (at(2, 9), 10000.0), (at(2, 9, 30), 10000.0)]),
    ("A2", 2, at(2, 9), at(2, 9, 30), 1000.0, 1000.0, []),
    ("A3", 1, at(2, 23), at(3, 1), 0.0, 14000.0, [(at(3, 0), 7000.0)]),
]  # fmt: skip


async def write_known_history(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO chargers (charge_point_id, protocol) "
            "VALUES ('AN-A', 'ocpp1.6'), ('AN-B', 'ocpp1.6')"
        )
        await conn.execute(
            """
            INSERT INTO connectors (charge_point_id, evse_id, connector_id, status, status_at)
            VALUES ('AN-A', 0, 0, 'Available', now()), ('AN-A', 1, 1, 'Available', now()),
                   ('AN-A', 2, 2, 'Available', now()), ('AN-B', 1, 1, 'Available', now())
            """
        )
        for tx, evse, start, end, start_wh, stop_wh, samples in SESSIONS:
            session_id = await conn.fetchval(
                """
                INSERT INTO sessions (charge_point_id, protocol, transaction_id, evse_id,
                    connector_id, id_token, auth_status, status, started_at, ended_at,
                    meter_start_wh, meter_start_at, meter_stop_wh, stop_reason)
                VALUES ('AN-A', 'ocpp1.6', $1, $2, $2, 'DRIVER-1', 'Accepted', 'ended', $3, $4,
                        $5, $3, $6, 'EVDisconnected')
                RETURNING id
                """,
                tx, evse, start, end, start_wh, stop_wh,
            )  # fmt: skip
            await conn.executemany(
                """
                INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
                    sampled_at, measurand, value, unit, location)
                VALUES ('AN-A', $1, $2, $2, $3, $4, $5, 'Wh', 'Outlet')
                """,
                [(session_id, evse, t, REGISTER, wh) for t, wh in samples],
            )
