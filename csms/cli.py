"""``csms`` command line: ``csms [serve]`` runs the server, ``csms migrate`` updates the schema.

Every flag has an environment variable (see :mod:`csms.config`); a flag wins.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from csms.app import Csms
from csms.config import LogFormat, Settings, UnknownChargerPolicy
from csms.logs import configure_logging
from csms.storage.database import resolve_dsn, run_migrations

# flag -> Settings field; the flag's type comes from the field.
_FLAGS: dict[str, tuple[str, type, str]] = {
    "--host": ("host", str, "interface to listen on (CSMS_HOST, default 0.0.0.0)"),
    "--port": ("port", int, "OCPP WebSocket port (CSMS_PORT, default 9000)"),
    "--path-prefix": ("ocpp_path_prefix", str, "URL path before the charger id (default /ocpp)"),
    "--data-dir": ("data_dir", Path, "embedded Postgres folder (CSMS_DATA_DIR, ./.csms-data)"),
    "--database-url": ("database_url", str, "PostgreSQL DSN (DATABASE_URL); none: embedded"),
    "--log-format": ("log_format", LogFormat, "json or console (CSMS_LOG_FORMAT)"),
    "--log-level": ("log_level", str, "debug, info, warning (CSMS_LOG_LEVEL)"),
    "--unknown-chargers": (
        "unknown_charger_policy",
        UnknownChargerPolicy,
        "accept, pending or reject (CSMS_UNKNOWN_CHARGER_POLICY, default accept)",
    ),
    "--heartbeat-interval": ("heartbeat_interval", int, "seconds (CSMS_HEARTBEAT_INTERVAL)"),
    "--max-message-size": ("max_message_size", int, "bytes (CSMS_MAX_MESSAGE_SIZE)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csms", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    for flag, (field, kind, help_text) in _FLAGS.items():
        common.add_argument(flag, dest=field, type=kind, default=None, help=help_text)
    common.add_argument(
        "--no-migrate",
        dest="migrate_on_start",
        action="store_const",
        const=False,
        default=None,
        help="do not apply migrations at start-up (CSMS_MIGRATE_ON_START=false)",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", parents=[common], help="run the CSMS (the default)")
    commands.add_parser("migrate", parents=[common], help="apply database migrations and exit")
    # `csms --port 9100` without a command means serve.
    for action in common._actions:
        parser._add_action(action)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Settings)
        if getattr(args, f.name, None) is not None
    }
    return dataclasses.replace(settings, **overrides)


async def _migrate(settings: Settings) -> int:
    started = time.perf_counter()
    applied = await run_migrations(await resolve_dsn(settings))
    print(f"migrations applied: {applied} ({time.perf_counter() - started:.2f}s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as error:
        print(f"csms: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    try:
        asyncio.run(Csms(settings).run())
    except KeyboardInterrupt:
        pass
    return 0
