"""Security settings: environment parsing, TLS consistency, storage of credentials."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import asyncpg
import pytest

from csms.config import Settings
from csms.security.policy import StoredCredentials
from csms.security.tls import context_from
from csms.storage.chargers import credentials_of, set_credentials
from tests.csms.security.conftest import PASSWORD, Pki


def test_security_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "CSMS_SECURITY_PROFILE_MIN": "2",
            "CSMS_TLS_CERT_FILE": "/etc/csms/server.pem",
            "CSMS_TLS_KEY_FILE": "/etc/csms/server.key",
            "CSMS_TLS_CA_FILE": "/etc/csms/chargers-ca.pem",
            "CSMS_TLS_PORT": "8443",
            "CSMS_AUTH_FAILURE_LIMIT": "0",
            "CSMS_AUTH_FAILURE_WINDOW": "30",
            "CSMS_AUTH_BLOCK_SECONDS": "120",
        }
    )
    assert settings.security_profile_min == 2
    assert settings.tls_cert_file == Path("/etc/csms/server.pem")
    assert settings.tls_ca_file == Path("/etc/csms/chargers-ca.pem")
    assert (settings.tls_port, settings.auth_failure_limit) == (8443, 0)
    assert (settings.auth_failure_window, settings.auth_block_seconds) == (30.0, 120.0)
    defaults = Settings.from_env({})
    assert (defaults.security_profile_min, defaults.tls_cert_file, defaults.tls_port) == (
        0,
        None,
        9443,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CSMS_SECURITY_PROFILE_MIN", "4"),
        ("CSMS_TLS_PORT", "70000"),
        ("CSMS_AUTH_BLOCK_SECONDS", "0"),
    ],
)
def test_bad_security_settings(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_tls_settings_that_could_never_work_stop_start_up(pki: Pki) -> None:
    base = Settings()
    assert context_from(base) is None
    bad = [
        {"security_profile_min": 2},
        {"tls_key_file": pki.server_key},
        {"tls_cert_file": pki.server_cert},
        {
            "tls_cert_file": pki.server_cert,
            "tls_key_file": pki.server_key,
            "security_profile_min": 3,
        },
    ]
    for overrides in bad:
        with pytest.raises(ValueError):
            context_from(dataclasses.replace(base, **overrides))  # type: ignore[arg-type]
    good = dataclasses.replace(base, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key)
    assert context_from(good) is not None


async def test_set_credentials_and_credentials_of(database_dsn: str) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        assert await credentials_of(conn, "CP1") is None
        await set_credentials(conn, "CP1", password=PASSWORD, security_profile=1)
        stored = await credentials_of(conn, "CP1")
        assert stored is not None and stored.security_profile == 1
        assert stored.password_hash is not None and stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash
        assert await conn.fetchval("SELECT registration FROM chargers") == "Accepted"
        await set_credentials(conn, "CP1", password=None, security_profile=3)
        assert await credentials_of(conn, "CP1") == StoredCredentials(3, None)
        with pytest.raises(ValueError):
            await set_credentials(conn, "CP1", password=None, security_profile=2)
        with pytest.raises(ValueError):
            await set_credentials(conn, "CP1", password=PASSWORD, security_profile=4)
        with pytest.raises(ValueError):
            await set_credentials(conn, "CP1", password="short", security_profile=1)
    finally:
        await conn.close()
