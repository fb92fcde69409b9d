"""Deciding on an id token: the answer to Authorize and to a transaction's token.

Part of :class:`csms.central.CentralSystem` (a mixin, for the size of that
module). An unknown token is Invalid, an expired one Expired, a blocked group
blocks its members; with ``concurrent_tx_window_hours`` a token charging in
another session is ConcurrentTx. While the database cannot be reached, an
Authorize is answered from a recent decision (``authorize_cache_seconds``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog

from csms.bus import EventBus
from csms.config import Settings
from csms.events import AuthorizationRequested, AuthorizationStatus
from csms.monitoring import metrics
from csms.recording import note_duplicate, once
from csms.storage import Executor, concurrency, event_log, tokens

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Authorization:
    """What the CSMS answers about an id token (1.6 idTagInfo, 2.0.1 idTokenInfo)."""

    status: AuthorizationStatus
    expires_at: datetime | None = None
    group_id: str | None = None


NO_AUTHORIZATION = "NoAuthorization"
_AUTHORIZE_CACHE_SIZE = 100_000


def decide_authorization(
    token: tokens.TokenRecord | None, now: datetime, token_type: str | None = None
) -> Authorization:
    """Unknown tokens are Invalid; an Accepted token past its expiry is Expired.

    A 2.0.1 token of type NoAuthorization is what a charger set up for free
    charging sends; it has no identity to look up and is accepted.
    """
    if token_type == NO_AUTHORIZATION:
        return Authorization(AuthorizationStatus.ACCEPTED)
    if token is None:
        return Authorization(AuthorizationStatus.INVALID)
    status = AuthorizationStatus(token.status)
    if status is AuthorizationStatus.ACCEPTED and token.expires_at and token.expires_at <= now:
        status = AuthorizationStatus.EXPIRED
    if status is AuthorizationStatus.ACCEPTED and token.group_status == "Blocked":
        status = AuthorizationStatus.BLOCKED  # a blocked group (parent) blocks its members
    return Authorization(status, token.expires_at, token.group_id)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Authorizer:
    """The token decisions of :class:`csms.central.CentralSystem`."""

    pool: asyncpg.Pool
    settings: Settings
    bus: EventBus
    # Recent Authorize decisions, answered again while the database is down
    # (authorize_cache_seconds; oldest first, at most _AUTHORIZE_CACHE_SIZE).
    _authorizations: dict[tuple[str, str | None], tuple[float, Authorization]]

    _acquire: Callable[[], asyncpg.pool.PoolAcquireContext]  # csms.presence's

    async def authorize(self, event: AuthorizationRequested) -> Authorization:
        """Decide on a token; while the database is down, from a recent decision (cache)."""
        key = (event.id_token.lower(), event.token_type)
        try:
            authorization = await self._authorize(event)
        except Exception as error:
            cached = self._authorizations.get(key)
            max_age = self.settings.authorize_cache_seconds
            if not metrics.db_unreachable(error) or cached is None:
                raise
            if asyncio.get_running_loop().time() - cached[0] > max_age:
                raise
            log.warning("authorize.answered_from_cache", status=cached[1].status.value)
            metrics.AUTHORIZE_FROM_CACHE.inc()
            return cached[1]
        if self.settings.authorize_cache_seconds > 0:
            self._authorizations.pop(key, None)
            self._authorizations[key] = (asyncio.get_running_loop().time(), authorization)
            while len(self._authorizations) > _AUTHORIZE_CACHE_SIZE:
                del self._authorizations[next(iter(self._authorizations))]
        return authorization

    @once
    async def _authorize(self, event: AuthorizationRequested) -> Authorization:
        async with metrics.db_write(event.type), self._acquire() as conn, conn.transaction():
            authorization = await self._authorize_in(
                conn, event.id_token, event.token_type, event.charge_point_id
            )
            assert authorization is not None
            if await event_log.exists(conn, event.event_id):
                note_duplicate(event)  # answered again from today's token, not stored again
                return authorization
            await event_log.append(conn, event)
        self.bus.publish(event)
        return authorization

    async def _authorize_in(
        self,
        conn: Executor,
        id_token: str | None,
        token_type: str | None,
        charge_point_id: str,
        transaction_id: str | None = None,
        concurrent_check: bool = True,
        connector_id: int | None = None,
    ) -> Authorization | None:
        """The token's authorization; ConcurrentTx (if configured) when it is charging in
        another session. Updates and ends of a session are never refused as concurrent."""
        if id_token is None:
            return None
        token = await tokens.find(conn, id_token)
        return await self._decide_in(
            conn, token, id_token, token_type, charge_point_id, transaction_id,
            concurrent_check, connector_id,
        )  # fmt: skip

    async def _decide_in(
        self,
        conn: Executor,
        token: tokens.TokenRecord | None,
        id_token: str,
        token_type: str | None,
        charge_point_id: str,
        transaction_id: str | None = None,
        concurrent_check: bool = True,
        connector_id: int | None = None,
    ) -> Authorization:
        """:meth:`_authorize_in` for a token already read (``token``: None if unknown)."""
        authorization = decide_authorization(token, utcnow(), token_type)
        if (
            concurrent_check
            and self.settings.concurrent_tx_window_hours > 0
            and authorization.status is AuthorizationStatus.ACCEPTED
            and token_type != NO_AUTHORIZATION
            and await concurrency.in_another_session(
                conn,
                id_token,
                charge_point_id,
                transaction_id,
                connector_id,
                self.settings.concurrent_tx_window_hours,
            )
        ):
            authorization = dataclasses.replace(
                authorization, status=AuthorizationStatus.CONCURRENT_TX
            )
        return authorization
