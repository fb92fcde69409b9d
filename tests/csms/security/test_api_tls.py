"""HTTPS on the operator API/dashboard port, with the charger port's certificate."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from csms.config import Settings
from csms.security.tls import api_tls
from tests.conftest import StartCsms
from tests.csms.security.conftest import Pki


async def test_the_api_and_dashboard_answer_over_https_with_the_chargers_certificate(
    start_csms: StartCsms, pki: Pki
) -> None:
    csms = await start_csms(
        api_tls=True, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key
    )
    assert csms.app.api_url.startswith("https://")
    base = f"https://127.0.0.1:{csms.app.api_port}"
    async with httpx.AsyncClient(verify=pki.client_context()) as client:
        document = await client.get(f"{base}/api/v1/openapi.json")
        assert document.status_code == 200
        assert "/api/v1/chargers" in document.json()["paths"]
        assert (await client.get(f"{base}/")).status_code == 200  # the dashboard
        assert (await client.get(f"{base}/api/v1/chargers")).status_code == 401
    async with httpx.AsyncClient() as plain:
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on that port
            await plain.get(f"http://127.0.0.1:{csms.app.api_port}/api/v1/openapi.json")


def test_https_without_a_certificate_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="CSMS_TLS_CERT_FILE"):
        api_tls(dataclasses.replace(Settings(), api_tls=True))
    assert api_tls(Settings()) is None
