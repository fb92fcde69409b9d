"""The server's TLS context for security profiles 2 and 3.

OCPP requires TLS 1.2 or newer. For TLS 1.2 the server offers the suites OCPP
2.0.1 A00.FR.317/318 name (ECDHE-ECDSA with AES-GCM, and the plain-RSA
TLS_RSA_WITH_AES_128/256_GCM suites older chargers only speak) plus the
ECDHE-RSA ones; Python's default server list leaves the plain-RSA suites out.
Those need an RSA certificate, the ECDSA ones an ECDSA certificate: a second
certificate (``CSMS_TLS_SECOND_CERT_FILE``/``..._KEY_FILE``, of the other key
type) is served beside the first, and OpenSSL picks per handshake.

Client certificates are requested but optional (``CERT_OPTIONAL``): profile-2
chargers have none, and it is the per-charger profile, checked after the
handshake, that decides whether one was needed. A certificate that is presented
must chain to the configured CA, or the TLS handshake itself fails.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from websockets.asyncio.server import ServerConnection

from csms.config import ENV_NAMES, Settings
from csms.security.policy import certificate_names

TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",  # A00.FR.317/318
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256",  # TLS_RSA_WITH_AES_128_GCM_SHA256, A00.FR.318
        "AES256-GCM-SHA384",  # TLS_RSA_WITH_AES_256_GCM_SHA384, A00.FR.318
    ]
)


def context_from(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context the settings ask for, or None for plain ws only.

    Raises ValueError for settings under which chargers could never connect,
    so that the mistake stops start-up instead of refusing every charger.
    """
    cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file
    if cert is None:
        if key is not None or ca is not None:
            raise ValueError(f"{ENV_NAMES['tls_cert_file']} is needed for TLS")
        if settings.security_profile_min >= 2:
            raise ValueError(
                f"{ENV_NAMES['security_profile_min']}={settings.security_profile_min} "
                f"needs TLS: set {ENV_NAMES['tls_cert_file']} and {ENV_NAMES['tls_key_file']}"
            )
        return None
    if key is None:
        raise ValueError(f"{ENV_NAMES['tls_key_file']} is needed with a certificate")
    if ca is None and settings.security_profile_min >= 3:
        raise ValueError(f"security profile 3 needs {ENV_NAMES['tls_ca_file']} (client CA)")
    second_cert, second_key = settings.tls_second_cert_file, settings.tls_second_key_file
    if (second_cert is None) != (second_key is None):
        raise ValueError(
            f"{ENV_NAMES['tls_second_cert_file']} and {ENV_NAMES['tls_second_key_file']} "
            "go together"
        )
    second = None if second_cert is None or second_key is None else (second_cert, second_key)
    return server_context(cert, key, ca, second)


def api_tls(settings: Settings) -> tuple[Path, Path] | None:
    """(certificate, key) for HTTPS on the API/dashboard port, or None for plain HTTP.

    The same files as the charger port's wss (``CSMS_TLS_CERT_FILE``/``_KEY_FILE``), so one
    certificate for the host serves both; raises ValueError when HTTPS is asked without them.
    """
    if not settings.api_tls:
        return None
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        raise ValueError(
            f"{ENV_NAMES['api_tls']}=true needs {ENV_NAMES['tls_cert_file']} and "
            f"{ENV_NAMES['tls_key_file']}"
        )
    return settings.tls_cert_file, settings.tls_key_file


def server_context(
    cert_file: Path,
    key_file: Path,
    client_ca_file: Path | None,
    second: tuple[Path, Path] | None = None,
) -> ssl.SSLContext:
    """A server context with our certificate chain(s), asking for client certificates if a
    CA to check them against is configured."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(cert_file, key_file)
    if second is not None:
        # OpenSSL keeps one certificate per key type: an RSA one beside an ECDSA one.
        context.load_cert_chain(*second)
    if client_ca_file is not None:
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def is_tls(connection: ServerConnection) -> bool:
    return connection.transport.get_extra_info("ssl_object") is not None


def peer_certificate_names(connection: ServerConnection) -> frozenset[str]:
    """Names in the client certificate the handshake verified; empty without one."""
    ssl_object = connection.transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return frozenset()
    return certificate_names(ssl_object.getpeercert())
