"""Billing through the operator API: tariffs, assignments, CDRs, CSV, running cost."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import asyncpg
import pytest
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from billing.service import BillingService
from tests.csms.api.conftest import Api
from tests.ocpp_clients import charger_v16, charger_v201
from tests.waiting import eventually

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)

pytestmark = pytest.mark.timeout(60)


def ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def register(wh: float, moment: datetime) -> dict[str, Any]:
    return {
        "timestamp": ts(moment),
        "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register"}],
    }


async def create_tariff(api: Api, **body: Any) -> dict[str, Any]:
    response = await api.operator.post("/tariffs", json={"currency": "EUR", **body})
    assert response.status_code == 201, response.text
    tariff: dict[str, Any] = response.json()
    return tariff


async def test_tariffs_are_validated_created_and_assigned(api: Api) -> None:
    body = {
        "name": "day/night",
        "currency": "EUR",
        "time_zone": "Europe/Berlin",
        "price_per_kwh": "0.39",
        "vat_rate": "0.19",
        "min_price": "1.00",
        "periods": [{"name": "night", "price_per_kwh": "0.25", "start": "22:00", "end": "06:00"}],
    }
    assert (await api.reader.post("/tariffs", json=body)).status_code == 403
    for bad, message in [
        ({"currency": "XXX"}, "unknown currency"),
        ({"time_zone": "Mars/Olympus"}, "unknown time zone"),
        ({"price_per_kwh": "-0.1"}, "price_per_kwh"),
        ({"min_price": "5", "max_price": "2"}, "min_price"),
    ]:
        response = await api.operator.post("/tariffs", json=body | bad)
        assert response.status_code == 422 and message in response.json()["error"], bad
    created = await create_tariff(api, **body)
    assert created["price_per_kwh"] == "0.39" and created["periods"][0]["start"] == "22:00"
    listed = (await api.reader.get("/tariffs")).json()["items"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert (await api.reader.get(f"/tariffs/{created['id']}")).json() == created
    assert (await api.reader.get("/tariffs/999")).status_code == 404

    assign = "/tariff-assignments"
    bad = await api.operator.put(assign, json={"scope": "charger", "tariff_id": created["id"]})
    assert bad.status_code == 422
    missing = await api.operator.put(assign, json={"scope": "default", "tariff_id": 999})
    assert missing.status_code == 404
    ok = await api.operator.put(
        assign, json={"scope": "site", "scope_id": "depot-1", "tariff_id": created["id"]}
    )
    assert ok.status_code == 200
    items = (await api.reader.get(assign)).json()["items"]
    assert [(a["scope"], a["scope_id"]) for a in items] == [("site", "depot-1")]
    gone = await api.operator.delete(assign, params={"scope": "site", "scope_id": "depot-1"})
    assert gone.status_code == 204
    # tariffs are immutable: a CDR's tariff_id always means the prices it was priced with
    with pytest.raises(asyncpg.PostgresError, match="immutable"):
        await api.csms.pool.execute("UPDATE tariffs SET price_per_kwh = 0")


async def test_most_specific_assignment_wins(api: Api) -> None:
    """Token group over charger over default; the CDR says which one was used."""
    default = await create_tariff(api, name="default", price_per_kwh="0.50")
    charger = await create_tariff(api, name="CP-A", price_per_kwh="0.40")
    fleet = await create_tariff(api, name="fleet", price_per_kwh="0.20")
    for scope, scope_id, tariff in [
        ("default", "", default),
        ("charger", "CP-A", charger),
        ("token_group", "FLEET", fleet),
    ]:
        response = await api.operator.put(
            "/tariff-assignments",
            json={"scope": scope, "scope_id": scope_id, "tariff_id": tariff["id"]},
        )
        assert response.status_code == 200
    await api.csms.add_token("FLEET-CARD", group_id="FLEET")
    await api.csms.add_token("WALK-IN")
    costs = {}
    async with charger_v16(api.csms.ocpp_url, "CP-A") as cp:
        for index, tag in enumerate(["FLEET-CARD", "WALK-IN"]):
            begin = T0 + timedelta(hours=index)
            start = await cp.call(
                call16.StartTransaction(
                    connector_id=1, id_tag=tag, meter_start=10000 * index, timestamp=ts(begin)
                )
            )
            await cp.call(
                call16.StopTransaction(
                    meter_stop=10000 * index + 10000,
                    timestamp=ts(begin + timedelta(minutes=50)),
                    transaction_id=start.transaction_id,
                )
            )
    cdrs = (await api.reader.get("/cdrs", params={"charge_point_id": "CP-A"})).json()
    for cdr in cdrs["items"]:
        costs[cdr["id_token"]] = (cdr["tariff_id"], cdr["total_cost"], cdr["token_group"])
    assert costs == {
        "FLEET-CARD": (fleet["id"], "2.00", "FLEET"),
        "WALK-IN": (charger["id"], "4.00", None),
    }


async def test_cdr_list_get_csv_and_running_cost_of_a_16_session(api: Api) -> None:
    tariff = await create_tariff(api, name="flat", price_per_kwh="0.50", vat_rate="0.20")
    await api.operator.put(
        "/tariff-assignments", json={"scope": "default", "tariff_id": tariff["id"]}
    )
    await api.csms.add_token("TAG-1")
    async with charger_v16(api.csms.ocpp_url, "CP16") as cp:
        start = await cp.call(
            call16.StartTransaction(
                connector_id=1, id_tag="TAG-1", meter_start=1000, timestamp=ts(T0)
            )
        )
        tx = start.transaction_id
        await cp.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=tx,
                meter_value=[register(4000, T0 + timedelta(minutes=20))],
            )
        )
        session_id = await api.csms.pool.fetchval("SELECT id FROM sessions")
        running = (await api.reader.get(f"/sessions/{session_id}/cost")).json()
        assert running["status"] == "active" and running["total_energy_wh"] == "3000"
        assert (running["total_net"], running["total_tax"], running["total_cost"]) == (
            "1.50",
            "0.30",
            "1.80",
        )
        await cp.call(
            call16.StopTransaction(
                meter_stop=6000, transaction_id=tx, timestamp=ts(T0 + timedelta(minutes=40))
            )
        )

    listed = (await api.reader.get("/cdrs", params={"session_id": session_id})).json()
    [cdr] = listed["items"]
    assert cdr["total_energy_wh"] == "5000" and cdr["total_cost"] == "3.00"
    assert cdr["meter_start_wh"] == "1000" and cdr["meter_stop_wh"] == "6000"
    assert [i["kind"] for i in cdr["items"]] == ["energy", "tax"]
    assert (await api.reader.get(f"/cdrs/{cdr['id']}")).json() == cdr
    assert (await api.reader.get("/cdrs/999")).status_code == 404
    ended = (await api.reader.get(f"/sessions/{session_id}/cost")).json()
    assert ended["status"] == "ended" and ended["cdr_id"] == cdr["id"]
    assert ended["total_cost"] == "3.00"

    later = {"since": (T0 + timedelta(hours=1)).isoformat()}
    assert (await api.reader.get("/cdrs", params=later)).json()["items"] == []
    window = {"since": T0.isoformat(), "until": (T0 + timedelta(days=1)).isoformat()}
    export = await api.reader.get("/cdrs.csv", params=window)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["id"], r["total_energy_wh"], r["total_cost"], r["currency"]) for r in rows] == [
        (str(cdr["id"]), "5000", "3.00", "EUR")
    ]
    assert (await api.reader.get("/cdrs.csv")).status_code == 422  # a range is required
    with pytest.raises(asyncpg.PostgresError, match="immutable"):
        await api.csms.pool.execute("UPDATE cdrs SET total_cost = 0")


class CostAwareStation(ChargePoint201):
    """A 2.0.1 station that records CostUpdated."""

    costs: list[tuple[float, str]]

    @on("CostUpdated")
    async def on_cost_updated(
        self, total_cost: float, transaction_id: str, **_: Any
    ) -> result201.CostUpdated:
        self.costs.append((total_cost, transaction_id))
        return result201.CostUpdated()


async def test_201_station_gets_cost_updated_with_the_running_total(api: Api) -> None:
    tariff = await create_tariff(api, name="flat", price_per_kwh="0.30", flat_fee="0.50")
    await api.operator.put(
        "/tariff-assignments", json={"scope": "default", "tariff_id": tariff["id"]}
    )
    [billing] = [s for s in api.csms.app.services if isinstance(s, BillingService)]
    CostAwareStation.costs = []
    async with charger_v201(api.csms.ocpp_url, "CS201", CostAwareStation) as cs:

        def meter(wh: int, moment: datetime) -> list[dict[str, Any]]:
            return [
                {
                    "timestamp": ts(moment),
                    "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}],
                }
            ]

        await cs.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=ts(T0),
                trigger_reason="CablePluggedIn",
                seq_no=0,
                transaction_info={"transaction_id": "TX-1"},
                evse={"id": 1, "connector_id": 1},
                meter_value=meter(20000, T0),
            )
        )
        await cs.call(
            call201.TransactionEvent(
                event_type="Updated",
                timestamp=ts(T0 + timedelta(minutes=30)),
                seq_no=1,
                trigger_reason="MeterValuePeriodic",
                meter_value=meter(27000, T0 + timedelta(minutes=30)),
                transaction_info={"transaction_id": "TX-1", "charging_state": "Charging"},
            )
        )
        assert await billing.send_cost_updates() == 1
        await eventually(lambda: _true(CostAwareStation.costs))
        # 0.50 fee + 7 kWh x 0.30 = 2.60
        assert CostAwareStation.costs == [(2.6, "TX-1")]
        await cs.call(
            call201.TransactionEvent(
                event_type="Ended",
                timestamp=ts(T0 + timedelta(minutes=45)),
                seq_no=2,
                trigger_reason="EVCommunicationLost",
                meter_value=meter(28000, T0 + timedelta(minutes=45)),
                transaction_info={"transaction_id": "TX-1", "stopped_reason": "EVDisconnected"},
            )
        )
        assert await billing.send_cost_updates() == 0  # nothing running any more
    cdr = await api.csms.pool.fetchrow("SELECT * FROM cdrs")
    assert cdr["total_energy_wh"] == D(8000) and cdr["total_cost"] == D("2.90")
    assert cdr["protocol"] == "ocpp2.0.1" and cdr["transaction_id"] == "TX-1"


async def _true(value: Any) -> Any:
    return value


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_time_of_use_and_idle_from_stored_states(api: Api, protocol: str) -> None:
    """10:00-11:30Z: 5 kWh by 10:30, then the EV is full (1.6 status / 2.0.1 chargingState).

    Energy 10:00-10:30 split at 10:15: 2.5 kWh base x 0.20 = 0.50, 2.5 kWh
    peak (10:15-11:00) x 1.00 = 2.50; idle 60 min - 15 grace = 45 x 0.10 = 4.50.
    """
    tariff = await create_tariff(
        api, name="tou", price_per_kwh="0.20", price_per_parking_minute="0.10",
        parking_grace_minutes="15",
        periods=[{"name": "peak", "price_per_kwh": "1.00", "start": "10:15", "end": "11:00"}],
    )  # fmt: skip
    await api.operator.put(
        "/tariff-assignments",
        json={"scope": "charger", "scope_id": "CP-T", "tariff_id": tariff["id"]},
    )
    await api.csms.add_token("TAG-T")
    full, end = T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)
    if protocol == "ocpp1.6":
        async with charger_v16(api.csms.ocpp_url, "CP-T") as cp:
            start = await cp.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="TAG-T", meter_start=0, timestamp=ts(T0)
                )
            )
            await cp.call(
                call16.StatusNotification(
                    connector_id=1, error_code="NoError", status="Charging", timestamp=ts(T0)
                )
            )
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=start.transaction_id,
                    meter_value=[register(5000, full)],
                )
            )
            await cp.call(
                call16.StatusNotification(
                    connector_id=1, error_code="NoError", status="SuspendedEV", timestamp=ts(full)
                )
            )
            await cp.call(
                call16.StopTransaction(
                    meter_stop=5000, timestamp=ts(end), transaction_id=start.transaction_id
                )
            )
    else:
        async with charger_v201(api.csms.ocpp_url, "CP-T") as cs:
            for seq, (kind, moment, wh, state) in enumerate(
                [
                    ("Started", T0, 0, "Charging"),
                    ("Updated", full, 5000, "SuspendedEV"),
                    ("Ended", end, 5000, "EVConnected"),
                ]
            ):
                await cs.call(
                    call201.TransactionEvent(
                        event_type=kind,
                        timestamp=ts(moment),
                        trigger_reason="MeterValuePeriodic",
                        seq_no=seq,
                        evse={"id": 1, "connector_id": 1},
                        id_token={"id_token": "TAG-T", "type": "ISO14443"},
                        transaction_info={"transaction_id": "TX-T", "charging_state": state},
                        meter_value=[
                            {
                                "timestamp": ts(moment),
                                "sampledValue": [
                                    {"value": wh, "measurand": "Energy.Active.Import.Register"}
                                ],
                            }
                        ],
                    )
                )
    [cdr] = (await api.reader.get("/cdrs", params={"charge_point_id": "CP-T"})).json()["items"]
    lines = {i["description"]: i["amount"] for i in cdr["items"]}
    assert lines == {
        "energy (base)": "0.50",
        "energy (peak)": "2.50",
        "parking time after 15 min grace": "4.50",
    }
    assert cdr["energy_by_period"] == {"base": "2500", "peak": "2500"}
    assert (cdr["charging_seconds"], cdr["parking_seconds"]) == ("1800", "3600")
    assert cdr["total_cost"] == "7.50" and cdr["flags"] == []
