"""Alerts end to end: a real CSMS, real Postgres, the ocpp library's chargers.

Each rule's fault is sent as a charger would send it; the alert must appear
(API, event log) within a bounded time, deduplicate while open, and resolve
once the condition clears (``alerts_clear_hold`` is 0.5 s here).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.bus import Subscription
from csms.outbox import schemas
from csms.outbox.envelope import OutboxRow, messages_for
from csms.outbox.topics import Topic, topic_of
from csms.storage import event_log
from smart_charging.events import ChargingLimitSet
from tests.conftest import StartCsms
from tests.csms.monitoring.alerting import AlertApi, alert_api
from tests.ocpp_clients import charger_v16, charger_v201
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


async def boot16(cp: Any) -> None:
    await cp.call(call16.BootNotification(charge_point_model="M1", charge_point_vendor="V"))


def status16(connector: int, status: str, error: str = "NoError", **kw: Any) -> Any:
    return call16.StatusNotification(
        connector_id=connector, error_code=error, status=status, timestamp=iso(now()), **kw
    )


def meter16(connector: int, t: datetime, *values: tuple[str, float, str | None]) -> Any:
    sampled = []
    for measurand, value, phase in values:
        sv: dict[str, Any] = {"measurand": measurand, "value": f"{value:.1f}"}
        if phase:
            sv["phase"] = phase
        sampled.append(sv)
    return call16.MeterValues(
        connector_id=connector, meter_value=[{"timestamp": iso(t), "sampled_value": sampled}]
    )


async def one(api: AlertApi, rule: str, within: float = 5.0, **params: Any) -> dict[str, Any]:
    """The single unresolved alert of ``rule`` (waits for it)."""

    async def check() -> dict[str, Any] | None:
        items = await api.unresolved(rule, **params)
        assert len(items) <= 1, items
        return items[0] if items else None

    found = await eventually(check, within)
    assert found is not None
    return found


async def resolved(api: AlertApi, alert_id: int, within: float = 5.0) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        alert: dict[str, Any] = (await api.reader.get(f"/alerts/{alert_id}")).json()
        return alert if alert["status"] == "resolved" else None

    done = await eventually(check, within)
    assert done is not None
    return done


async def test_faulted_connector_alert_lifecycle_events_and_api(start_csms: StartCsms) -> None:
    async with alert_api(start_csms) as api, charger_v16(api.csms.ocpp_url, "CP-F") as cp:
        bus: Subscription = api.csms.app.bus.subscribe("test")
        await boot16(cp)
        await cp.call(status16(2, "Faulted", "GroundFailure", vendor_error_code="E-17"))
        alert = await one(api, "connector_faulted")
        assert (alert["charge_point_id"], alert["evse_id"], alert["connector_id"]) == ("CP-F", 2, 2)
        assert alert["severity"] == "critical" and "GroundFailure" in alert["message"]
        assert alert["evidence"][0]["vendor_error_code"] == "E-17"
        # Deduplicated while open: count and evidence grow, still one alert.
        for _ in range(6):
            await cp.call(status16(2, "Faulted", "GroundFailure"))
        await eventually(lambda: _count(api, alert["id"], 7))
        again = (await api.reader.get(f"/alerts/{alert['id']}")).json()
        assert len(again["evidence"]) == 5  # capped: first four and the latest
        # Another connector is another alert.
        await cp.call(status16(1, "Faulted", "HighTemperature"))
        assert len(await api.unresolved("connector_faulted")) == 2 or await eventually(
            lambda: _n_unresolved(api, "connector_faulted", 2)
        )
        # Cleared: resolved after the hold time, not before.
        await cp.call(status16(2, "Available"))
        cleared_at = asyncio.get_running_loop().time()
        done = await resolved(api, alert["id"])
        assert asyncio.get_running_loop().time() - cleared_at >= 0.5
        assert done["resolved_by"] == "auto" and done["count"] == 7
        # Events: in the outbox (same transaction as the row) and on the bus.
        kinds = [(k, p["connector_id"]) for k, p in await api.events("CP-F")]
        assert kinds == [("alert_opened", 2), ("alert_opened", 1), ("alert_resolved", 2)]
        seen: list[tuple[str, int | None]] = []
        while len(seen) < len(kinds):
            event = await asyncio.wait_for(bus.get(), 5)
            if event.type.startswith("alert_"):
                seen.append((event.type, getattr(event, "connector_id", None)))
        assert seen == kinds
        assert topic_of("alert_opened") is Topic.CHARGER_ALERTS


async def _count(api: AlertApi, alert_id: int, n: int) -> bool:
    return bool((await api.reader.get(f"/alerts/{alert_id}")).json()["count"] == n)


async def _n_unresolved(api: AlertApi, rule: str, n: int) -> bool:
    return len(await api.unresolved(rule)) == n


async def test_alert_events_match_their_published_schema(start_csms: StartCsms) -> None:
    async with alert_api(start_csms) as api, charger_v16(api.csms.ocpp_url, "CP-S") as cp:
        await boot16(cp)
        await cp.call(status16(1, "Faulted", "GroundFailure"))
        await one(api, "connector_faulted")
        await cp.call(status16(1, "Available"))
        await eventually(lambda: _n_events(api, 2))
        rows = await api.csms.pool.fetch(
            "SELECT id, event_id, type, charge_point_id, evse_id, connector_id, occurred_at, "
            "recorded_at, payload::text AS payload FROM events WHERE type LIKE 'alert_%'"
        )
        for r in rows:
            fields = {k: r[k] for k in r.keys() if k != "payload"}
            row = OutboxRow(**fields, payload=json.loads(r["payload"]))
            (message,) = messages_for(row)
            assert message.topic is Topic.CHARGER_ALERTS and message.key == b"CP-S"
            schemas.validate(message.envelope)
        assert sorted(r["type"] for r in rows) == ["alert_opened", "alert_resolved"]


async def _n_events(api: AlertApi, n: int) -> bool:
    return len(await api.events()) == n


async def test_acknowledge_and_resolve_through_the_api(start_csms: StartCsms) -> None:
    async with alert_api(start_csms) as api, charger_v16(api.csms.ocpp_url, "CP-A") as cp:
        await boot16(cp)
        await cp.call(status16(1, "Faulted", "GroundFailure"))
        alert = await one(api, "connector_faulted")
        url = f"/alerts/{alert['id']}"
        assert (await api.reader.post(f"{url}/acknowledge")).status_code == 403
        ack = await api.operator.post(f"{url}/acknowledge")
        assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
        assert ack.json()["acknowledged_by"] == "api:ops-team"
        assert (await api.operator.post(f"{url}/acknowledge")).status_code == 409
        assert [a["id"] for a in await api.alerts(status="acknowledged")] == [alert["id"]]
        # Still faulted: an acknowledged alert keeps deduplicating.
        await cp.call(status16(1, "Faulted", "GroundFailure"))
        await eventually(lambda: _count(api, alert["id"], 2))
        done = await api.operator.post(f"{url}/resolve")
        assert done.status_code == 200 and done.json()["resolved_by"] == "api:ops-team"
        assert (await api.operator.post(f"{url}/resolve")).status_code == 409
        assert (await api.operator.post("/alerts/99999/resolve")).status_code == 404
        assert [k for k, _ in await api.events("CP-A")] == ["alert_opened", "alert_resolved"]
        # The fault is still there: the next finding opens a new alert.
        await cp.call(status16(1, "Faulted", "GroundFailure"))
        newer = await one(api, "connector_faulted")
        assert newer["id"] != alert["id"]
        # Filters.
        assert await api.alerts(severity="warning") == []
        assert len(await api.alerts(charge_point_id="CP-A")) == 2
        assert (await api.reader.get("/alerts", params={"rule": "nope"})).status_code == 422
        assert (await api.reader.get("/alerts/424242")).status_code == 404


async def test_open_alerts_gauge(start_csms: StartCsms) -> None:
    from csms.monitoring.metrics import REGISTRY

    async with alert_api(start_csms) as api, charger_v16(api.csms.ocpp_url, "CP-G") as cp:
        await boot16(cp)
        await cp.call(status16(1, "Faulted", "GroundFailure"))
        await one(api, "connector_faulted")

        def gauge() -> float | None:
            return REGISTRY.get_sample_value(
                "csms_alerts_open", {"severity": "critical", "rule": "connector_faulted"}
            )

        assert await eventually(lambda: asyncio.sleep(0, gauge() == 1.0))
        await cp.call(status16(1, "Available"))
        assert await eventually(lambda: asyncio.sleep(0, gauge() == 0.0))


async def test_meter_rules_voltage_current_temperature_register(start_csms: StartCsms) -> None:
    """Four meter faults on four connectors of one 1.6 charger, and their recovery."""
    async with alert_api(start_csms) as api, charger_v16(api.csms.ocpp_url, "CP-M") as cp:
        await boot16(cp)
        t = now()
        for i in range(3):  # 60 s apart on the charger's clock: the 60 s hold is met
            at = t + timedelta(seconds=60 * i)
            await cp.call(meter16(1, at, ("Voltage", 195.0, "L1-N")))
            await cp.call(meter16(2, at, ("Current.Import", 45.0, "L1")))
            await cp.call(meter16(3, at, ("Temperature", 80.0, None)))
            await cp.call(
                meter16(4, at, ("Energy.Active.Import.Register", 9000.0 - 1000 * i, None))
            )
        voltage = await one(api, "voltage_out_of_band")
        assert voltage["connector_id"] == 1 and "195 V" in voltage["message"]
        current = await one(api, "overcurrent")
        assert current["connector_id"] == 2 and current["severity"] == "critical"
        assert (await one(api, "temperature_high"))["connector_id"] == 3
        back = await one(api, "register_backwards")
        assert back["connector_id"] == 4
        # The alert opens at the first backward step; the second is counted when the
        # engine has read it from the bus (paced reads: it may not have yet).
        assert await eventually(lambda: _count(api, back["id"], 2))
        assert await api.unresolved("current_over_limit") == []  # no limit known: skipped
        at = t + timedelta(seconds=240)
        await cp.call(meter16(1, at, ("Voltage", 229.0, "L1-N")))
        await cp.call(meter16(2, at, ("Current.Import", 16.0, "L1")))
        await cp.call(meter16(3, at, ("Temperature", 35.0, None)))
        await cp.call(meter16(4, at, ("Energy.Active.Import.Register", 7100.0, None)))
        for alert in (voltage, current, back):
            await resolved(api, alert["id"])
        # A register jump: 50 kWh in a minute on a 22 kW connector.
        await cp.call(
            meter16(
                4, at + timedelta(seconds=60), ("Energy.Active.Import.Register", 57_100.0, None)
            )
        )
        jump = await one(api, "register_jump")
        assert jump["connector_id"] == 4


async def test_short_sessions_and_reboot_loop(start_csms: StartCsms) -> None:
    async with alert_api(start_csms) as api, charger_v16(api.csms.ocpp_url, "CP-R") as cp:
        await api.csms.add_token("TAG")
        for _ in range(3):
            await boot16(cp)
        loop = await one(api, "reboot_loop", charge_point_id="CP-R")
        assert loop["evse_id"] is None and "3 times" in loop["message"]
        t = now()
        for i in range(3):
            start = await cp.call(
                call16.StartTransaction(connector_id=1, id_tag="TAG", meter_start=0,
                                        timestamp=iso(t + timedelta(seconds=100 * i)))
            )  # fmt: skip
            await cp.call(
                call16.StopTransaction(meter_stop=2, transaction_id=start.transaction_id,
                                       timestamp=iso(t + timedelta(seconds=100 * i + 4)))
            )  # fmt: skip
        short = await one(api, "short_sessions")
        assert (short["evse_id"], short["connector_id"]) == (1, 1)
        # A normal session clears it.
        begin, end = iso(t + timedelta(seconds=400)), iso(t + timedelta(seconds=4000))
        start = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="TAG", meter_start=0, timestamp=begin)
        )
        await cp.call(
            call16.StopTransaction(
                meter_stop=9000, transaction_id=start.transaction_id, timestamp=end
            )
        )
        await resolved(api, short["id"])


async def test_clock_skew_and_component_problem_v201(start_csms: StartCsms) -> None:
    async with (
        alert_api(start_csms, alerts_clock_skew_max=60.0) as api,
        charger_v201(api.csms.ocpp_url, "CP-201") as cp,
    ):
        # Per-charger override: the skew must last 0.2 s instead of a minute.
        put = await api.operator.put(
            "/alert-thresholds/charger/CP-201", json={"clock_skew_hold_s": 0.2}
        )
        assert put.status_code == 200
        listed = (await api.reader.get("/alert-thresholds")).json()
        assert listed["overrides"] == [
            {"scope": "charger", "key": "CP-201", "overrides": {"clock_skew_hold_s": 0.2}}
        ]
        bad = await api.operator.put("/alert-thresholds/charger/CP-201", json={"nope": 1})
        assert bad.status_code == 422
        await cp.call(call201.BootNotification(
            charging_station={"model": "M2", "vendor_name": "V"}, reason="PowerUp"))  # fmt: skip
        ahead = now() + timedelta(hours=2)

        def problem(at: datetime, value: str, seq: int) -> Any:
            item = {"event_id": seq, "timestamp": iso(at), "trigger": "Delta",
                    "actual_value": value, "tech_code": "RCM-7", "event_notification_type":
                    "HardWiredNotification", "component": {"name": "RCD", "evse": {"id": 1}},
                    "variable": {"name": "Problem"}}  # fmt: skip
            return call201.NotifyEvent(generated_at=iso(at), seq_no=seq, event_data=[item])

        for i in range(4):
            await cp.call(problem(ahead, "true", i))
            await asyncio.sleep(0.1)
        alert = await one(api, "component_problem")
        assert (alert["evse_id"], alert["connector_id"]) == (1, 1) and "RCM-7" in alert["message"]
        skew = await one(api, "clock_skew")
        assert "ahead of" in skew["message"]
        await cp.call(problem(now(), "false", 9))
        await resolved(api, alert["id"])
        await resolved(api, skew["id"])


async def test_heartbeat_gap_opens_and_a_message_clears_it(start_csms: StartCsms) -> None:
    async with (
        alert_api(start_csms, heartbeat_interval=1, alerts_heartbeat_gap_multiple=1.0) as api,
        charger_v16(api.csms.ocpp_url, "CP-H") as cp,
    ):
        await boot16(cp)
        gap = await one(api, "heartbeat_gap", within=6.0)
        assert gap["severity"] == "warning" and "while connected" in gap["message"]
        for _ in range(10):  # keep talking until the hold time has passed
            await cp.call(call16.Heartbeat())
            await asyncio.sleep(0.15)
        await resolved(api, gap["id"])


async def test_current_over_the_smart_charging_limit(start_csms: StartCsms) -> None:
    """The limit comes from smart charging's ``charging_limit_set`` events, in the event feed."""
    async with alert_api(start_csms) as api, charger_v16(api.csms.ocpp_url, "CP-L") as cp:
        await boot16(cp)
        t = now()
        for i in range(3):  # 25 A, no limit known yet: only the 32 A rating applies
            await cp.call(meter16(1, t + timedelta(seconds=60 * i), ("Current.Import", 25.0, "L1")))
        await asyncio.sleep(0.3)  # two ticks
        assert await api.unresolved("current_over_limit") == []
        default = ChargingLimitSet(
            charge_point_id="CP-L", occurred_at=now(), site_id="S", evse_id=1,
            transaction_id=None, purpose="TxDefaultProfile", limit_a=16.0,
            previous_limit_a=None, phases=3, status="Accepted", reason="test",
        )  # fmt: skip
        async with api.csms.pool.acquire() as conn:
            await event_log.append(conn, default)
        for i in range(3, 6):
            await cp.call(meter16(1, t + timedelta(seconds=60 * i), ("Current.Import", 25.0, "L1")))
        alert = await one(api, "current_over_limit")
        assert "16 A charging limit" in alert["message"] and alert["connector_id"] == 1
        assert await api.unresolved("overcurrent") == []


async def test_site_thresholds_and_the_rating_configured_for_smart_charging(
    start_csms: StartCsms,
) -> None:
    async with alert_api(start_csms) as api, charger_v16(api.csms.ocpp_url, "CP-SITE") as cp:
        await boot16(cp)
        pool = api.csms.pool
        await pool.execute("INSERT INTO sc_sites (site_id) VALUES ('S1')")
        await pool.execute(
            "INSERT INTO sc_charger_sites (charge_point_id, site_id, connector_max_current_a) "
            "VALUES ('CP-SITE', 'S1', 16)"
        )
        put = await api.operator.put("/alert-thresholds/site/S1", json={"current_hold_s": 0})
        assert put.status_code == 200  # also re-reads the charger's site and rating
        await cp.call(meter16(1, now(), ("Current.Import", 20.0, "L1")))
        alert = await one(api, "overcurrent")  # 20 A > 16 A rating, no hold at this site
        assert "16 A rating" in alert["message"]
        delete = await api.operator.delete("/alert-thresholds/site/S1")
        assert delete.status_code == 204
        assert (await api.operator.delete("/alert-thresholds/site/S1")).status_code == 404
