"""GetTransactionStatus (E14) when the CSMS may have missed transaction messages.

Two moments, both for 2.0.1 chargers: a TransactionEvent whose ``seqNo`` skips
one (a message was lost), and a reconnect while the CSMS still has
transactions open for the charger (messages may be queued at the charger, or
the transaction ended while it was offline). The charger's answer
(``ongoingIndicator``, ``messagesInQueue``) is stored with the reason it was
asked, as a ``charger_report_received`` of action GetTransactionStatus, so an
operator sees which sessions are stale. Commands go through the CommandRouter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter
from ocpp.v201 import call as call201

from csms.background import BackgroundTasks
from csms.bus import Subscription
from csms.cluster.feed import held_here
from csms.connection import CallErrorReceived, InvalidAnswer
from csms.events import (
    ChargerConnected,
    ChargerReportReceived,
    Protocol,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from csms.router import ChargerNotConnected

if TYPE_CHECKING:
    from csms.services import ServiceContext

log = structlog.get_logger(__name__)

_TYPES = (ChargerConnected.type, SessionStarted.type, SessionUpdated.type, SessionEnded.type)


def seq_gap(previous: int | None, seq_no: int) -> bool:
    """Whether ``seq_no`` skips one after ``previous`` (None: the first one seen)."""
    if previous is None:
        return seq_no > 0
    return seq_no > previous + 1


class TransactionStatusService:
    name = "transaction-status"

    def __init__(self, context: ServiceContext) -> None:
        self._context = context
        self._subscription: Subscription | None = None
        self._tasks = BackgroundTasks()  # the consumer and the questions it asks
        # Last seqNo seen per (charger, transaction) by this process; a transaction
        # first seen here (after a restart or a move between nodes) is checked
        # against the seqNos in the event log instead.
        self._last_seq: dict[tuple[str, str], int] = {}

    def api_routers(self) -> Sequence[APIRouter]:
        return ()

    async def start(self) -> None:
        # Only this node's chargers: another worker asks its own (not decoded here).
        wants = held_here(self._context.registry, *_TYPES)
        self._subscription = self._context.bus.subscribe(self.name, wants)
        self._tasks.spawn(self._run(self._subscription))

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        if self._subscription is not None:
            self._context.bus.unsubscribe(self._subscription)

    async def _run(self, subscription: Subscription) -> None:
        while True:
            event = await subscription.get()
            if self._context.registry.get(event.charge_point_id) is None:
                continue  # every node sees every node's events: the charger's node asks
            try:
                if isinstance(event, ChargerConnected) and event.protocol is Protocol.V201:
                    connected_at_row = subscription.position[1]
                    self._tasks.spawn(
                        self._after_reconnect(event.charge_point_id, connected_at_row)
                    )
                elif isinstance(event, SessionStarted | SessionUpdated | SessionEnded):
                    await self._check_seq(event)
            except Exception:
                log.exception("transaction_status.check_failed")

    async def _check_seq(self, event: SessionStarted | SessionUpdated | SessionEnded) -> None:
        if event.seq_no is None or event.transaction_id is None:
            return  # 1.6: no seqNo
        key = (event.charge_point_id, event.transaction_id)
        previous = self._last_seq.get(key)
        gap = seq_gap(previous, event.seq_no)
        if gap and previous is None:
            gap = not await self._complete_in_log(
                event.charge_point_id, event.transaction_id, event.seq_no
            )
        if isinstance(event, SessionEnded):
            self._last_seq.pop(key, None)
        else:
            self._last_seq[key] = max(event.seq_no, previous or 0)
        if gap:
            log.warning(
                "transaction.seq_gap",
                charge_point_id=event.charge_point_id,
                transaction_id=event.transaction_id,
                seq_no=event.seq_no,
                previous=previous,
            )
            self._tasks.spawn(self.ask(event.charge_point_id, event.transaction_id, "seq_gap"))

    async def _complete_in_log(self, charge_point_id: str, transaction_id: str, upto: int) -> bool:
        """Whether the event log holds every seqNo of the transaction below ``upto``."""
        seen = await self._context.pool.fetchval(
            """
            SELECT count(DISTINCT (payload->>'seq_no')::int) FROM events
            WHERE charge_point_id = $1
              AND type IN ('session_started', 'session_updated', 'session_ended')
              AND payload->>'transaction_id' = $2 AND (payload->>'seq_no')::int < $3
            """,
            charge_point_id,
            transaction_id,
            upto,
        )
        return int(seen) >= upto

    async def _after_reconnect(self, charge_point_id: str, connected_at_row: int) -> None:
        """Ask about the transactions that were open when the charger connected.

        The bus hands the connect over after a read (and later still when this
        consumer is behind), so the charger may have started a transaction since:
        one whose ``session_started`` row follows the connect's row was not open
        at the reconnect and is not asked about (``events_charger`` bounds the
        check to the rows after the connect).
        """
        open_transactions = await self._context.pool.fetch(
            """
            SELECT s.transaction_id FROM sessions s
            WHERE s.charge_point_id = $1 AND s.status = 'active'
              AND NOT EXISTS (
                  SELECT 1 FROM events e
                  WHERE e.charge_point_id = $1 AND e.id > $2 AND e.type = 'session_started'
                    AND e.payload->>'transaction_id' = s.transaction_id)
            """,
            charge_point_id,
            connected_at_row,
        )
        for row in open_transactions:
            await self.ask(charge_point_id, row["transaction_id"], "reconnect")

    async def ask(self, charge_point_id: str, transaction_id: str | None, reason: str) -> None:
        """Send GetTransactionStatus and store the answer (or why there was none)."""
        data: dict[str, Any] = {"transaction_id": transaction_id, "reason": reason}
        try:
            response = await self._context.router.call(
                charge_point_id, call201.GetTransactionStatus(transaction_id=transaction_id)
            )
            data |= {
                "ongoing_indicator": response.ongoing_indicator,
                "messages_in_queue": response.messages_in_queue,
            }
        except (
            ChargerNotConnected,
            CallErrorReceived,
            InvalidAnswer,
            TimeoutError,
            ConnectionError,
        ) as error:
            data["error"] = repr(error)
        await self._context.central.record(
            ChargerReportReceived(
                charge_point_id=charge_point_id,
                occurred_at=datetime.now(UTC),
                action="GetTransactionStatus",
                data=data,
            )
        )
        if data.get("ongoing_indicator") is False and data.get("messages_in_queue") is False:
            log.warning(
                "transaction.not_ongoing_at_charger",
                charge_point_id=charge_point_id,
                transaction_id=transaction_id,
            )
