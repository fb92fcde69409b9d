"""GetLog / GetDiagnostics uploading to the CSMS's own receiver, with both versions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from charge_point_sim import Fleet, FleetConfig
from csms.events import RegistrationStatus
from csms.storage import api_keys, chargers, log_uploads
from tests.conftest import StartCsms
from tests.csms.api.conftest import CHARGER, Api
from tests.waiting import eventually


@pytest.fixture
async def logs_api(start_csms: StartCsms, tmp_path: Path) -> AsyncIterator[tuple[Api, Fleet]]:
    csms = await start_csms(response_timeout=2.0, data_dir=tmp_path)
    base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
    _, operator_key = await api_keys.create(csms.pool, "ops-team", "operator")
    _, reader_key = await api_keys.create(csms.pool, "dashboard", "read-only")
    fleet = Fleet(
        FleetConfig(
            url=csms.ocpp_url, chargers=2, v201_share=0.5, speed=60.0, arrival_rate=0.0, seed=7
        )
    )
    await fleet.start()
    assert await fleet.wait_online()
    async with (
        httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {operator_key}"}) as op,
        httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {reader_key}"}) as ro,
        httpx.AsyncClient(base_url=base) as anonymous,
    ):
        yield Api(csms, op, ro, anonymous), fleet
    await fleet.stop()


@pytest.mark.parametrize(
    ("protocol", "log_type", "sent"),
    [
        ("ocpp1.6", "DiagnosticsLog", "GetDiagnostics"),
        ("ocpp1.6", "SecurityLog", "GetLog"),
        ("ocpp2.0.1", "DiagnosticsLog", "GetLog"),
    ],
)
async def test_charger_uploads_its_log_to_the_csms(
    logs_api: tuple[Api, Fleet], protocol: str, log_type: str, sent: str
) -> None:
    api, _ = logs_api
    charger = CHARGER[protocol]
    asked = await api.operator.post(f"/chargers/{charger}/logs", json={"log_type": log_type})
    assert asked.status_code == 200, asked.text
    location = (
        asked.json()["request"].get("location") or asked.json()["request"]["log"]["remoteLocation"]
    )
    assert "/api/v1/log-uploads/" in location
    assert asked.json()["command"] == "request_logs"

    async def uploaded() -> Any:
        listing = await api.reader.get(f"/chargers/{charger}/logs")
        [upload] = listing.json()["uploads"]
        return upload if upload["received_at"] and upload["status"] == "Uploaded" else None

    upload = await eventually(uploaded, within=10)
    assert upload["message"] == sent and upload["log_type"] == log_type
    assert upload["size_bytes"] > 0 and upload["requested_by"] == "ops-team"
    file = await api.reader.get(f"/chargers/{charger}/logs/{upload['id']}/file")
    assert file.status_code == 200 and charger in file.text

    again = await api.anonymous.put(location, content=b"second")
    assert again.status_code == 409


async def test_upload_urls_are_credentials(logs_api: tuple[Api, Fleet]) -> None:
    api, _ = logs_api
    pool, charger = api.csms.pool, CHARGER["ocpp2.0.1"]
    soon = datetime.now(UTC) + timedelta(hours=1)
    assert (await api.anonymous.put("/log-uploads/not-a-token", content=b"x")).status_code == 404
    await log_uploads.create(
        pool,
        charger,
        "old-token",
        "GetLog",
        "DiagnosticsLog",
        1,
        "t",
        datetime.now(UTC) - timedelta(seconds=1),
    )
    assert (await api.anonymous.put("/log-uploads/old-token", content=b"x")).status_code == 410

    upload_id = await log_uploads.create(
        pool, charger, "form-token", "GetLog", "SecurityLog", 2, "t", soon
    )
    sent = await api.anonymous.post(
        "/log-uploads/form-token", files={"file": ("security.log", b"line 1\nline 2\n")}
    )
    assert sent.status_code == 200, sent.text
    stored = await log_uploads.find(pool, charger, upload_id)
    assert stored is not None and stored["file_name"] == "security.log"
    assert stored["size_bytes"] == len(b"line 1\nline 2\n")

    listing = await api.anonymous.get(f"/chargers/{charger}/logs")
    assert listing.status_code == 401  # listing and downloading need an API key


async def test_an_upload_over_the_limit_is_refused_and_not_kept(
    start_csms: StartCsms, tmp_path: Path
) -> None:
    csms = await start_csms(uploads_max_bytes=10, data_dir=tmp_path)
    await chargers.register(csms.pool, "CP", RegistrationStatus.ACCEPTED)
    soon = datetime.now(UTC) + timedelta(hours=1)
    upload_id = await log_uploads.create(
        csms.pool, "CP", "big", "GetLog", "DiagnosticsLog", 1, "t", soon
    )
    base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.put("/log-uploads/big", content=b"x" * 11)).status_code == 413
        assert (await client.put("/log-uploads/big", content=b"x" * 10)).status_code == 200
    stored = await log_uploads.find(csms.pool, "CP", upload_id)
    assert stored is not None and stored["size_bytes"] == 10
