"""Helpers shared by the simulator's integration tests (real CSMS, real Postgres)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from charge_point_sim import Fleet, FleetConfig, SimCharger

_remote_start_ids = itertools.count(1)


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def fleet_for(csms: Any, v201: bool, **overrides: Any) -> Fleet:
    """One charger of the given version, no random arrivals, simulated 600x real time."""
    cfg = FleetConfig(
        url=csms.ocpp_url,
        chargers=1,
        v201_share=1.0 if v201 else 0.0,
        connectors=1,
        speed=600,
        arrival_rate=0,
        dwell_mean_s=0,
        meter_interval=30,
        id_tags=["TAG1"],
        id_prefix="SIM201-" if v201 else "SIM16-",
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return Fleet(cfg)


@asynccontextmanager
async def running(
    csms: Any, v201: bool, **overrides: Any
) -> AsyncIterator[tuple[Fleet, SimCharger, str]]:
    """A started, booted one-charger fleet: two connectors, 120x speed unless overridden.

    At 120x a remote-started session (no departure time) lasts at least ~10 s of
    real time before its EV is full, so tests can hold it open for their checks.
    """
    fleet = fleet_for(csms, v201, **{"connectors": 2, "speed": 120, **overrides})
    ch = fleet.chargers[0]
    await fleet.start()
    try:
        assert await fleet.wait_online()
        yield fleet, ch, ch.cfg.charger_id
    finally:
        await fleet.stop()


async def start_tx(csms: Any, cp_id: str, v201: bool, evse: int = 1, tag: str = "TAG1") -> str:
    """Remote-start a transaction and return its id once the CSMS has stored it."""
    payload: Any
    if v201:
        payload = call201.RequestStartTransaction(
            id_token={"idToken": tag, "type": "ISO14443"},
            remote_start_id=next(_remote_start_ids),
            evse_id=evse,
        )
    else:
        payload = call16.RemoteStartTransaction(id_tag=tag, connector_id=evse)
    res = await csms.router.call(cp_id, payload)
    assert res.status == "Accepted"
    return str(
        await eventually(
            lambda: csms.pool.fetchval(
                "SELECT transaction_id FROM sessions WHERE charge_point_id = $1 "
                "AND evse_id = $2 AND ended_at IS NULL",
                cp_id,
                evse,
            )
        )
    )


async def stop_tx(csms: Any, cp_id: str, v201: bool, tx_id: str) -> Any:
    """Remote-stop a transaction; returns the ended ``sessions`` row."""
    payload: Any = (
        call201.RequestStopTransaction(transaction_id=tx_id)
        if v201
        else call16.RemoteStopTransaction(transaction_id=int(tx_id))
    )
    assert (await csms.router.call(cp_id, payload)).status == "Accepted"
    return await ended_session(csms, cp_id, tx_id)


async def ended_session(csms: Any, cp_id: str, tx_id: str) -> Any:
    """The ``sessions`` row of ``tx_id`` once the CSMS has recorded its end."""
    return await eventually(
        lambda: csms.pool.fetchrow(
            "SELECT * FROM sessions WHERE charge_point_id = $1 AND transaction_id = $2 "
            "AND ended_at IS NOT NULL",
            cp_id,
            tx_id,
        )
    )


async def connector_status(csms: Any, cp_id: str, evse: int) -> str | None:
    """The CSMS's stored status of a connector (1.6 connector N = EVSE N)."""
    value = await csms.pool.fetchval(
        "SELECT status FROM connectors WHERE charge_point_id = $1 AND evse_id = $2", cp_id, evse
    )
    return None if value is None else str(value)


async def wait_status(csms: Any, cp_id: str, evse: int, status: str) -> None:
    async def check() -> bool:
        return await connector_status(csms, cp_id, evse) == status

    await eventually(check)


async def event_payloads(csms: Any, cp_id: str, event_type: str) -> list[dict[str, Any]]:
    """Payloads of the charger's events of one type, oldest first."""
    rows = await csms.pool.fetch(
        "SELECT payload FROM events WHERE charge_point_id = $1 AND type = $2 ORDER BY id",
        cp_id,
        event_type,
    )
    return [
        json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"] for r in rows
    ]


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait (bounded) until a synchronous condition on simulator state holds."""

    async def check() -> bool:
        return condition()

    await eventually(check, within)


def token(tag: str) -> dict[str, str]:
    return {"idToken": tag, "type": "ISO14443"}


async def statuses_of(csms: Any, cp_id: str, evse: int) -> list[str]:
    """Every status the charger reported for one connector / EVSE, in order."""
    events = await event_payloads(csms, cp_id, "connector_status_changed")
    return [e["status"] for e in events if e["evse_id"] == evse]


async def set_key(
    csms: Any, cp_id: str, v201: bool, v16_key: str, comp_var: str, value: str
) -> None:
    """ChangeConfiguration (1.6) / SetVariables (2.0.1) of one key, which must be accepted."""
    if v201:
        component, variable = comp_var.split(".")
        res = await csms.router.call(
            cp_id,
            call201.SetVariables(
                set_variable_data=[
                    {
                        "attributeValue": value,
                        "component": {"name": component},
                        "variable": {"name": variable},
                    }
                ]
            ),
        )
        assert res.set_variable_result[0]["attribute_status"] == "Accepted"
    else:
        res = await csms.router.call(cp_id, call16.ChangeConfiguration(key=v16_key, value=value))
        assert res.status == "Accepted"


async def at_least(rows: Awaitable[list[Any]], n: int) -> list[Any] | None:
    """``rows`` if it has at least ``n`` items, else None (for :func:`eventually`)."""
    found = await rows
    return found if len(found) >= n else None
