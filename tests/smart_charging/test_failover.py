"""Two CSMS nodes on one database: the site's planner dies mid-plan, the other takes over.

Real CSMS nodes (two in this process, one Postgres), simulated chargers. The
planner is killed right after a charger accepted the first decrease of a plan
whose increase is still to come; the chargers reconnect to the surviving node,
which takes the site's lease, resumes from what the dead node stored and
finishes the plan. The summed current the chargers report stays under the
site limit at every stored sample, before, during and after the failover.

Placement: every charger connects to the planner's node first and to the other
node after the kill (as a load balancer would send them), so this test does
not depend on commands crossing nodes; with cross-node command routing the
planner also steers chargers connected elsewhere (``SmartChargingService.protocol_of``
reads presence from Postgres).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from charge_point_sim import Fleet, FleetConfig
from charge_point_sim.ev import EVSpec, EVState
from charge_point_sim.profiles import Profile, Purpose
from csms.storage import api_keys
from smart_charging.leadership import lease_name
from smart_charging.service import SmartChargingService
from tests.conftest import RunningCsms, StartCsms
from tests.smart_charging.support import line_sums, watch_profiles
from tests.waiting import eventually

SITE_LIMIT = 48.0  # A per line: six 16 A sessions would need 96 A
CHARGERS = 6
SPEED = 30.0
SETTINGS: dict[str, Any] = {
    "response_timeout": 2.0,
    "smart_charging_settle": 0.5,
    "smart_charging_call_timeout": 2.0,
    "smart_charging_interval": 5.0,
    "smart_charging_lease_interval": 0.3,
}


@dataclasses.dataclass
class Node:
    csms: RunningCsms
    api: httpx.AsyncClient

    @property
    def service(self) -> SmartChargingService:
        return next(s for s in self.csms.app.services if isinstance(s, SmartChargingService))

    @property
    def node_id(self) -> str:
        return self.csms.app.node_id


@pytest.fixture
async def nodes(start_csms: StartCsms) -> AsyncIterator[list[Node]]:
    out = []
    async with contextlib.AsyncExitStack() as stack:
        for i in range(2):
            csms = await start_csms(**SETTINGS, node_id=f"node-{i}")
            _, key = await api_keys.create(csms.pool, f"ops-{len(out)}", "operator")
            base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"})
            )
            out.append(Node(csms, client))
        yield out


async def _planner(nodes: list[Node], site_id: str) -> Node | None:
    holder = await nodes[0].csms.pool.fetchval(
        "SELECT holder FROM cluster_leases WHERE name = $1", lease_name(site_id)
    )
    planners = [n for n in nodes if n.node_id == holder and n.service.leadership.holds(site_id)]
    return planners[0] if planners else None


async def _crash(node: Node) -> None:
    """Stop a node in the middle of whatever it does: its plan is cancelled mid-way."""
    service = node.service
    node.csms.app.services.remove(service)
    await service.stop()  # cancels the running plan; its lease goes with it, as with kill -9
    await node.csms.app.stop()


async def test_the_planner_dies_mid_plan_and_the_other_node_finishes_it_under_the_limit(
    nodes: list[Node],
) -> None:
    first, _ = nodes
    await first.csms.add_token("FLEET")
    answer = await first.api.post("/sites", json={"site_id": "depot", "phase_limit_a": SITE_LIMIT})
    assert answer.status_code == 201, answer.text
    planner = await eventually(lambda: _planner(nodes, "depot"), within=10)
    survivor = next(n for n in nodes if n is not planner)
    # Exactly one planner: the other node holds no lease on the site.
    assert not survivor.service.leadership.holds("depot")

    fleet = Fleet(
        FleetConfig(
            url=planner.csms.ocpp_url, chargers=CHARGERS, v201_share=0.5, connectors=1,
            speed=SPEED, arrival_rate=0.0, meter_interval=10, id_tags=["FLEET"], seed=11,
        )
    )  # fmt: skip
    for charger in fleet.chargers:
        charger.cfg.reconnect_base, charger.cfg.reconnect_max = 0.1, 0.5
    await fleet.start()
    try:
        assert await fleet.wait_online()
        for charger in fleet.chargers:
            place = {"site_id": "depot", "max_current_a": 16}
            answer = await survivor.api.put(f"/chargers/{charger.cfg.charger_id}/site", json=place)
            assert answer.status_code == 200, answer.text  # any node's API, one planner
        for charger in fleet.chargers:
            spec = EVSpec(capacity_kwh=80.0, max_ac_kw=11.0, phases=3)
            assert await charger.start_session(1, "FLEET", EVState(spec, soc=10.0)) is not None

        async def shared() -> bool:
            load = (await survivor.api.get("/sites/depot/load")).json()  # stored by the planner
            limits = [s["limit_a"] or 0.0 for s in load.get("sessions", [])]
            return len(limits) == CHARGERS and all(a >= 7.9 for a in limits)

        await eventually(shared, within=20)

        # From now on a charger that loses its node reconnects to the other one.
        for charger in fleet.chargers:
            charger.cfg.url = survivor.csms.ocpp_url
        crashed = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        seen: list[tuple[str, str, float]] = []

        def on_profile(charger_id: str, status: str, profile: Profile) -> None:
            limit = profile.periods[0].limit if profile.periods else -1.0
            seen.append((charger_id, str(profile.purpose), limit))
            if profile.purpose is Purpose.TX and status == "Accepted" and limit < 7.9:
                if not crashed.is_set():  # the first decrease of the plan below
                    crashed.set()
                    tasks.append(asyncio.get_running_loop().create_task(_crash(planner)))

        watch_profiles(fleet, on_profile)
        # A fleet vehicle gets priority: everyone else goes down first, then it goes up.
        vip = fleet.chargers[0]
        session = vip.connectors[1].session
        assert session is not None and session.transaction_id is not None
        answer = await survivor.api.put(
            f"/chargers/{vip.cfg.charger_id}/transactions/{session.transaction_id}/preferences",
            json={"priority": 10},
        )
        assert answer.status_code == 200, answer.text
        await asyncio.wait_for(crashed.wait(), 20)
        await asyncio.gather(*tasks)

        # The survivor takes the site over and finishes the plan: the VIP gets its 16 A.
        async def taken_over() -> bool:
            return await _planner([survivor], "depot") is survivor

        await eventually(taken_over, within=15)

        async def vip_served() -> bool:
            load = (await survivor.api.get("/sites/depot/load")).json()
            vip_limit = [
                s["limit_a"] for s in load["sessions"] if s["charge_point_id"] == vip.cfg.charger_id
            ]
            return load.get("planner") == survivor.node_id and vip_limit == [16.0]

        await eventually(vip_served, within=20)
        await asyncio.sleep(1.0)  # a few more samples at the final allocation

        sums = await line_sums(survivor.csms.pool)
        assert len(sums) > 50
        for s in sums:
            assert max(s["L1"], s["L2"], s["L3"]) <= SITE_LIMIT + 0.5, s
        # What the new planner resumed from: one row per active session, none pending.
        rows = await survivor.csms.pool.fetch("SELECT * FROM sc_session_limits")
        assert len(rows) == CHARGERS and all(r["pending_a"] is None for r in rows)
        assert sum(r["limit_a"] for r in rows) <= SITE_LIMIT + 1e-6
    finally:
        await fleet.stop()


async def test_a_change_through_the_other_nodes_api_is_planned_at_once_by_the_planner(
    start_csms: StartCsms,
) -> None:
    """The API of a node that does not plan the site passes the re-plan on (NOTIFY)."""
    quiet = {**SETTINGS, "smart_charging_interval": 3600.0}  # no periodic plan to rely on
    nodes = []
    for i in range(2):
        csms = await start_csms(**quiet, node_id=f"node-{i}")
        _, key = await api_keys.create(csms.pool, f"ops-{i}", "operator")
        base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
        nodes.append(
            Node(csms, httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}))
        )
    try:
        answer = await nodes[0].api.post("/sites", json={"site_id": "s", "phase_limit_a": 100})
        assert answer.status_code == 201
        planner = await eventually(lambda: _planner(nodes, "s"), within=10)
        other = next(n for n in nodes if n is not planner)
        answer = await other.api.post("/sites/s/demand-response", json={"limit_a": 40})
        assert answer.status_code == 200, answer.text

        async def planned_with_the_cut() -> bool:
            load = (await other.api.get("/sites/s/load")).json()
            return load.get("limit_a") == 40 and load.get("planner") == planner.node_id

        await eventually(planned_with_the_cut, within=10)
        assert not other.service.leadership.holds("s")
    finally:
        for node in nodes:
            await node.api.aclose()
