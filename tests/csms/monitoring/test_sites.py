"""Per-site monitoring: power per site, site availability and the stream's site filter.

Sites and placements are made through smart charging's own API (POST /sites,
PUT /chargers/{id}/site), the way an operator makes them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16

from csms.monitoring import metrics
from csms.monitoring.availability import (
    ChargerAvailability,
    ConnectorAvailability,
    SiteAvailability,
)
from csms.monitoring.sites import SiteMap, power_by_site
from smart_charging import store as sc_store
from tests.conftest import RunningCsms
from tests.csms.api.conftest import Api, api  # noqa: F401  (the fixture)
from tests.csms.monitoring.test_metrics import scrape, value
from tests.csms.monitoring.test_stream import listening, meter, status
from tests.ocpp_clients import charger_v16
from tests.waiting import eventually

BOOT16 = call16.BootNotification(charge_point_vendor="Acme", charge_point_model="W1")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# -- pure ------------------------------------------------------------------------------


def test_power_is_summed_per_site_and_idle_sites_read_zero() -> None:
    site_of = {"A": "north", "B": "north", "C": "south"}.get
    watts = power_by_site(
        {"A": 7000.0, "B": 3500.0, "X": 1000.0, "Y": 500.0},
        site_of,
        frozenset({"north", "south", "empty"}),
        "none",
    )
    assert watts == {"north": 10500.0, "south": 0.0, "empty": 0.0, "none": 1500.0}


def test_a_deleted_site_leaves_the_power_gauge() -> None:
    metrics.set_power_by_site({"gone-site": 5.0, metrics.NO_SITE: 1.0})
    assert 'csms_power_drawn_watts{site="gone-site"} 5.0' in metrics.exposition().decode()
    metrics.set_power_by_site({metrics.NO_SITE: 0.0})
    text = metrics.exposition().decode()
    assert "gone-site" not in text
    assert 'csms_power_drawn_watts{site="none"} 0.0' in text


def test_site_availability_pools_time_of_its_chargers() -> None:
    a = ChargerAvailability("A", 100.0, 50.0, (), (ConnectorAvailability(1, 1, 100.0, 40.0),))
    b = ChargerAvailability(
        "B",
        300.0,
        300.0,
        (),
        (ConnectorAvailability(1, 1, 300.0, 300.0), ConnectorAvailability(2, 2, 100.0, 0.0)),
    )
    site = SiteAvailability("north", (a, b))
    assert site.online_percent == pytest.approx(100.0 * 350 / 400)
    assert site.connector_usable_percent == pytest.approx(100.0 * 340 / 500)
    empty = SiteAvailability("empty", ())
    assert empty.online_percent is None and empty.connector_usable_percent is None


# -- through the running CSMS ----------------------------------------------------------


async def _site(client: Api, site_id: str, *chargers: str) -> None:
    created = await client.operator.post("/sites", json={"site_id": site_id})
    assert created.status_code == 201, created.text
    for charger in chargers:
        placed = await client.operator.put(f"/chargers/{charger}/site", json={"site_id": site_id})
        assert placed.status_code == 200, placed.text


async def test_power_metric_is_labelled_by_the_chargers_site(api: Api) -> None:  # noqa: F811
    await api.csms.add_token("DRIVER-S")
    async with (
        charger_v16(api.csms.ocpp_url, "PW-NORTH") as north,
        charger_v16(api.csms.ocpp_url, "PW-LOOSE") as loose,
    ):
        for cp in (north, loose):
            await cp.call(BOOT16)
        await _site(api, "north", "PW-NORTH")
        for cp, power_w in ((north, 7000.0), (loose, 3000.0)):
            started = await cp.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="DRIVER-S", meter_start=0, timestamp=T0.isoformat()
                )
            )
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=started.transaction_id,
                    meter_value=[meter(T0 + timedelta(minutes=1), 100, power_w, 50)],
                )
            )

        async def power_per_site() -> bool:
            text, samples = await scrape(api.csms)
            return (
                value(samples, "csms_power_drawn_watts", {"site": "north"}) == 7000.0
                and value(samples, "csms_power_drawn_watts", {"site": metrics.NO_SITE}) == 3000.0
                and "PW-" not in text
            )

        # No stream subscriber and a 10 s periodic reload: the scrape reloads the map.
        await eventually(power_per_site)

        removed = await api.operator.delete("/chargers/PW-NORTH/site")
        assert removed.status_code == 204

        async def back_to_none() -> bool:
            _, samples = await scrape(api.csms)
            return (
                value(samples, "csms_power_drawn_watts", {"site": "north"}) == 0.0
                and value(samples, "csms_power_drawn_watts", {"site": metrics.NO_SITE}) == 10000.0
            )

        await eventually(back_to_none)


async def test_site_map_reloads_periodically(csms: RunningCsms) -> None:
    async with charger_v16(csms.ocpp_url, "SM-1") as cp:
        await cp.call(BOOT16)
    site_map = SiteMap(csms.pool, refresh_interval=0.05)
    await site_map.refresh()
    assert site_map.site_of("SM-1") is None and site_map.sites == frozenset()
    reloading = asyncio.create_task(site_map.run())
    try:
        async with csms.pool.acquire() as conn:
            await sc_store.create_site(conn, "south", {})
            await sc_store.put_place(conn, "SM-1", {"site_id": "south"})

        async def placed() -> bool:
            return site_map.site_of("SM-1") == "south" and site_map.sites == {"south"}

        await eventually(placed)
        await sc_store.delete_place(csms.pool, "SM-1")

        async def unplaced() -> bool:
            return site_map.site_of("SM-1") is None

        await eventually(unplaced)
    finally:
        reloading.cancel()


async def test_stream_site_filter_passes_only_that_sites_chargers(api: Api) -> None:  # noqa: F811
    async with (
        charger_v16(api.csms.ocpp_url, "SF-IN") as inside,
        charger_v16(api.csms.ocpp_url, "SF-OUT") as outside,
    ):
        for cp in (inside, outside):
            await cp.call(BOOT16)
        await _site(api, "east", "SF-IN")
        async with listening(api.reader, site="east") as listener:
            await status(outside, 1, "Faulted")
            await status(inside, 1, "Available")
            await status(outside, 1, "Available")
            await status(inside, 1, "Preparing")

            async def two_statuses() -> bool:
                return len(listener.of_type("connector_status_changed")) >= 2

            await eventually(two_statuses)
            await asyncio.sleep(0.2)  # room for a wrongly forwarded SF-OUT event to arrive
        statuses = listener.of_type("connector_status_changed")
        assert [(s["charge_point_id"], s["status"]) for s in statuses] == [
            ("SF-IN", "Available"),
            ("SF-IN", "Occupied"),  # 1.6 Preparing, normalised
        ]
    assert (await api.reader.get("/stream", params={"site": "nowhere"})).status_code == 404


async def test_site_availability_covers_only_its_chargers(api: Api) -> None:  # noqa: F811
    async with charger_v16(api.csms.ocpp_url, "SA-STEADY") as steady:
        await steady.call(BOOT16)
        await status(steady, 1, "Available")
        async with charger_v16(api.csms.ocpp_url, "SA-FLAKY") as flaky:
            await flaky.call(BOOT16)
            await status(flaky, 1, "Available")
        async with charger_v16(api.csms.ocpp_url, "SA-ELSEWHERE") as elsewhere:
            await elsewhere.call(BOOT16)
        await _site(api, "west", "SA-STEADY", "SA-FLAKY")
        await _site(api, "empty")
        await asyncio.sleep(0.3)  # SA-FLAKY offline for a measurable while
        async with charger_v16(api.csms.ocpp_url, "SA-FLAKY") as flaky:
            await flaky.call(call16.Heartbeat())
            await eventually(
                lambda: api.csms.pool.fetchval(
                    "SELECT bool_and(ended_at IS NOT NULL) FROM charger_downtime"
                    " WHERE charge_point_id = 'SA-FLAKY'"
                )
            )
            response = await api.reader.get("/sites/west/availability")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    rows = {row["charge_point_id"]: row for row in report["chargers"]}
    assert sorted(rows) == ["SA-FLAKY", "SA-STEADY"]
    assert rows["SA-STEADY"]["online_percent"] == 100.0
    assert 0 < rows["SA-FLAKY"]["online_percent"] < 100
    observed = sum(r["observed_seconds"] for r in rows.values())
    online = sum(r["online_seconds"] for r in rows.values())
    assert report["online_percent"] == pytest.approx(100.0 * online / observed, abs=1e-3)
    assert rows["SA-FLAKY"]["online_percent"] < report["online_percent"] < 100
    connectors = [c for r in rows.values() for c in r["connectors"]]
    usable = sum(c["usable_seconds"] for c in connectors)
    assert report["connector_usable_percent"] == pytest.approx(
        100.0 * usable / sum(c["observed_seconds"] for c in connectors), abs=1e-3
    )
    assert 0 < report["connector_usable_percent"] < 100

    empty = (await api.reader.get("/sites/empty/availability")).json()
    assert empty["chargers"] == [] and empty["online_percent"] is None
    assert (await api.reader.get("/sites/nowhere/availability")).status_code == 404
    assert (await api.anonymous.get("/sites/west/availability")).status_code == 401
    bad = await api.reader.get(
        "/sites/west/availability",
        params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    )
    assert bad.status_code == 422
