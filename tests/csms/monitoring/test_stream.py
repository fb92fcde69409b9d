"""GET /api/v1/stream: a subscriber receives one charger's notifications in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from ocpp.v16 import call as call16

from csms.events import MeterSample, MeterSampled, SessionStarted
from csms.monitoring.alerts import AlertOpened, Severity
from csms.monitoring.progress import SessionTracker, estimate_completion, readings_of
from csms.storage import event_log
from tests.charge_point_sim.support import running, start_tx, stop_tx
from tests.csms.api.conftest import Api, api  # noqa: F401  (the fixture)
from tests.ocpp_clients import charger_v16
from tests.waiting import eventually

BOOT16 = call16.BootNotification(charge_point_vendor="Acme", charge_point_model="W1")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Listener:
    """Reads an SSE response in the background into ``events`` (type, data)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.connected = asyncio.Event()

    async def read(self, response: httpx.Response) -> None:
        kind, data = "", ""
        async for line in response.aiter_lines():
            if line.startswith(": connected"):
                self.connected.set()
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and kind:
                self.events.append((kind, json.loads(data)))
                kind, data = "", ""

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [data for k, data in self.events if k == kind]


@contextlib.asynccontextmanager
async def listening(client: httpx.AsyncClient, **params: Any) -> AsyncIterator[Listener]:
    listener = Listener()
    async with client.stream("GET", "/stream", params=params, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        task = asyncio.create_task(listener.read(response))
        try:
            await asyncio.wait_for(listener.connected.wait(), 5)
            yield listener
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task


def meter(at: datetime, energy_wh: float, power_w: float, soc: float) -> dict[str, Any]:
    return {
        "timestamp": at.isoformat(),
        "sampled_value": [
            {"value": str(energy_wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": str(power_w), "measurand": "Power.Active.Import", "unit": "W"},
            {"value": str(soc), "measurand": "SoC", "unit": "Percent"},
        ],
    }


async def status(cp: Any, connector: int, value: str) -> None:
    await cp.call(
        call16.StatusNotification(connector_id=connector, error_code="NoError", status=value)
    )


async def test_subscriber_gets_one_chargers_events_in_order(api: Api) -> None:  # noqa: F811
    await api.csms.add_token("DRIVER-9")
    async with (
        listening(api.reader, charger="ST-1") as listener,
        charger_v16(api.csms.ocpp_url, "ST-1") as cp,
        charger_v16(api.csms.ocpp_url, "ST-OTHER") as other,
    ):
        await cp.call(BOOT16)
        await other.call(BOOT16)
        await status(cp, 1, "Available")
        await status(other, 1, "Faulted")  # filtered out: another charger
        await status(cp, 1, "Preparing")
        started = await cp.call(
            call16.StartTransaction(
                connector_id=1, id_tag="DRIVER-9", meter_start=1000, timestamp=T0.isoformat()
            )
        )
        tx = started.transaction_id
        for minute, soc in enumerate((40.0, 45.0, 50.0), start=1):
            at = T0 + timedelta(minutes=minute)
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=tx,
                    meter_value=[meter(at, 1000 + 100 * minute, 6000 + minute, soc)],
                )
            )
        await cp.call(
            call16.StopTransaction(
                transaction_id=tx,
                meter_stop=1400,
                timestamp=(T0 + timedelta(minutes=4)).isoformat(),
            )
        )
        await status(cp, 1, "Available")
        await event_log.append(
            api.csms.pool,
            AlertOpened(
                charge_point_id="ST-1",
                occurred_at=T0,
                alert_id=7,
                rule="connector_faulted",
                severity=Severity.CRITICAL,
                evse_id=1,
                connector_id=1,
                message="connector 1 Faulted",
                first_seen=T0,
                last_seen=T0,
                count=1,
            ),
        )
        api.csms.app.bus.publish()
        await eventually(lambda: _has(listener, "alert_opened"))

    connectivity = {"charger_connected", "charger_disconnected"}  # timing-dependent at the end
    kinds = [kind for kind, _ in listener.events if kind not in connectivity]
    assert kinds == [
        "connector_status_changed",
        "connector_status_changed",
        "session_progress",  # started
        "session_progress",
        "session_progress",
        "session_progress",
        "session_progress",  # ended
        "connector_status_changed",
        "alert_opened",
    ]
    assert all(data["charge_point_id"] == "ST-1" for _, data in listener.events)
    statuses = [d["status"] for d in listener.of_type("connector_status_changed")]
    assert statuses == ["Available", "Occupied", "Available"]
    progress = listener.of_type("session_progress")
    assert [p["energy_wh"] for p in progress] == [0.0, 100.0, 200.0, 300.0, 400.0]
    assert [p["soc_percent"] for p in progress[1:4]] == [40.0, 45.0, 50.0]
    assert progress[1]["estimated_completion_at"] is None  # one SoC sample: no rate yet
    # 5 %/minute from 50 % at minute 3: full at minute 13.
    eta = datetime.fromisoformat(progress[3]["estimated_completion_at"])
    assert eta == T0 + timedelta(minutes=13)
    assert progress[3]["power_w"] == 6003.0 and progress[-1]["ended"] is True
    assert listener.of_type("alert_opened")[0]["severity"] == "critical"


async def _has(listener: Listener, kind: str) -> bool:
    return bool(listener.of_type(kind))


async def test_type_filter_auth_and_site(api: Api) -> None:  # noqa: F811
    async with (
        listening(api.reader, type="connector_status_changed") as listener,
        charger_v16(api.csms.ocpp_url, "ST-2") as cp,
    ):
        await cp.call(BOOT16)
        await status(cp, 1, "Available")
        await eventually(lambda: _has(listener, "connector_status_changed"))
    assert {kind for kind, _ in listener.events} == {"connector_status_changed"}
    assert (await api.anonymous.get("/stream")).status_code == 401
    assert (await api.reader.get("/stream", params={"site": "north"})).status_code == 404
    assert (await api.reader.get("/stream", params={"type": "nonsense"})).status_code == 422


async def test_open_stream_does_not_hold_up_shutdown(api: Api) -> None:  # noqa: F811
    async with listening(api.reader):
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(api.csms.app.stop(), 10)
        assert loop.time() - started < 3.0


@pytest.mark.parametrize("v201", [False, True], ids=["ocpp1.6", "ocpp2.0.1"])
async def test_simulated_ev_session_progress_with_soc_and_eta(api: Api, v201: bool) -> None:  # noqa: F811
    """The simulator's EV reports SoC; the stream estimates when it will be full."""
    await api.csms.add_token("TAG1")
    async with (
        running(api.csms, v201) as (_, _, cp_id),
        listening(api.reader, charger=cp_id, type="session_progress") as listener,
    ):
        tx_id = await start_tx(api.csms, cp_id, v201)

        async def has_eta() -> bool:
            return any(p["estimated_completion_at"] for p in listener.of_type("session_progress"))

        await eventually(has_eta, within=15.0)
        await stop_tx(api.csms, cp_id, v201, tx_id)
        await eventually(lambda: _ended(listener))
    progress = [p for p in listener.of_type("session_progress") if p["transaction_id"] == tx_id]
    energy = [p["energy_wh"] for p in progress if p["energy_wh"] is not None]
    socs = [p["soc_percent"] for p in progress if p["soc_percent"] is not None]
    assert energy == sorted(energy) and energy[-1] > 0  # in order: never goes back
    assert socs == sorted(socs) and socs[-1] > socs[0]
    with_eta = [p for p in progress if p["estimated_completion_at"]]
    last = with_eta[-1]
    assert datetime.fromisoformat(last["estimated_completion_at"]) > datetime.fromisoformat(
        last["occurred_at"]
    )
    assert progress[-1]["ended"] is True and progress[-1]["power_w"] == 0.0


async def _ended(listener: Listener) -> bool:
    return any(p["ended"] for p in listener.of_type("session_progress"))


def test_progress_sums_phases_and_never_counts_a_register_going_back() -> None:
    at = T0
    phases = [MeterSample(at, "Power.Active.Import", 2000.0, "W", phase=p) for p in ("L1", "L2")]
    assert readings_of(phases).power_w == 4000.0
    total = [*phases, MeterSample(at, "Power.Active.Import", 3900.0, "W")]
    assert readings_of(total).power_w == 3900.0  # a total wins over per-phase values
    tracker = SessionTracker()
    start = SessionStarted(
        charge_point_id="CP", occurred_at=at, evse_id=1, connector_id=1,
        transaction_id="7", id_token=None, meter_start_wh=500.0,
    )  # fmt: skip
    assert tracker.apply(start)[1] == 0.0

    def register(wh: float) -> float:
        event = MeterSampled(
            charge_point_id="CP", occurred_at=at, evse_id=1, connector_id=1, transaction_id="7",
            samples=(MeterSample(at, "Energy.Active.Import.Register", wh, "Wh"),),
        )  # fmt: skip
        return tracker.apply(event)[1]

    # Going back counts nothing; a register that was reset counts on from its new value.
    assert [register(wh) for wh in (600.0, 550.0, 700.0)] == [100.0, 0.0, 150.0]
    assert estimate_completion((at, 50.0), (at, 50.0)) is None  # no time passed: no rate
