"""A simulated session of each OCPP version, priced at its end into a CDR (real CSMS + Postgres)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from billing import store
from billing.money import round_money, to_decimal
from billing.tariff import Tariff
from charge_point_sim.scenario import Arrival
from tests.charge_point_sim.support import eventually, fleet_for

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("v201", [False, True], ids=["v16", "v201"])
async def test_simulated_session_gets_a_cdr_with_the_meter_difference(
    start_csms: Any, v201: bool
) -> None:
    csms = await start_csms(billing_cost_update_interval=0, billing_sweep_interval=0)
    await csms.add_token("TAG1")
    tariff = Tariff(currency="EUR", price_per_kwh=D("0.39"), flat_fee=D(1), vat_rate=D("0.19"))
    stored = await store.create_tariff(csms.pool, "flat", tariff)
    await store.assign(csms.pool, "default", "", stored.id)
    fleet = fleet_for(
        csms,
        v201,
        sessions=1,
        schedule=[Arrival(at=0, charger=0, soc=50, target_soc=56, capacity_kwh=40)],
    )
    summary = await fleet.run()
    assert summary.sessions_completed == 1 and summary.call_errors == {}, summary.format()
    cp_id = fleet.chargers[0].cfg.charger_id
    session = await csms.pool.fetchrow("SELECT * FROM sessions WHERE charge_point_id = $1", cp_id)
    assert session is not None and session["status"] == "ended"
    cdr = await eventually(
        lambda: csms.pool.fetchrow("SELECT * FROM cdrs WHERE session_id = $1", session["id"])
    )
    meter_difference = to_decimal(session["meter_stop_wh"]) - to_decimal(session["meter_start_wh"])
    assert meter_difference > 2000  # 6 % of 40 kWh, less the car's losses
    assert cdr["total_energy_wh"] == meter_difference
    assert round(cdr["total_energy_wh"]) == round(session["energy_wh"])
    assert cdr["flags"] == [] and cdr["tariff_id"] == stored.id
    energy = round_money(meter_difference / 1000 * D("0.39"), "EUR")
    assert cdr["total_net"] == D("1.00") + energy
    assert cdr["total_tax"] == round_money(cdr["total_net"] * D("0.19"), "EUR")
    assert cdr["total_cost"] == cdr["total_net"] + cdr["total_tax"]
    assert (cdr["start_at"], cdr["end_at"]) == (session["started_at"], session["ended_at"])
    # The CDR was committed with the session's end, and follows it in the outbox.
    types = [
        r["type"]
        for r in await csms.pool.fetch(
            "SELECT type FROM events WHERE charge_point_id = $1 ORDER BY id", cp_id
        )
    ]
    assert types[types.index("session_ended") + 1] == "cdr_created"
