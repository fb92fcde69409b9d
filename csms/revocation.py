"""Registration changes and token blocks reach live connections at once, on every node.

Before, a charger set to Rejected kept working on its open socket until it
reconnected, and a blocked token kept charging until its session ended. Now
triggers on ``chargers.registration`` and ``id_tokens.status`` (migration
``0019``) ``NOTIFY csms_revocation`` whoever writes the row, and each CSMS
process listens:

* a registration change is read back and set on this process's connection to
  that charger, so its next message is refused (SecurityError) unless Accepted;
* a token that stops being Accepted (Blocked, Expired, Invalid) -- or a group
  token, for its members -- has its active sessions on chargers connected to
  this process stopped: RemoteStopTransaction (1.6) / RequestStopTransaction
  (2.0.1).

The listening connection is re-opened if it drops; on each (re)start every live
connection's registration is read again, so nothing missed while deaf stays wrong.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import structlog
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.events import Protocol
from csms.router import ConnectionRegistry
from csms.storage import chargers
from csms.storage.listen import listen_forever

log = structlog.get_logger(__name__)

CHANNEL = "csms_revocation"
_RECONNECT_SECONDS = 2.0

_ACTIVE_SESSIONS_OF_TOKEN = """
    SELECT charge_point_id, transaction_id FROM sessions
    WHERE status = 'active'
      AND (lower(id_token) = lower($1)
           OR lower(id_token) IN (SELECT lower(id_token) FROM id_tokens
                                  WHERE lower(group_id) = lower($1)))
"""


class RevocationListener:
    """Applies ``csms_revocation`` notifications to this process's live connections."""

    def __init__(self, dsn: str, pool: asyncpg.Pool, registry: ConnectionRegistry) -> None:
        self.dsn = dsn
        self.pool = pool
        self.registry = registry
        self._work: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        await listen_forever(self.dsn, CHANNEL, self._on_notify, self.resync, _RECONNECT_SECONDS)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        task = asyncio.create_task(self.apply(json.loads(str(payload))))
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def apply(self, notice: dict[str, Any]) -> None:
        try:
            if notice.get("kind") == "registration":
                await self._registration_changed(str(notice["charge_point_id"]))
            elif notice.get("kind") == "token":
                await self._token_revoked(str(notice["id_token"]))
        except Exception:
            log.exception("revocation.not_applied", notice=notice)

    async def resync(self) -> None:
        for connection in self.registry.all():
            await self._registration_changed(connection.id)

    async def _registration_changed(self, charge_point_id: str) -> None:
        connection = self.registry.get(charge_point_id)
        if connection is None:
            return
        registration = await chargers.registration_of(self.pool, charge_point_id)
        if registration != connection.registration:
            log.info(
                "revocation.registration_applied",
                charge_point_id=charge_point_id,
                registration=registration,
                was=connection.registration,
            )
            connection.registration = registration

    async def _token_revoked(self, id_token: str) -> None:
        for row in await self.pool.fetch(_ACTIVE_SESSIONS_OF_TOKEN, id_token):
            connection = self.registry.get(row["charge_point_id"])
            if connection is None:
                continue
            transaction_id = row["transaction_id"]
            payload: Any
            if connection.protocol is Protocol.V16:
                if not str(transaction_id).isdigit():
                    continue
                payload = call16.RemoteStopTransaction(transaction_id=int(transaction_id))
            else:
                payload = call201.RequestStopTransaction(transaction_id=str(transaction_id))
            log.info(
                "revocation.session_stopped",
                charge_point_id=connection.id,
                transaction_id=transaction_id,
                id_token=id_token,
            )
            try:
                await connection.call(payload)
            except Exception as error:  # the charger's answer is its business; log it
                log.warning("revocation.stop_not_accepted", error=str(error)[:200])
