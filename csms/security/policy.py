"""What a charger must present at the WebSocket upgrade: pure decisions.

OCPP security profiles (1.6 Security Whitepaper, 2.0.1 Part 2 section A):

* 0 — none: anything goes (development, or a closed network);
* 1 — HTTP Basic Auth, username = charger identity, over ws or wss;
* 2 — Basic Auth over TLS (wss, server certificate);
* 3 — TLS with a client certificate naming the charger; no password needed.

The profile that applies is the charger's own or the CSMS-wide minimum,
whichever is higher, so production can demand authentication of every charger
(unknown ones included) while each charger can be held to more. Credentials a
charger presents must be right even where its profile would not need them: a
wrong password or a certificate for another charger is a refusal, never
ignored, because it means someone is guessing or a certificate is misused.
"""

from __future__ import annotations

import base64
import binascii
import enum
import http
from collections.abc import Mapping
from dataclasses import dataclass

PROFILES = range(4)


class Refusal(enum.StrEnum):
    """Why an upgrade was refused; logged as ``reason`` of ``security.upgrade_refused``."""

    MISSING_CREDENTIALS = "missing_credentials"
    MALFORMED_CREDENTIALS = "malformed_credentials"
    WRONG_USERNAME = "wrong_username"
    NO_PASSWORD_SET = "no_password_set"
    WRONG_PASSWORD = "wrong_password"
    TLS_REQUIRED = "tls_required"
    CLIENT_CERTIFICATE_REQUIRED = "client_certificate_required"
    CERTIFICATE_IDENTITY_MISMATCH = "certificate_identity_mismatch"
    RATE_LIMITED = "rate_limited"

    @property
    def status(self) -> http.HTTPStatus:
        if self is Refusal.RATE_LIMITED:
            return http.HTTPStatus.TOO_MANY_REQUESTS
        if self in _FORBIDDEN:
            return http.HTTPStatus.FORBIDDEN
        return http.HTTPStatus.UNAUTHORIZED

    @property
    def message(self) -> str:
        """The response body: enough for an installer, nothing about other chargers."""
        return _MESSAGES.get(self, "authentication required")


_FORBIDDEN = {
    Refusal.TLS_REQUIRED,
    Refusal.CLIENT_CERTIFICATE_REQUIRED,
    Refusal.CERTIFICATE_IDENTITY_MISMATCH,
}
_MESSAGES = {
    Refusal.TLS_REQUIRED: "this charger must connect with wss (TLS)",
    Refusal.CLIENT_CERTIFICATE_REQUIRED: "a client certificate naming this charger is required",
    Refusal.CERTIFICATE_IDENTITY_MISMATCH: "the client certificate names another charger",
    Refusal.RATE_LIMITED: "too many failed attempts from this address; retry later",
}


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """What the registry holds for a charger (``None`` for an unknown one)."""

    security_profile: int = 0
    password_hash: str | None = None
    # During a password rotation: the new password (pending) and the old one (previous)
    # are accepted too, so the charger's reconnect is never refused mid-rotation.
    alternate_password_hashes: tuple[str, ...] = ()
    # A profile the charger was asked to move up to; it applies once the charger
    # has connected meeting it (csms/storage/security_upgrade.py).
    pending_security_profile: int | None = None


@dataclass(frozen=True, slots=True)
class Presented:
    """What the charger brought to the upgrade request."""

    tls: bool = False
    authorization: list[str] | None = None  # every Authorization header value
    certificate_names: frozenset[str] = frozenset()  # of a client certificate TLS verified


@dataclass(frozen=True, slots=True)
class Decision:
    """Refuse, accept, or accept once ``password`` matches ``password_hash``."""

    profile: int
    refusal: Refusal | None = None
    password_hash: str | None = None
    password: bytes | None = None


class _Malformed(Exception):
    pass


def basic_password(values: list[str], charge_point_id: str) -> bytes | None:
    """The password of ``Authorization: Basic base64(identity:password)``.

    None if the username is not ``charge_point_id``; raises ``_Malformed`` for
    anything that is not one well-formed Basic header. The identity is
    matched as a prefix rather than split at the first colon, because OCPP
    2.0.1 identities may themselves contain ``:``. The password is kept as
    bytes: OCPP 1.6 chargers may send any octets.
    """
    if len(values) != 1:
        raise _Malformed
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise _Malformed
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Malformed from exc
    prefix = charge_point_id.encode() + b":"
    if not decoded.startswith(prefix):
        if b":" not in decoded:
            raise _Malformed
        return None
    return decoded[len(prefix) :]


def decide(
    charge_point_id: str,
    stored: StoredCredentials | None,
    presented: Presented,
    min_profile: int = 0,
) -> Decision:
    """Apply the profile rules in the order a charger can fix them: transport, certificate,
    then password."""
    stored = stored or StoredCredentials()
    profile = max(stored.security_profile, min_profile)

    def refuse(reason: Refusal) -> Decision:
        return Decision(profile, reason)

    if profile >= 2 and not presented.tls:
        return refuse(Refusal.TLS_REQUIRED)
    names = presented.certificate_names
    if names and charge_point_id not in names:
        return refuse(Refusal.CERTIFICATE_IDENTITY_MISMATCH)
    if profile == 3 and not names:
        return refuse(Refusal.CLIENT_CERTIFICATE_REQUIRED)
    if presented.authorization:
        try:
            password = basic_password(presented.authorization, charge_point_id)
        except _Malformed:
            return refuse(Refusal.MALFORMED_CREDENTIALS)
        if password is None:
            return refuse(Refusal.WRONG_USERNAME)
        if stored.password_hash is None:
            return refuse(Refusal.NO_PASSWORD_SET)
        return Decision(profile, None, stored.password_hash, password)
    if profile in (1, 2):
        return refuse(Refusal.MISSING_CREDENTIALS)
    return Decision(profile)


def certificate_names(peercert: Mapping[str, object] | None) -> frozenset[str]:
    """The subject commonName(s) and DNS subjectAltNames of a verified peer certificate.

    ``peercert`` is :meth:`ssl.SSLSocket.getpeercert` output, which is only
    filled in once the certificate chained to the configured CA.
    """
    if not peercert:
        return frozenset()
    names: set[str] = set()
    subject = peercert.get("subject", ())
    if isinstance(subject, tuple):
        for rdn in subject:
            for key, value in rdn:
                if key == "commonName":
                    names.add(value)
    alt_names = peercert.get("subjectAltName", ())
    if isinstance(alt_names, tuple):
        for kind, value in alt_names:
            if kind == "DNS":
                names.add(value)
    return frozenset(names)


def meets_profile(profile: int, presented: Presented, password_checked: bool) -> bool:
    """Whether an authenticated connection meets ``profile`` (for a pending upgrade)."""
    if profile == 2:
        return presented.tls and password_checked
    if profile == 3:
        return presented.tls and bool(presented.certificate_names)
    return True
