"""Sending TxProfiles and recording them: what a plan tells each session, fenced and acknowledged.

Every limit is stored as *pending* before it is sent (fenced by the site's lease
token, so a node that lost the site cannot commit and so does not send), sent,
and reduced to a status; what the charger accepted becomes the session's
limit, anything else makes the session uncontrolled at the higher of the two
limits. After a failover or a refusal, :meth:`ProfileSender.reattach` offers an
uncontrolled session exactly the load the plan set aside for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import asyncpg

from csms.cluster.leases import lease_is_current
from csms.connection import CallErrorReceived
from csms.events import Protocol
from csms.interop.profiles import carries_profile, fit_for_charger, fit_profile
from csms.router import ChargerNotConnected, WrongProtocolVersion
from csms.storage import Executor
from smart_charging import planner_state, profiles
from smart_charging.allocation import NOMINAL_VOLTAGE
from smart_charging.leadership import lease_name
from smart_charging.planner_state import Told
from smart_charging.reporting import ProfileSend, SiteView
from smart_charging.session_sync import hardware_max
from smart_charging.tracking import Tracked

if TYPE_CHECKING:
    from smart_charging.model import SiteTree
    from smart_charging.service import SmartChargingService


class PlannerLost(RuntimeError):
    """This node no longer holds the site's lease: it must not send anything more."""


def is_decrease(send: ProfileSend) -> bool:
    """Sent in the first round: a lower limit, or a first or re-confirming one not higher.

    For an unconfirmed session (resumed from a previous planner) the charger may enforce
    anything between ``floor_limit`` and ``limit``: only a limit at or below the floor is
    sure not to raise its draw.
    """
    t = send.tracked
    if send.previous is None:
        return True
    if not t.confirmed:
        floor = t.floor_limit if t.floor_limit is not None else send.previous
        return send.limit <= floor
    return send.limit < send.previous


def first_step(send: ProfileSend) -> ProfileSend | None:
    """For an unconfirmed session whose new limit may be an increase: the floor first.

    Its draw may be anywhere between the floor and the worst case; sending the new limit
    at once could raise it while others are still coming down, and waiting could leave it
    above its share. So it gets the floor (never an increase) with the decreases, and its
    new limit with the increases, after the settle time.
    """
    t = send.tracked
    if t.confirmed or is_decrease(send) or t.floor_limit is None:
        return None
    return ProfileSend(t, t.floor_limit, t.limit, send.protocol)


