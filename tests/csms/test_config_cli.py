"""Settings from the environment and flags, and the ``csms`` command end to end."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from csms.cli import build_parser, settings_from
from csms.config import LogFormat, Settings, UnknownChargerPolicy
from csms.storage.embedded import with_database
from csms.storage.migrate import discover
from tests.conftest import private_tmp_dir
from tests.ocpp_clients import raw_charger


def test_environment_variables_are_read() -> None:
    settings = Settings.from_env(
        {
            "CSMS_PORT": "9100",
            "CSMS_HOST": "127.0.0.1",
            "DATABASE_URL": "postgresql://db/x",
            "CSMS_LOG_FORMAT": "JSON",
            "CSMS_UNKNOWN_CHARGER_POLICY": "pending",
            "CSMS_MIGRATE_ON_START": "false",
            "CSMS_PING_INTERVAL": "off",
            "CSMS_DATA_DIR": "/var/csms",
        }
    )
    assert (settings.port, settings.host, settings.database_url) == (
        9100,
        "127.0.0.1",
        "postgresql://db/x",
    )
    assert settings.log_format is LogFormat.JSON
    assert settings.unknown_charger_policy is UnknownChargerPolicy.PENDING
    assert settings.migrate_on_start is False and settings.ping_interval is None
    assert settings.data_dir == Path("/var/csms")


def test_process_settings_are_read() -> None:
    settings = Settings.from_env(
        {"CSMS_WORKERS": "4", "CSMS_DRAIN_SECONDS": "0", "CSMS_REUSE_PORT": "true"}
    )
    assert (settings.workers, settings.drain_seconds, settings.reuse_port) == (4, 0.0, True)
    assert (Settings().workers, Settings().reuse_port) == (1, False)  # one process by default
    args = build_parser().parse_args(["--workers", "3", "--drain-seconds", "2.5"])
    assert (settings_from(args).workers, settings_from(args).drain_seconds) == (3, 2.5)


@pytest.mark.parametrize(
    "bad",
    [
        {"CSMS_PORT": "-1"},
        {"CSMS_PORT": "http"},
        {"CSMS_MIGRATE_ON_START": "maybe"},
        {"CSMS_WORKERS": "0"},
        {"CSMS_DRAIN_SECONDS": "-1"},
        {"CSMS_REUSE_PORT": "sometimes"},
    ],
)
def test_bad_environment_values_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Settings.from_env(bad)


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSMS_PORT", "9100")
    monkeypatch.setenv("CSMS_HEARTBEAT_INTERVAL", "60")
    args = build_parser().parse_args(["--port", "9200", "--unknown-chargers", "reject"])
    settings = settings_from(args)
    assert (settings.port, settings.heartbeat_interval) == (9200, 60)
    assert settings.unknown_charger_policy is UnknownChargerPolicy.REJECT
    assert build_parser().parse_args(["serve", "--port", "1"]).port == 1
    assert settings_from(build_parser().parse_args(["--port", "2", "serve"])).port == 2
    token_args = build_parser().parse_args(["--port", "3", "token", "add", "T", "--data-dir", "/d"])
    assert settings_from(token_args).port == 3 and settings_from(token_args).data_dir == Path("/d")


async def test_csms_migrate_command(postgres_admin_dsn: str) -> None:
    name = f"cli_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_admin_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        env = {**os.environ, "DATABASE_URL": with_database(postgres_admin_dsn, name)}
        outputs = []
        for _ in range(2):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "csms",
                "migrate",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, err.decode()
            outputs.append(out.decode())
        assert outputs[0].startswith(f"migrations applied: {len(discover())} ")
        assert outputs[1].startswith("migrations applied: 0")
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


async def test_csms_serves_with_embedded_postgres_and_stops_on_sigterm() -> None:
    """The README's first command: no database set up, one ready line, SIGTERM is graceful."""
    tmp_path = private_tmp_dir("csms-test-cli-")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        "--log-format",
        "json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        ready = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        startup_seconds = time.perf_counter() - started
        assert ready.startswith("CSMS ready: chargers connect to ws://127.0.0.1:"), ready
        url = ready.split("connect to ")[1].split("/<charge_point_id>")[0]
        async with raw_charger(url, "CLI-1", "ocpp2.0.1") as charger:
            assert (await charger.exchange('[2, "1", "Heartbeat", {}]'))[0] == 3
            process.send_signal(signal.SIGTERM)  # drains: the charger is told 1012, restart
            await asyncio.wait_for(process.wait(), 30)
            await asyncio.wait_for(charger.websocket.wait_closed(), 10)
            assert charger.websocket.close_code == 1012
        assert process.returncode == 0
        log = (await process.stderr.read()).decode()
        assert '"event": "shutdown.done"' in log and '"charge_point_id": "CLI-1"' in log
        assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()
        print(f"csms start-up with a new embedded database: {startup_seconds:.2f}s")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        shutil.rmtree(tmp_path, ignore_errors=True)


async def test_csms_token_command_adds_changes_and_lists_tokens(database_dsn: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_dsn}

    async def csms(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csms", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        return out.decode()

    await csms("token", "add", "Card-1", "--group", "FLEET")
    await csms("token", "add", "CARD-1", "--status", "Blocked", "--group", "FLEET")
    await csms("token", "add", "Lease", "--expires", "2027-01-01T00:00:00")
    listing = (await csms("token", "list")).splitlines()
    assert listing == [
        "Card-1\tBlocked\tgroup=FLEET\t-",
        "Lease\tAccepted\tgroup=-\t2027-01-01T00:00:00+00:00",
    ]
    conn = await asyncpg.connect(database_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM id_tokens") == 2
    finally:
        await conn.close()


async def test_csms_demo_runs_a_simulated_fleet_and_stops_by_itself(database_dsn: str) -> None:
    # DATABASE_URL in the environment is ignored by the demo; --database-url is used.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "demo", "--chargers", "8", "--speed", "900",
        "--duration", "1800", "--host", "127.0.0.1", "--port", "0", "--no-kafka",
        "--database-url", database_dsn,
        env={**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert "/#key=csms_" in text and "chargers: 8" in text, text
    assert "db." not in err.decode()  # the CSMS's log lines went to the demo's log file
    conn = await asyncpg.connect(database_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM chargers") == 8
        assert await conn.fetchval(
            "SELECT group_id FROM id_tokens WHERE id_token = 'FLEET-001'"
        ) == ("FLEET")
    finally:
        await conn.close()
