"""Billing inside the CSMS process: CDRs at session end, catch-up, running cost to chargers.

* At session end -- once the SessionEnded committed, before the charger is
  answered (a :data:`csms.central.SessionEndHook`) -- the session is priced, its
  CDR stored and a ``cdr_created`` event appended (one statement), so the CDR
  stands before the 2.0.1 answer that carries its cost, and reaches Kafka's
  charging-sessions topic after the end. If pricing fails, the end stays stored
  (csms.central logs the failure): a billing failure never stops a charger's
  session from being recorded; the sweeper prices it later, and a resent end
  prices it before its answer.
* The sweeper prices ended sessions that have no CDR (billing was off, or
  pricing failed) every ``billing_sweep_interval`` seconds.
* Every ``billing_cost_update_interval`` seconds, each connected 2.0.1 charger
  with a running session gets CostUpdated with the session's running total --
  unless it is known not to take it (it answered NotImplemented/NotSupported, or
  its device model lacks an enabled TariffCostCtrlr; see :mod:`csms.interop`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import asyncpg
import ocpp.v201.call
import structlog
from fastapi import APIRouter

from billing import cdrs
from billing.cdr_inputs import read_running
from billing.events import CdrCreated
from csms.central import SessionCost, SessionPriced
from csms.cluster.leases import Lease, run_while_leader
from csms.connection import CallErrorReceived
from csms.events import Protocol, SessionEnded
from csms.storage import Executor

if TYPE_CHECKING:
    from csms.services import ServiceContext

log = structlog.get_logger(__name__)

_SWEEP_BATCH = 100
# A sweep reads the sessions changed since the previous one began, less this much: a
# session's updated_at is its transaction's start, which may commit a while later.
SWEEP_OVERLAP = timedelta(hours=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


class BillingService:
    name = "billing"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self._tasks: list[asyncio.Task[None]] = []
        # Where the next sweep starts (database time); None: the whole history, as the
        # first sweep of this process does. Sessions that failed are retried every sweep.
        self._swept_since: datetime | None = None
        self._failing: set[int] = set()

    @property
    def default_currency(self) -> str:
        return self.context.settings.billing_default_currency

    @property
    def max_power_w(self) -> Decimal:
        return Decimal(repr(self.context.settings.billing_max_power_w))

    def api_routers(self) -> Sequence[APIRouter]:
        from billing.api import build_router  # the API imports this module's types

        return [build_router(self)]

    async def start(self) -> None:
        self.context.central.session_end_hooks.append(self.on_session_end)
        self.context.central.session_cost_readers.append(cdrs.session_cost)
        settings = self.context.settings
        if settings.billing_sweep_interval > 0:  # once per cluster: the lease holder sweeps

            async def sweep_while_leader(lease: Lease) -> None:
                await self._every(settings.billing_sweep_interval, self.sweep)

            leases = self.context.leases
            self._tasks.append(
                asyncio.create_task(run_while_leader(leases, "billing.sweeper", sweep_while_leader))
            )
        if settings.billing_cost_update_interval > 0:
            self._tasks.append(
                asyncio.create_task(
                    self._every(settings.billing_cost_update_interval, self.send_cost_updates)
                )
            )

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.context.central.session_end_hooks.remove(self.on_session_end)
            self.context.central.session_cost_readers.remove(cdrs.session_cost)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- CDRs ----------------------------------------------------------------------

    async def on_session_end(
        self, conn: Executor, session_id: int, event: SessionEnded
    ) -> SessionPriced | None:
        """Price the ended session and store its CDR (after the end committed); its cost
        for the charger's answer (None: a CDR stands already, the answer reads it).

        Two round trips on ``conn`` (no transaction): the read, then the CDR with its
        event in one statement (a CDR made meanwhile by the sweeper wins; the answer
        then reads it). If this fails the end is stored all the same; the sweeper
        prices it later.
        """
        assert not isinstance(conn, asyncpg.Pool), "called with a connection"
        created = await self._create_cdr(conn, session_id)
        if created is None:
            return None
        if created.tariff_id is None:
            return SessionPriced(None)  # no tariff: the answer carries no cost
        # OCPP's totalCost is a JSON number (a decimal in the CDR).
        return SessionPriced(SessionCost(float(Decimal(created.total_cost)), created.currency))

    async def _create_cdr(self, conn: Executor, session_id: int) -> CdrCreated | None:
        """The CDR and its ``cdr_created`` event (written together by create_cdr)."""
        created = await cdrs.create_cdr(
            conn, session_id, utcnow(), self.default_currency, self.max_power_w
        )
        if created is not None:
            log.info("billing.cdr_created", cdr_id=created.cdr_id, total=created.total_cost,
                     currency=created.currency, flags=created.flags)  # fmt: skip
        return created

    async def sweep(self) -> int:
        """Create the CDRs ended sessions are missing; return how many were tried.

        One transaction per session; one that fails again is logged and skipped
        (it is retried on the next sweep, never blocking the ones after it).
        The first sweep of a process reads the whole history once; later ones only
        the sessions changed since the previous began (docs/database.md).
        """
        pool = self.context.pool
        began: datetime = await pool.fetchval("SELECT now()")
        since = self._swept_since or datetime.min.replace(tzinfo=UTC)
        tried: set[int] = set()
        failing: set[int] = set()
        after = None
        while missing := await cdrs.sessions_without_cdr(pool, since, after, _SWEEP_BATCH):
            ids = [session_id for _, session_id in missing]
            failing.update(await self._create_cdrs(ids))
            tried.update(ids)
            after = missing[-1]
        retry = sorted(self._failing - tried)  # failed before and not changed since
        failing.update(await self._create_cdrs(retry))
        self._failing = failing
        self._swept_since = began - SWEEP_OVERLAP
        return len(tried) + len(retry)

    async def _create_cdrs(self, session_ids: Sequence[int]) -> set[int]:
        """One transaction per session; the ids that failed."""
        failed = set()
        for session_id in session_ids:
            try:
                async with self.context.pool.acquire() as conn, conn.transaction():
                    await self._create_cdr(conn, session_id)
            except Exception:
                log.exception("billing.cdr_failed", session_id=session_id)
                failed.add(session_id)
        return failed

    # -- running cost --------------------------------------------------------------

    async def running_cost(self, session_id: int) -> dict[str, object] | None:
        """The priced session so far (its CDR once it has ended); None if unknown."""
        async with self.context.pool.acquire() as conn:
            cdr = await cdrs.cdr_of_session(conn, session_id)
            if cdr is not None:
                return {"session_id": session_id, "status": "ended", "cdr_id": cdr["id"],
                        **{k: cdr[k] for k in _COST_KEYS}}  # fmt: skip
            now = utcnow()
            inputs = await read_running(conn, session_id, now)  # one read, not six
            if inputs is None:
                return None
        chosen = inputs.chosen
        priced = cdrs.price_inputs(inputs, now, self.default_currency, self.max_power_w)
        data = cdrs.priced_json(priced)
        return {"session_id": session_id, "status": inputs.session.status, "as_of": now,
                "tariff_id": chosen.stored.id if chosen else None,
                **{k: data[k] for k in _COST_KEYS}}  # fmt: skip

    async def send_cost_updates(self) -> int:
        """CostUpdated to every connected 2.0.1 charger with a running session that takes it."""
        connected = [c.id for c in self.context.registry.all() if c.protocol is Protocol.V201]
        if not connected:
            return 0
        rows = await self._cost_update_targets(connected)
        sent, refused = 0, set[str]()
        for row in rows:
            cp = row["charge_point_id"]
            if cp in refused:
                continue
            cost = await self.running_cost(row["id"])
            if cost is None:
                continue
            total = float(Decimal(str(cost["total_cost"])))  # OCPP's totalCost is a JSON number
            try:
                await self.context.router.call(
                    cp, ocpp.v201.call.CostUpdated(total_cost=total,
                                                   transaction_id=row["transaction_id"]),
                )  # fmt: skip
                sent += 1
            except CallErrorReceived as error:
                if error.code in _UNSUPPORTED:  # recorded per charger: not sent again
                    refused.add(cp)
                log.warning("billing.cost_update_refused", charge_point_id=cp, code=error.code)
            except Exception as error:  # the charger may be gone or busy; try next time
                log.info("billing.cost_update_failed", charge_point_id=cp, error=repr(error))
        return sent

    async def _cost_update_targets(self, connected: list[str]) -> list[asyncpg.Record]:
        """Running 2.0.1 sessions of ``connected`` chargers not known to refuse CostUpdated.

        A charger that answered CostUpdated with NotImplemented/NotSupported, or whose
        device model has no (enabled) TariffCostCtrlr, is listed in
        ``charger_unsupported_actions`` (csms.interop) and left out.
        """
        return await self.context.pool.fetch(
            """
            SELECT s.id, s.charge_point_id, s.transaction_id FROM sessions s
            WHERE s.status = 'active' AND s.protocol = $1
              AND s.charge_point_id = ANY($2::text[])
              AND NOT EXISTS (
                  SELECT 1 FROM charger_unsupported_actions u
                  WHERE u.charge_point_id = s.charge_point_id AND u.action = 'CostUpdated')
            ORDER BY s.id
            """,
            Protocol.V201.value,
            connected,
        )

    async def _every(self, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception("billing.job_failed", job=getattr(job, "__name__", "?"))


_UNSUPPORTED = frozenset({"NotImplemented", "NotSupported"})

_COST_KEYS = (
    "currency",
    "total_energy_wh",
    "energy_by_period",
    "charging_seconds",
    "parking_seconds",
    "items",
    "total_net",
    "total_tax",
    "total_cost",
    "flags",
)
