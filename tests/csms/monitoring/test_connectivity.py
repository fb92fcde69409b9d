"""Connectivity: silent chargers go offline, downtime is recorded, availability is reported."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from ocpp.v16 import call as call16
from websockets.asyncio.client import connect

from charge_point_sim import parse_fault
from csms.monitoring.availability import (
    Interval,
    StatusInterval,
    charger_availability,
)
from csms.monitoring.connectivity import liveness_verdict
from tests.charge_point_sim.support import running, wait_status
from tests.conftest import StartCsms
from tests.csms.api.conftest import Api, api  # noqa: F401  (the fixture)
from tests.ocpp_clients import charger_v16
from tests.waiting import eventually

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BOOT16 = call16.BootNotification(charge_point_vendor="Acme", charge_point_model="W1")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_liveness_verdict_probes_then_gives_up() -> None:
    assert liveness_verdict(5, heartbeat_interval=10, silence_factor=3) is None
    assert liveness_verdict(11, heartbeat_interval=10, silence_factor=3) == "probe"
    assert liveness_verdict(31, heartbeat_interval=10, silence_factor=3) == "offline"


def test_availability_of_charger_and_connectors() -> None:
    # Window 0..100 min; offline 10..20 and 90..(open); connector 1 Faulted 40..60.
    report = charger_availability(
        "CP",
        (at(0), at(100)),
        known_since=at(-500),
        downtime=[Interval(at(10), at(20)), Interval(at(90), None)],
        statuses=[
            StatusInterval(1, 1, "Available", at(-30), at(40)),
            StatusInterval(1, 1, "Faulted", at(40), at(60)),
            StatusInterval(1, 1, "Occupied", at(60), None),
            StatusInterval(2, 2, "Available", at(50), None),  # first seen at 50 min
        ],
    )
    assert report.observed_s == 6000
    assert report.online_s == 6000 - 600 - 600
    assert report.online_percent == 80.0
    one, two = report.connectors
    # usable 0..40 and 60..100 = 80 min, minus offline 10..20 and 90..100 = 60 min
    assert (one.evse_id, one.usable_s, one.usable_percent) == (1, 3600, 60.0)
    # observed from 50 min: usable 50..100 minus 90..100
    assert (two.observed_s, two.usable_s, two.usable_percent) == (3000, 2400, 80.0)
    assert [(d.start, d.end) for d in report.downtime] == [(at(10), at(20)), (at(90), at(100))]


def test_availability_clips_to_when_the_charger_was_known() -> None:
    report = charger_availability("CP", (at(0), at(60)), at(30), [Interval(at(-10), at(45))], [])
    assert (report.observed_s, report.online_s, report.online_percent) == (1800, 900, 50.0)
    empty = charger_availability("CP", (at(0), at(60)), at(90), [], [])
    assert empty.online_percent is None


async def test_silent_charger_with_open_tcp_is_marked_offline(start_csms: StartCsms) -> None:
    csms = await start_csms(
        heartbeat_interval=1,
        monitoring_silence_factor=2.0,
        monitoring_liveness_check_interval=0.1,
        ping_interval=None,  # the server's own keep-alive would also catch it, much later
    )
    boot = [2, "b1", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "M"}]
    async with (
        connect(f"{csms.ocpp_url}/MUTE", subprotocols=["ocpp1.6"], ping_interval=None) as mute,  # type: ignore[list-item]
        charger_v16(csms.ocpp_url, "QUIET-BUT-ALIVE") as alive,
    ):  # fmt: skip
        await mute.send(json.dumps(boot))
        assert json.loads(await mute.recv())[2]["status"] == "Accepted"
        await alive.call(BOOT16)
        # The mute charger stops reading: its TCP stays open, but no pong, no message.
        mute.transport.pause_reading()
        started = asyncio.get_running_loop().time()

        async def mute_offline() -> bool:
            return bool(
                await csms.pool.fetchval(
                    "SELECT NOT connected FROM chargers WHERE charge_point_id = 'MUTE'"
                )
            )

        await eventually(mute_offline, within=6.0)
        took = asyncio.get_running_loop().time() - started
        assert 2.0 <= took < 5.0, took
        row = await eventually(
            lambda: csms.pool.fetchrow(
                "SELECT reason, ended_at FROM charger_downtime WHERE charge_point_id = 'MUTE'"
            )
        )  # written by monitoring once the disconnect has committed
        assert row["reason"] == "silent" and row["ended_at"] is None
        # The other charger sent nothing either, but answered the watchdog's pings.
        assert await csms.pool.fetchval(
            "SELECT connected FROM chargers WHERE charge_point_id = 'QUIET-BUT-ALIVE'"
        )
        assert csms.app.registry.get("QUIET-BUT-ALIVE") is not None


async def test_downtime_and_availability_report(api: Api) -> None:  # noqa: F811
    async with charger_v16(api.csms.ocpp_url, "AV-1") as cp:
        await cp.call(BOOT16)
        await cp.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Available")
        )
    await eventually(
        lambda: api.csms.pool.fetchval(
            "SELECT count(*) = 1 FROM charger_downtime WHERE charge_point_id = 'AV-1'"
        )
    )
    await asyncio.sleep(0.3)  # some measurable downtime
    async with charger_v16(api.csms.ocpp_url, "AV-1") as cp:
        await cp.call(call16.Heartbeat())
        await eventually(
            lambda: api.csms.pool.fetchval(
                "SELECT ended_at IS NOT NULL FROM charger_downtime WHERE charge_point_id = 'AV-1'"
            )
        )
        response = await api.reader.get("/chargers/AV-1/availability")
        assert response.status_code == 200, response.text
        report = response.json()
        fleet = (await api.reader.get("/availability")).json()

    assert 0 < report["online_percent"] < 100
    [down] = report["downtime"]
    down_s = (
        datetime.fromisoformat(down["to"]) - datetime.fromisoformat(down["from"])
    ).total_seconds()
    assert down_s >= 0.3
    assert report["online_seconds"] == pytest.approx(report["observed_seconds"] - down_s)
    [connector] = report["connectors"]
    assert connector["evse_id"] == 1 and 0 < connector["usable_percent"] < 100
    assert [c["charge_point_id"] for c in fleet["chargers"]] == ["AV-1"]
    assert fleet["online_percent"] == report["online_percent"] or fleet["online_percent"] > 0

    assert (await api.reader.get("/chargers/NOPE/availability")).status_code == 404
    bad = await api.reader.get(
        "/chargers/AV-1/availability",
        params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    )
    assert bad.status_code == 422
    assert (await api.anonymous.get("/chargers/AV-1/availability")).status_code == 401


async def test_downtime_opened_at_start_for_chargers_a_crash_left_connected(
    start_csms: StartCsms,
) -> None:
    first = await start_csms()
    await first.pool.execute(
        """
        INSERT INTO nodes (node_id, host, pid, version, lease_expires_at)
        VALUES ('other-node', 'elsewhere', 1, 'x', now() + interval '1 hour');
        INSERT INTO chargers (charge_point_id, connected, last_seen_at, node_id,
                              connection_generation) VALUES
            ('CRASHED', true, now() - interval '2 hours', NULL, NULL),  -- the process died
            ('ELSEWHERE', true, now() - interval '5 seconds', 'other-node', 1),  -- a live node
            ('NEVER', false, NULL, NULL, NULL)
        """
    )
    await first.app.stop()
    second = await start_csms()
    rows = await second.pool.fetch(
        "SELECT charge_point_id, reason, started_at < now() - interval '1 hour' AS old"
        " FROM charger_downtime WHERE ended_at IS NULL ORDER BY charge_point_id"
    )
    assert [(r["charge_point_id"], r["reason"], r["old"]) for r in rows] == [
        ("CRASHED", "csms_down", True),
        ("NEVER", "csms_down", False),
    ]


async def test_simulated_fault_and_disconnect_show_in_availability(api: Api) -> None:  # noqa: F811
    """The simulator's fault injection: connector 1 Faulted for a while, then a dropped link."""
    faults = [
        parse_fault("faulted@30:charger=0,connector=1,duration=120"),
        parse_fault("disconnect-storm@200:charger=0,duration=1"),
    ]
    async with running(api.csms, False, faults=faults) as (_, _, cp_id):

        async def reconnected_after_drop() -> bool:
            return bool(
                await api.csms.pool.fetchval(
                    "SELECT count(*) FILTER (WHERE ended_at IS NOT NULL) >= 1"
                    " AND count(*) FILTER (WHERE ended_at IS NULL) = 0"
                    " FROM charger_downtime WHERE charge_point_id = $1",
                    cp_id,
                )
            )

        await eventually(reconnected_after_drop, within=15.0)
        await wait_status(api.csms, cp_id, 1, "Available")  # the fault cleared
        statuses = await api.csms.pool.fetch(
            "SELECT status FROM connector_status_history"
            " WHERE charge_point_id = $1 AND evse_id = 1 ORDER BY id",
            cp_id,
        )
        report = (await api.reader.get(f"/chargers/{cp_id}/availability")).json()
    assert "Faulted" in [r["status"] for r in statuses]
    assert 0 < report["online_percent"] < 100 and len(report["downtime"]) == 1
    one, two = report["connectors"]
    assert one["usable_percent"] < two["usable_percent"] <= report["online_percent"] + 1e-6
