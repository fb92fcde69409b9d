"""The profiles a charger falls back on without the CSMS.

Two, see :mod:`smart_charging.profiles`: the ChargePointMaxProfile (2.0.1
ChargingStationMaxProfile) at the charger's configured ``max_current_a``, so
it never goes above its hardware ceiling whatever it was told last - sent
when it (re)boots or joins a site, until it accepts it (a refusal is retried
with the periodic plan) - and the TxDefaultProfile, which every session the
load manager has not planned yet, and every session started while the CSMS is
unreachable, draws. Its limit is planned with the sessions
(:mod:`smart_charging.arrivals`): at most the charger's failsafe share of the
site (:mod:`smart_charging.failsafe`), lowered to what the sessions leave.

``defaults`` holds, per charger, the highest TxDefault limit it may apply now:
the one it accepted, or a raise sent and not answered. It survives a
disconnection (the charger applies it offline) and is forgotten when the
charger (re)connects or reboots (it may have lost its profiles; the next plan
sends one). It is stored in ``sc_fallback_state`` - a raise *before* it is sent
- so a planner that takes the site over knows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from csms.events import Protocol
from csms.storage import Executor, event_log
from smart_charging import planner_state, profiles
from smart_charging.arrivals import DefaultChange
from smart_charging.events import ChargingLimitSet
from smart_charging.failsafe import failsafe_shares
from smart_charging.model import ChargerPlace, SiteTree

if TYPE_CHECKING:
    from smart_charging.service import SmartChargingService


class FallbackProfiles:
    """What each charger accepted, and the sending of what it lacks."""

    def __init__(self, service: SmartChargingService) -> None:
        self.service = service
        self.defaults: dict[str, float] = {}  # charger -> highest TxDefault it may apply
        self.maxes: dict[str, float] = {}  # charger -> max-profile limit it accepted
        self.failed: dict[str, float] = {}  # charger -> when it last refused one (monotonic)
        self.default_failed: dict[str, float] = {}  # charger -> its TxDefault refused (same)

    def ceilings(self, tree: SiteTree) -> dict[str, float]:
        """charger -> the most its TxDefaultProfile may be: its failsafe share."""
        return failsafe_shares(tree, self.service.clock.now())

    def steerable(self, charge_point_id: str) -> bool:
        """Whether its TxDefault can be changed now (online, and no refusal just now)."""
        svc = self.service
        since = svc.clock.monotonic() - self.default_failed.get(charge_point_id, -1e9)
        return (
            svc.protocol_of(charge_point_id) is not None
            and since > svc.settings.smart_charging_interval
        )

    def forget(self, charge_point_id: str, retry_now: bool = False) -> None:
        """The charger may have lost its profiles (rebooted, reconnected, moved): send again."""
        self.defaults.pop(charge_point_id, None)
        self.maxes.pop(charge_point_id, None)
        if retry_now:
            self.failed.pop(charge_point_id, None)
            self.default_failed.pop(charge_point_id, None)

    async def send_defaults(
        self, tree: SiteTree, changes: Sequence[DefaultChange], reason: str
    ) -> list[str]:
        """Send TxDefaultProfile limits; return each charger's answer (Accepted, ...).

        A raise is stored before it is sent (the charger may apply it and the answer be
        lost); a decrease once it is accepted. Anything but Accepted leaves the charger
        at the higher of the two and its TxDefault unsteerable until the periodic plan.
        """
        if not changes:
            return []
        raises: dict[str, float | None] = {
            c.charge_point_id: c.limit for c in changes if not c.is_decrease
        }
        if raises:
            async with self.service.pool.acquire() as conn, conn.transaction():
                # Fenced: a planner that lost the site must not raise anything more.
                await self.service.planning.sender.fenced(conn, tree.site.site_id)
                await self._save(conn, raises)

        async def send(change: DefaultChange) -> str:
            cp = change.charge_point_id
            protocol = self.service.protocol_of(cp)
            if protocol is None:
                return "Offline"
            payload = profiles.default_profile(protocol, change.limit, change.phases)
            return await self.service.call(cp, payload)

        statuses = list(await asyncio.gather(*(send(c) for c in changes)))
        now = self.service.clock.now()
        for change, status in zip(changes, statuses, strict=True):
            cp = change.charge_point_id
            if status == "Accepted":
                self.defaults[cp] = change.limit
            else:
                self.default_failed[cp] = self.service.clock.monotonic()
                if status != "Rejected":  # unanswered: it may have taken the new one
                    self.defaults[cp] = max(change.limit, change.previous or change.limit)
        events = [
            ChargingLimitSet(
                charge_point_id=c.charge_point_id,
                occurred_at=now,
                site_id=tree.site.site_id,
                evse_id=0,
                transaction_id=None,
                purpose="TxDefaultProfile",
                limit_a=c.limit,
                previous_limit_a=c.previous,
                phases=c.phases,
                status=status,
                reason=reason,
            )
            for c, status in zip(changes, statuses, strict=True)
        ]
        async with self.service.pool.acquire() as conn, conn.transaction():
            await self._save(conn, dict.fromkeys((c.charge_point_id for c in changes), None))
            for event in events:
                await event_log.append(conn, event)
        return statuses

    async def _save(self, conn: Executor, about_to_send: dict[str, float | None]) -> None:
        """Store what each charger may apply: ``defaults``, or a raise about to be sent."""
        rows: dict[str, tuple[float | None, float | None]] = {}
        for cp, raised in about_to_send.items():
            known = self.defaults.get(cp)
            value = known if raised is None else max(raised, known or raised)
            rows[cp] = (self.maxes.get(cp), value)
        await planner_state.save_fallbacks(conn, rows)

    async def ensure(self, tree: SiteTree, reason: str) -> None:
        """Send the ChargePointMaxProfile to chargers that lack it."""
        missing = [
            c
            for c in tree.chargers
            if self.maxes.get(c.charge_point_id) != c.max_current_a
            and self.service.protocol_of(c.charge_point_id) is not None
            and self.service.clock.monotonic() - self.failed.get(c.charge_point_id, -1e9)
            > self.service.settings.smart_charging_interval  # retried with the periodic plan
        ]

        def sent(
            cp: str, purpose: str, limit_a: float, phases: int, status: str
        ) -> ChargingLimitSet:
            return ChargingLimitSet(
                charge_point_id=cp,
                occurred_at=self.service.clock.now(),
                site_id=tree.site.site_id,
                evse_id=0,
                transaction_id=None,
                purpose=purpose,
                limit_a=limit_a,
                previous_limit_a=None,
                phases=phases,
                status=status,
                reason=reason,
            )

        async def send(place: ChargerPlace) -> list[ChargingLimitSet]:
            cp, phases, out = place.charge_point_id, place.phases, []
            protocol = self.service.protocol_of(cp)
            if protocol is not None and self.maxes.get(cp) != place.max_current_a:
                # The charger's own ceiling first: it holds even if the CSMS is lost later.
                payload = profiles.max_profile(
                    protocol, place.max_current_a, phases, self.service.clock.now()
                )
                status = await self.service.call(cp, payload)
                if status == "Accepted":
                    self.maxes[cp] = place.max_current_a
                purpose = "ChargePointMaxProfile"
                if protocol is not Protocol.V16:
                    purpose = "ChargingStationMaxProfile"
                out.append(sent(cp, purpose, place.max_current_a, phases, status))
            if any(event.status != "Accepted" for event in out):
                self.failed[cp] = self.service.clock.monotonic()
            return out

        sends = await asyncio.gather(*(send(c) for c in missing))
        events = [event for events_of_one in sends for event in events_of_one]
        if events:
            async with self.service.pool.acquire() as conn, conn.transaction():
                for event in events:
                    await event_log.append(conn, event)
