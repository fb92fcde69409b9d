"""The profiles a charger falls back on without the CSMS, sent when it (re)boots or joins a site.

Two, see :mod:`smart_charging.profiles`: the ChargePointMaxProfile (2.0.1
ChargingStationMaxProfile) at the charger's configured ``max_current_a``, so
it never goes above its hardware ceiling whatever it was told last, and the
TxDefaultProfile at the charger's failsafe share of the site
(:mod:`smart_charging.failsafe`; or the site's fixed ``fallback_current_a``) for
sessions the load manager has not planned yet and for every session started
while the CSMS is unreachable. Each is sent until the charger accepts it (a
refusal is retried with the periodic plan) and again after a reboot.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from csms.events import Protocol
from csms.storage import event_log
from smart_charging import profiles
from smart_charging.events import ChargingLimitSet
from smart_charging.failsafe import failsafe_shares
from smart_charging.model import ChargerPlace, SiteTree

if TYPE_CHECKING:
    from smart_charging.service import SmartChargingService


class FallbackProfiles:
    """What each charger accepted, and the sending of what it lacks."""

    def __init__(self, service: SmartChargingService) -> None:
        self.service = service
        self.defaults: dict[str, float] = {}  # charger -> TxDefault limit it accepted
        self.maxes: dict[str, float] = {}  # charger -> max-profile limit it accepted
        self.failed: dict[str, float] = {}  # charger -> when it last refused one (monotonic)
        self.shares: dict[str, float] = {}  # charger -> its TxDefault limit as last computed

    def limit_for(self, tree: SiteTree, charge_point_id: str) -> float:
        """The TxDefaultProfile limit ``charge_point_id`` should have (its failsafe share)."""
        if charge_point_id not in self.shares:
            self.shares.update(failsafe_shares(tree, self.service.clock.now()))
        return self.shares.get(charge_point_id, 0.0)

    def forget(self, charge_point_id: str, retry_now: bool = False) -> None:
        """The charger may have lost its profiles (offline, rebooted, moved): send them again."""
        self.defaults.pop(charge_point_id, None)
        self.maxes.pop(charge_point_id, None)
        if retry_now:
            self.failed.pop(charge_point_id, None)

    async def ensure(self, tree: SiteTree, reason: str) -> None:
        """Send the ChargePointMaxProfile and TxDefaultProfile to chargers that lack them."""
        shares = failsafe_shares(tree, self.service.clock.now())
        self.shares.update(shares)
        missing = [
            c
            for c in tree.chargers
            if (
                self.defaults.get(c.charge_point_id) != shares[c.charge_point_id]
                or self.maxes.get(c.charge_point_id) != c.max_current_a
            )
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
            limit = shares[cp]
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
            if protocol is not None and self.defaults.get(cp) != limit:
                payload = profiles.default_profile(protocol, limit, phases)
                status = await self.service.call(cp, payload)
                if status == "Accepted":
                    self.defaults[cp] = limit
                out.append(sent(cp, "TxDefaultProfile", limit, phases, status))
            if any(event.status != "Accepted" for event in out):
                self.failed[cp] = self.service.clock.monotonic()
            return out

        sends = await asyncio.gather(*(send(c) for c in missing))
        events = [event for events_of_one in sends for event in events_of_one]
        if events:
            async with self.service.pool.acquire() as conn, conn.transaction():
                for event in events:
                    await event_log.append(conn, event)