class ProfileSender:
    """Stores, sends and acknowledges the profiles of one node's plans."""

    def __init__(self, service: SmartChargingService) -> None:
        self.service = service
        self.settings = service.settings
        self.pool = service.pool
        self.clock = service.clock
        # The rate units of the chargers of the site being planned (read with the plan).
        self.units: dict[str, frozenset[str] | None] = {}

    async def fenced(self, conn: Executor, site_id: str) -> None:
        """Raise :class:`PlannerLost` unless this node still holds the site's lease (for
        writes of their own transaction, as the failsafe profiles')."""
        fence = self.fence(site_id)
        if fence is not None and not await lease_is_current(
            cast(asyncpg.Connection, conn), fence.lease, fence.token
        ):
            raise PlannerLost(site_id)

    def fence(self, site_id: str) -> planner_state.Fence | None:
        """The lease a write for ``site_id`` must still hold (None: single node, no lease);
        raise :class:`PlannerLost` if this node knows it no longer plans the site."""
        svc = self.service
        if not svc.leadership.holds(site_id):
            raise PlannerLost(site_id)
        lease = svc.leadership.lease(site_id)
        return planner_state.Fence(lease_name(site_id), lease.token) if lease else None

    async def _commit(
        self,
        site_id: str,
        rows: Sequence[tuple[Tracked, Told]],
        *,
        active: Sequence[tuple[str, int, str]] | None = None,
        decreased: bool = False,
        view: SiteView | None = None,
        durable: bool = True,
    ) -> None:
        """One fenced statement (:func:`smart_charging.planner_state.commit`)."""
        fence = self.fence(site_id)
        async with self.pool.acquire() as conn:
            ok = await planner_state.commit(
                conn,
                site_id,
                fence,
                self.service.node_id,
                [told for _, told in rows],
                active=active,
                decreased=decreased,
                view=view.as_dict() if view is not None else None,
                durable=durable,
            )
        if not ok:
            raise PlannerLost(site_id)
        for tracked, told in rows:
            tracked.saved = told

    async def commit_intent(
        self, site_id: str, sends: Sequence[ProfileSend], mark_decrease: bool
    ) -> None:
        """Store the limits about to be sent as pending, before they are sent."""
        if not sends and not mark_decrease:
            return
        rows = [
            (
                s.tracked,
                Told(
                    s.tracked.charge_point_id,
                    s.tracked.evse_id,
                    s.tracked.transaction_id,
                    s.tracked.phases,
                    s.tracked.limit,
                    pending_a=s.limit,
                    assumed_a=s.tracked.assumed,
                ),
            )
            for s in sends
        ]
        await self._commit(site_id, rows, decreased=mark_decrease)

    async def commit_state(
        self, site_id: str, live: dict[str, Tracked], view: SiteView, decreased: bool
    ) -> None:
        """Store what every session of the site has now, and the view of the plan.

        Only the sessions whose row differs from what this planner last stored are
        written (most of a plan's sessions keep their limit). It does not wait for the
        WAL flush unless it records a decrease: lost in a database crash, it leaves the
        intent (pending limits, stored durably before anything was sent), from which the
        next planner assumes the worst case - as after any crash.
        """
        rows = []
        for t in live.values():
            told = Told(
                t.charge_point_id, t.evse_id, t.transaction_id, t.phases, t.limit, None, t.assumed
            )
            if t.saved != told:
                rows.append((t, told))
        active = [(t.charge_point_id, t.evse_id, t.transaction_id) for t in live.values()]
        await self._commit(
            site_id, rows, active=active, decreased=decreased, view=view, durable=decreased
        )

    async def send_all(self, sends: Sequence[ProfileSend]) -> list[str]:
        return list(await asyncio.gather(*(self.send(s) for s in sends)))

    async def send(self, s: ProfileSend) -> str:
        """Send one TxProfile; on anything but Accepted the session becomes uncontrolled."""
        t = s.tracked
        payload = profiles.tx_profile(s.protocol, t.evse_id, t.transaction_id, s.limit, t.phases)
        status = await self.call(t.charge_point_id, payload)
        if status == "Accepted":
            t.limit, t.assumed, t.changed_at = s.limit, None, self.clock.monotonic()
            t.changed_on = self.clock.now()
            t.confirmed, t.floor_limit = True, None
            if t.probing:  # look at what the EV says once it has had time to follow
                site_id = await self.service.site_of(t.charge_point_id)
                if site_id is not None:
                    self.service.replan_after(site_id, self.service.settle_grace, "probe_check")
        else:
            # Rejected: it keeps its old limit; unanswered: it may have taken the new one.
            t.assumed = max(s.limit, t.last_known_max(s.previous or 0.0))
        return status

    async def call(self, charge_point_id: str, payload: Any) -> str:
        # Profiles are planned in A; a W-only charger gets them in W (at the model's voltage).
        if charge_point_id in self.units and carries_profile(payload):
            # Read for the whole site with the plan (not one query per profile).
            units = self.units[charge_point_id]
            payload = fit_profile(payload, units, datetime.now(UTC), NOMINAL_VOLTAGE)
        else:
            payload = await fit_for_charger(
                self.service.pool, charge_point_id, payload, NOMINAL_VOLTAGE
            )
        try:
            answer = await asyncio.wait_for(
                self.service.context.router.call(charge_point_id, payload),
                self.settings.smart_charging_call_timeout,
            )
        except TimeoutError:
            return "NoAnswer"
        except ChargerNotConnected:
            return "Offline"
        except (CallErrorReceived, WrongProtocolVersion):
            return "Error"
        return str(getattr(answer, "status", "Error"))

    async def reattach(
        self, tree: SiteTree, tracked: dict[str, Tracked], reserved: dict[str, float]
    ) -> list[tuple[ProfileSend, str]]:
        """Offer uncontrolled sessions of online chargers exactly the load the plan set aside.

        Only sessions the last plan set aside (``reserved``) and still uncontrolled at that
        value: one found overdrawing while the plan was sent was not set aside yet.
        """
        svc = self.service
        sends = []
        for key, t in tracked.items():
            protocol: Protocol | None = svc.protocol_of(t.charge_point_id)
            if key not in reserved or t.assumed != reserved[key] or protocol is None:
                continue
            hardware = hardware_max(tree, t.charge_point_id)
            if t.measured is not None and max(t.measured) > t.assumed + 0.5:
                continue  # it does not keep to what it is given: leave it set aside
            target = min(t.assumed, hardware)
            if t.floor_limit is not None:
                # Resumed from a previous planner: the worst case set aside for it may be
                # more than it was really allowed (the set-aside loads of a site taken over
                # can add up to more than its limit); the lowest limit it may be enforcing
                # can only lower its draw. The re-plan that follows raises it, increases last.
                target = min(target, t.floor_limit)
            sends.append(ProfileSend(t, target, t.assumed, protocol))
        site_id = tree.site.site_id
        await self.commit_intent(site_id, sends, mark_decrease=False)
        results = await self.send_all(sends)
        return list(zip(sends, results, strict=True))
