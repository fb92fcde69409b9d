"""Authenticate chargers at the WebSocket upgrade, before any OCPP message.

The server calls :meth:`ChargerGate.check` from ``process_request``: it returns
None to let the handshake go on, or the HTTP response that refuses it (401 with
a Basic challenge, 403 for the wrong transport or certificate, 429 while the
address is blocked). Every refusal is logged as ``security.upgrade_refused``
and counted per reason in :attr:`ChargerGate.refusals`.
"""

from __future__ import annotations

import collections
import functools
import math
from collections.abc import Awaitable, Callable

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from csms.config import Settings
from csms.security.passwords import PasswordVerifier
from csms.security.policy import Presented, Refusal, StoredCredentials, decide, meets_profile
from csms.security.proxy import ClientView, TrustedProxies, parse_networks
from csms.security.ratelimit import FailureLimiter, address_key
from csms.security.tls import is_tls, peer_certificate_names
from csms.storage import Executor, chargers, password_rotation, security_upgrade

log = structlog.get_logger(__name__)

CHALLENGE = 'Basic realm="csms", charset="UTF-8"'


def limiter_from(settings: Settings) -> FailureLimiter:
    return FailureLimiter(
        limit=settings.auth_failure_limit,
        window=settings.auth_failure_window,
        block_for=settings.auth_block_seconds,
    )


class ChargerGate:
    """The per-charger security profile check, with its password cache and rate limiter."""

    def __init__(
        self,
        db: Executor,
        settings: Settings,
        *,
        verifier: PasswordVerifier | None = None,
        limiter: FailureLimiter | None = None,
        credentials: Callable[[str], Awaitable[StoredCredentials | None]] | None = None,
    ) -> None:
        self.db = db
        # How a charger's stored credentials are read: the server batches the
        # lookups of a reconnect storm (csms.presence); alone, one query on ``db``.
        self.credentials = credentials or functools.partial(chargers.credentials_of, db)
        self.settings = settings
        self.verifier = verifier or PasswordVerifier()
        self.limiter = limiter or limiter_from(settings)
        self.proxies = TrustedProxies(
            parse_networks(settings.trusted_proxies), settings.tls_client_cert_header
        )
        self.refusals: collections.Counter[Refusal] = collections.Counter()

    def client(self, connection: ServerConnection, request: Request) -> ClientView:
        """The real client: the peer, or who a trusted proxy says it forwards (proxy.py)."""
        remote = connection.remote_address
        header = self.proxies.certificate_header
        return self.proxies.client(
            str(remote[0]) if remote else "unknown",
            request.headers.get_all("X-Forwarded-For"),
            request.headers.get("X-Forwarded-Proto"),
            request.headers.get(header) if header else None,
        )

    async def check(
        self, connection: ServerConnection, request: Request, charge_point_id: str
    ) -> Response | None:
        client = self.client(connection, request)
        host = client.host
        address = address_key(host)
        wait = self.limiter.retry_after(address)
        if wait is not None:
            # Cheap on purpose: no database, no hashing. Logged at debug only, since a
            # blocked guesser can send these as fast as it likes.
            log.debug(
                "security.upgrade_refused",
                reason=Refusal.RATE_LIMITED.value,
                address=host,
                charge_point_id=charge_point_id,
            )
            self.refusals[Refusal.RATE_LIMITED] += 1
            return _refusal_response(connection, Refusal.RATE_LIMITED, retry_after=wait)

        presented = Presented(
            tls=is_tls(connection) if client.tls is None else client.tls,
            authorization=request.headers.get_all("Authorization") or None,
            certificate_names=(
                peer_certificate_names(connection)
                if client.certificate_names is None
                else client.certificate_names
            ),
        )
        stored = await self.credentials(charge_point_id)
        decision = decide(charge_point_id, stored, presented, self.settings.security_profile_min)
        refusal = decision.refusal
        if refusal is None and decision.password_hash is not None:
            assert decision.password is not None
            alternates = stored.alternate_password_hashes if stored else ()
            matched = None
            for candidate in (decision.password_hash, *alternates):
                if await self.verifier.verify(charge_point_id, candidate, decision.password):
                    matched = candidate
                    break
            if matched is None:
                refusal = Refusal.WRONG_PASSWORD
            elif alternates:
                await password_rotation.settle(self.db, charge_point_id, matched)
        if (
            refusal is None
            and stored is not None
            and stored.pending_security_profile is not None
            and meets_profile(
                stored.pending_security_profile, presented, decision.password_hash is not None
            )
        ):
            await security_upgrade.reached(
                self.db, charge_point_id, stored.pending_security_profile
            )
            log.info(
                "security.profile_upgraded",
                charge_point_id=charge_point_id,
                profile=stored.pending_security_profile,
            )
        if refusal is None:
            log.debug(
                "security.charger_authenticated",
                charge_point_id=charge_point_id,
                profile=decision.profile,
                tls=presented.tls,
            )
            return None

        self.refusals[refusal] += 1
        log.warning(
            "security.upgrade_refused",
            reason=refusal.value,
            address=host,
            charge_point_id=charge_point_id,
            known_charger=stored is not None,
            profile=decision.profile,
            tls=presented.tls,
            status=refusal.status.value,
        )
        block = self.limiter.record_failure(address)
        if block is not None:
            log.warning(
                "security.address_blocked",
                address=host,
                counted_as=address,
                seconds=block,
                failures=self.limiter.limit,
                window=self.limiter.window,
            )
        return _refusal_response(connection, refusal)


def _refusal_response(
    connection: ServerConnection, refusal: Refusal, retry_after: float | None = None
) -> Response:
    response = connection.respond(refusal.status, refusal.message + "\n")
    if refusal.status == 401:
        response.headers["WWW-Authenticate"] = CHALLENGE
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response
