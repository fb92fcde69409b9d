"""The profile rules as a table: who must present what."""

from __future__ import annotations

import base64

import pytest

from csms.security.policy import (
    Presented,
    Refusal,
    StoredCredentials,
    basic_password,
    certificate_names,
    decide,
)

HASH = "$argon2id$stored"


def auth(raw: bytes) -> list[str]:
    return [f"Basic {base64.b64encode(raw).decode()}"]


@pytest.mark.parametrize(
    ("stored", "presented", "min_profile", "expected"),
    [
        # profile 0: nothing needed; unknown chargers are profile 0
        (None, Presented(), 0, None),
        (StoredCredentials(0), Presented(tls=True), 0, None),
        # credentials presented must be right, even where not needed
        (None, Presented(authorization=auth(b"CP:secret")), 0, Refusal.NO_PASSWORD_SET),
        (StoredCredentials(0, HASH), Presented(authorization=auth(b"CP:pw")), 0, "check"),
        # profile 1
        (StoredCredentials(1, HASH), Presented(), 0, Refusal.MISSING_CREDENTIALS),
        (StoredCredentials(1, HASH), Presented(authorization=auth(b"CP:pw")), 0, "check"),
        (
            StoredCredentials(1, HASH),
            Presented(authorization=auth(b"XX:pw")),
            0,
            Refusal.WRONG_USERNAME,
        ),
        (
            StoredCredentials(1, HASH),
            Presented(authorization=["Digest x"]),
            0,
            Refusal.MALFORMED_CREDENTIALS,
        ),
        (
            StoredCredentials(1, HASH),
            Presented(authorization=auth(b"CP:a") * 2),
            0,
            Refusal.MALFORMED_CREDENTIALS,
        ),
        # the CSMS-wide minimum raises a charger's profile, unknown ones included
        (None, Presented(), 1, Refusal.MISSING_CREDENTIALS),
        (StoredCredentials(0), Presented(), 2, Refusal.TLS_REQUIRED),
        # profile 2: TLS first, then the password
        (
            StoredCredentials(2, HASH),
            Presented(authorization=auth(b"CP:pw")),
            0,
            Refusal.TLS_REQUIRED,
        ),
        (StoredCredentials(2, HASH), Presented(tls=True), 0, Refusal.MISSING_CREDENTIALS),
        (StoredCredentials(2, HASH), Presented(tls=True, authorization=auth(b"CP:pw")), 0, "check"),
        # profile 3: a certificate naming this charger, no password needed
        (StoredCredentials(3), Presented(tls=True), 0, Refusal.CLIENT_CERTIFICATE_REQUIRED),
        (StoredCredentials(3), Presented(tls=True, certificate_names=frozenset({"CP"})), 0, None),
        (
            StoredCredentials(3),
            Presented(tls=True, certificate_names=frozenset({"X"})),
            0,
            Refusal.CERTIFICATE_IDENTITY_MISMATCH,
        ),
        (None, Presented(tls=True, certificate_names=frozenset({"CP"})), 3, None),
        # a certificate for another charger is refused whatever the profile
        (
            StoredCredentials(0),
            Presented(tls=True, certificate_names=frozenset({"X"})),
            0,
            Refusal.CERTIFICATE_IDENTITY_MISMATCH,
        ),
    ],
)
def test_decide(
    stored: StoredCredentials | None,
    presented: Presented,
    min_profile: int,
    expected: Refusal | str | None,
) -> None:
    decision = decide("CP", stored, presented, min_profile)
    if expected == "check":
        assert decision.refusal is None
        assert (decision.password_hash, decision.password) == (HASH, b"pw")
    else:
        assert decision.refusal == expected
        assert decision.password_hash is None


def test_refusal_statuses() -> None:
    assert Refusal.WRONG_PASSWORD.status == 401
    assert Refusal.TLS_REQUIRED.status == 403
    assert Refusal.RATE_LIMITED.status == 429


def test_basic_password_allows_colons_in_identity_and_password() -> None:
    assert basic_password(auth(b"site:CP:1:pass:word"), "site:CP:1") == b"pass:word"
    assert basic_password(auth(b"CP:"), "CP") == b""
    assert basic_password(auth(b"CP:\xff\x00bin"), "CP") == b"\xff\x00bin"  # 1.6: any octets
    assert basic_password(auth(b"other:pw"), "CP") is None
    assert basic_password(["basic   " + auth(b"CP:pw")[0][6:]], "CP") == b"pw"


def test_certificate_names_reads_common_name_and_dns_alt_names() -> None:
    peercert = {
        "subject": ((("organizationName", "ACME"),), (("commonName", "CP1"),)),
        "subjectAltName": (("DNS", "cp1.example"), ("IP Address", "10.0.0.1")),
    }
    assert certificate_names(peercert) == {"CP1", "cp1.example"}
    assert certificate_names(None) == frozenset()
    assert certificate_names({}) == frozenset()
