"""A 2.0.1 station without a cost display is not sent CostUpdated again and again."""

from __future__ import annotations

from decimal import Decimal

from billing import store as tariffs
from billing.service import BillingService
from billing.tariff import Tariff
from charge_point_sim.v201 import V201Charger
from csms.storage import interop
from tests.charge_point_sim.support import running, start_tx, stop_tx
from tests.csms.api.conftest import Api
from tests.waiting import eventually


async def _billing(api: Api) -> BillingService:
    await api.csms.add_token("TAG1")
    tariff = await tariffs.create_tariff(
        api.csms.pool, "flat", Tariff(currency="EUR", price_per_kwh=Decimal("0.30"))
    )
    await tariffs.assign(api.csms.pool, "default", "", tariff.id)
    [billing] = [s for s in api.csms.app.services if isinstance(s, BillingService)]
    return billing


async def _unsupported(api: Api, cp: str) -> list[tuple[str, str, str]]:
    rows = await interop.unsupported_actions(api.csms.pool, cp)
    return [(r["action"], r["source"], r["detail"]) for r in rows]


async def _rounds(billing: BillingService, n: int) -> int:
    return sum([await billing.send_cost_updates() for _ in range(n)])


async def test_a_station_whose_device_model_has_no_cost_controller_never_gets_it(
    api: Api,
) -> None:
    billing = await _billing(api)
    async with running(api.csms, v201=True) as (_, ch, cp):
        assert isinstance(ch, V201Charger)
        # Asked after boot: GetVariables answers TariffCostCtrlr UnknownComponent.
        await eventually(lambda: _unsupported(api, cp))
        assert await _unsupported(api, cp) == [
            ("CostUpdated", "device_model", "TariffCostCtrlr: UnknownComponent")
        ]
        for _ in range(2):  # two sessions
            tx = await start_tx(api.csms, cp, True)
            assert await _rounds(billing, 3) == 0
            await stop_tx(api.csms, cp, True, tx)
        assert ch.costs_received == []
        charger = (await api.reader.get(f"/chargers/{cp}")).json()
        assert [a["action"] for a in charger["unsupported_actions"]] == ["CostUpdated"]
        assert charger["charging_rate_units"]["units"] == ["A", "W"]


async def test_a_station_answering_not_implemented_gets_it_once_then_never(api: Api) -> None:
    billing = await _billing(api)
    # Its device model claims a cost display, its firmware answers NotImplemented.
    async with running(api.csms, v201=True, cost_updates=True) as (_, ch, cp):
        assert isinstance(ch, V201Charger)
        await eventually(
            lambda: api.csms.pool.fetchval(
                "SELECT units FROM charger_rate_units WHERE charge_point_id = $1", cp
            )
        )  # the boot probe is done (and found nothing against CostUpdated)
        assert await _unsupported(api, cp) == []
        ch.cfg.cost_updates = False
        tx = await start_tx(api.csms, cp, True)
        assert await _rounds(billing, 3) == 0
        assert [t for _, t in ch.costs_received] == [tx]  # once in this session
        assert await _unsupported(api, cp) == [("CostUpdated", "call_error", "NotImplemented")]
        await stop_tx(api.csms, cp, True, tx)
        tx2 = await start_tx(api.csms, cp, True)
        assert await _rounds(billing, 3) == 0
        assert len(ch.costs_received) == 1  # not at all in the next session
        # An operator gives it another chance: tried once more, refused, learned again.
        url = f"/chargers/{cp}/unsupported-actions/CostUpdated"
        assert (await api.reader.delete(url)).status_code == 403
        assert (await api.operator.delete(url)).status_code == 204
        assert (await api.operator.delete(url)).status_code == 404
        assert await _rounds(billing, 3) == 0
        assert [t for _, t in ch.costs_received] == [tx, tx2]
        await stop_tx(api.csms, cp, True, tx2)
    charger = (await api.reader.get(f"/chargers/{cp}")).json()  # kept after it left
    [unsupported] = charger["unsupported_actions"]
    assert unsupported["action"] == "CostUpdated" and unsupported["detail"] == "NotImplemented"
    assert unsupported["firmware_version"] == "1.0.0"


async def test_a_station_with_a_cost_display_keeps_getting_it(api: Api) -> None:
    billing = await _billing(api)
    async with running(api.csms, v201=True, cost_updates=True) as (_, ch, cp):
        assert isinstance(ch, V201Charger)
        tx = await start_tx(api.csms, cp, True)
        assert await _rounds(billing, 3) == 3
        assert [t for _, t in ch.costs_received] == [tx, tx, tx]
        assert await _unsupported(api, cp) == []


async def test_other_firmware_gets_a_fresh_chance(api: Api) -> None:
    pool = api.csms.pool
    await pool.execute(
        "INSERT INTO chargers (charge_point_id, firmware_version) VALUES ('CP-FW', '1.0')"
    )
    assert await interop.record_unsupported(pool, "CP-FW", "CostUpdated", "call_error", "x")
    assert not await interop.record_unsupported(pool, "CP-FW", "CostUpdated", "call_error", "y")
    # What the charger did is not overwritten by what its device model says.
    await interop.record_unsupported(pool, "CP-FW", "CostUpdated", "device_model", "z")
    assert [r["detail"] for r in await interop.unsupported_actions(pool, "CP-FW")] == ["y"]
    assert await interop.forget_other_firmware(pool, "CP-FW", "1.0") == 0
    assert await interop.forget_other_firmware(pool, "CP-FW", "1.1") == 1
    assert await interop.unsupported_actions(pool, "CP-FW") == []
    # Unknown chargers are not recorded (no row to hang it on).
    assert not await interop.record_unsupported(pool, "NOBODY", "CostUpdated", "call_error", "x")
