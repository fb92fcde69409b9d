"""Subsystems that run inside a CSMS process beside the charger server.

Smart charging, billing, monitoring and the dashboard are each one
:class:`Service`: built from a :class:`ServiceContext` (the pool, the command
router, settings, the event bus of committed events), started after the
database is ready and before the first charger is accepted (so no committed
event is missed), stopped after the charger server has closed, and free to
contribute routes to the operator API (their endpoints close over the service,
so an API call can reach it, e.g. to re-plan a site at once).

:func:`build_services` is the one list of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from fastapi import APIRouter

from billing.service import BillingService
from csms.bus import EventBus
from csms.central import CentralSystem
from csms.certificates.service import CertificateService
from csms.clock import SYSTEM_CLOCK, Clock
from csms.cluster.leases import LeaseManager
from csms.config import Settings
from csms.dashboard import DashboardService
from csms.firmware_campaigns import FirmwareCampaignService
from csms.interop.service import InteropService
from csms.monitoring.alerts_service import AlertService
from csms.monitoring.live_service import LiveMonitoringService
from csms.router import CommandRouter, ConnectionRegistry
from csms.transaction_status import TransactionStatusService


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """What a service may use of the CSMS process."""

    pool: asyncpg.Pool
    router: CommandRouter  # every command to a charger goes through it
    registry: ConnectionRegistry  # who is connected here (read-only use)
    settings: Settings
    bus: EventBus  # every node's committed events, in order per charger
    central: CentralSystem  # handles what chargers send; hooks into its transactions
    leases: LeaseManager  # once-per-cluster work: run it while holding a named lease
    node_id: str  # this process in the cluster
    dsn: str  # the database, for connections of a service's own (LISTEN)
    # Time for time-based decisions (csms/clock.py): the system clock, or a benchmark's
    # accelerated simulated clock.
    clock: Clock = SYSTEM_CLOCK


class Service(Protocol):
    """One subsystem; ``start`` and ``stop`` are called once each."""

    name: str

    def api_routers(self) -> Sequence[APIRouter]:
        """Routes this service adds to the operator API (may be empty)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_services(context: ServiceContext) -> list[Service]:
    """Every service of a CSMS process, in start order (stopped in reverse)."""
    services: list[Service] = []
    services.append(InteropService(context))  # what each charger supports (rate units, actions)
    services.append(BillingService(context))  # tariffs, CDRs at session end, running cost
    services.append(LiveMonitoringService(context))  # metrics, connectivity, stream, webhooks
    services.append(DashboardService(context))  # serves / on the API port; analytics rollup
    services.append(AlertService(context))  # fault detection: rules, alerts, health
    services.append(CertificateService(context))  # CertificateSigned delivery, renewal
    services.append(TransactionStatusService(context))  # E14 after seqNo gaps, reconnects
    services.append(FirmwareCampaignService(context))  # one firmware, many chargers
    from smart_charging.service import SmartChargingService  # it imports this module

    services.append(SmartChargingService(context))  # site limits via SetChargingProfile
    return services
