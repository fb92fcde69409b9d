"""``csms`` command line.

``csms [serve]`` runs the server, ``csms migrate`` updates the schema, and
``csms token add|list`` manages the id tokens chargers are authorized against.

Every flag has an environment variable (see :mod:`csms.config`); a flag wins.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from csms import event_loop
from csms.app import Csms
from csms.config import LogFormat, Settings, UnknownChargerPolicy
from csms.logs import configure_logging
from csms.outbox import commands as kafka_commands
from csms.storage import api_keys, tokens
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
    "--kafka-bootstrap-servers": (
        "kafka_bootstrap_servers",
        str,
        "Kafka host:port,... (KAFKA_BOOTSTRAP_SERVERS); unset: relay off",
    ),
    "--api-port": ("api_port", int, "operator HTTP API port (CSMS_API_PORT, default 8080)"),
    "--workers": (
        "workers",
        int,
        "worker processes sharing the ports (CSMS_WORKERS, default 1; docs/workers.md)",
    ),
    "--drain-seconds": (
        "drain_seconds",
        float,
        "on SIGTERM, close chargers spread over this many seconds (CSMS_DRAIN_SECONDS, 10)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csms", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    for flag, (field, kind, help_text) in _FLAGS.items():
        # SUPPRESS: an absent flag sets nothing, so a subcommand's parser cannot
        # overwrite a flag given before the subcommand with its default.
        common.add_argument(flag, dest=field, type=kind, default=argparse.SUPPRESS, help=help_text)
    common.add_argument(
        "--api-tls",
        dest="api_tls",
        action="store_const",
        const=True,
        default=argparse.SUPPRESS,
        help="HTTPS on the API port with CSMS_TLS_CERT_FILE/KEY_FILE (CSMS_API_TLS=true)",
    )
    common.add_argument(
        "--kafka",
        dest="kafka_embedded",
        type=_kafka_mode,
        default=argparse.SUPPRESS,
        metavar="embedded",
        help="start a Kafka-protocol broker on this machine (CSMS_KAFKA_EMBEDDED=true)",
    )
    common.add_argument(
        "--no-migrate",
        dest="migrate_on_start",
        action="store_const",
        const=False,
        default=argparse.SUPPRESS,
        help="do not apply migrations at start-up (CSMS_MIGRATE_ON_START=false)",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", parents=[common], help="run the CSMS (the default)")
    commands.add_parser("migrate", parents=[common], help="apply database migrations and exit")
    kafka_commands.add_commands(commands, common)
    token = commands.add_parser("token", help="manage id tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    add = token_commands.add_parser(
        "add", parents=[common], help="add a token, or change an existing one"
    )
    add.add_argument("id_token")
    add.add_argument("--status", choices=TOKEN_STATUSES, default="Accepted")
    add.add_argument("--group", help="group (1.6 parentIdTag, 2.0.1 groupIdToken)")
    add.add_argument("--expires", type=_timestamp, help="expiry, ISO 8601 (UTC if no offset)")
    token_commands.add_parser("list", parents=[common], help="list all tokens")
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="the CSMS with a simulated fleet, a site, tariffs and Kafka, until Ctrl-C",
    )
    demo.add_argument("--chargers", type=int, default=12, help="simulated chargers (12, >= 8)")
    demo.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second (60)"
    )
    demo.add_argument(
        "--duration", type=float, default=None, help="stop after this many simulated seconds"
    )
    demo.add_argument("--no-kafka", action="store_true", help="no embedded Kafka broker")
    demo.add_argument("--verbose", action="store_true", help="log to the console (default: a file)")
    demo.add_argument(
        "--keep-data", action="store_true", help="keep the temporary data folder at the end"
    )
    api_key = commands.add_parser("api-key", help="manage operator API keys")
    api_key_commands = api_key.add_subparsers(dest="api_key_command", required=True)
    create = api_key_commands.add_parser(
        "create", parents=[common], help="issue a key (printed once, stored hashed)"
    )
    create.add_argument("--role", choices=api_keys.ROLES, required=True)
    create.add_argument("--name", default="cli", help="who or what the key is for")
    api_key_commands.add_parser("list", parents=[common], help="list keys (no secrets)")
    revoke = api_key_commands.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("key_id", type=int)
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


TOKEN_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid")


def _kafka_mode(raw: str) -> bool:
    if raw != "embedded":
        raise argparse.ArgumentTypeError(
            "the only mode is 'embedded'; an external Kafka is --kafka-bootstrap-servers"
        )
    return True


def _timestamp(raw: str) -> datetime:
    moment = datetime.fromisoformat(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _token(settings: Settings, args: argparse.Namespace) -> int:
    dsn = await resolve_dsn(settings)
    if settings.migrate_on_start:
        await run_migrations(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        if args.token_command == "add":
            await tokens.upsert(conn, args.id_token, args.status, args.expires, args.group)
            print(f"token {args.id_token}: {args.status}")
        else:
            for token in await tokens.all_tokens(conn):
                expires = token.expires_at.isoformat() if token.expires_at else "-"
                print(f"{token.id_token}\t{token.status}\tgroup={token.group_id or '-'}\t{expires}")
    finally:
        await conn.close()
    return 0


async def _api_key(settings: Settings, args: argparse.Namespace) -> int:
    dsn = await resolve_dsn(settings)
    if settings.migrate_on_start:
        await run_migrations(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        if args.api_key_command == "create":
            key, secret = await api_keys.create(conn, args.name, args.role)
            print(secret)
            print(f"(id {key.id}, role {key.role}; shown once, stored hashed)", file=sys.stderr)
        elif args.api_key_command == "list":
            for key in await api_keys.list_all(conn):
                state = f"revoked {key.revoked_at.isoformat()}" if key.revoked_at else "active"
                print(f"{key.id}\t{key.key_prefix}...\t{key.role}\t{key.name}\t{state}")
        elif not await api_keys.revoke(conn, args.key_id):
            print(f"csms: no active API key with id {args.key_id}", file=sys.stderr)
            return 1
    finally:
        await conn.close()
    return 0


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
    if args.command == "token":
        return asyncio.run(_token(settings, args))
    if args.command in kafka_commands.COMMANDS:
        return kafka_commands.run_command(settings, args)
    if args.command == "api-key":
        return asyncio.run(_api_key(settings, args))
    if args.command == "demo":
        return _demo(settings, args)
    if settings.workers > 1:
        if settings.kafka_embedded:
            print(
                "csms: --kafka embedded runs with --workers 1 (the broker lives in one "
                "process); with several workers set KAFKA_BOOTSTRAP_SERVERS to a broker",
                file=sys.stderr,
            )
            return 2
        from csms.supervisor import run_supervisor

        return run_supervisor(settings, settings.node_id or None)  # named: <name>-<n>
    try:
        if settings.kafka_embedded:
            from csms.outbox.embedded import serve_with_embedded_kafka

            event_loop.run(
                serve_with_embedded_kafka(settings, lambda s: Csms(s).run()), settings.event_loop
            )
        else:  # one process: no supervisor in between
            event_loop.run(Csms(settings).run(), settings.event_loop)
    except KeyboardInterrupt:
        pass
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    """``csms demo``: its own data folder and log file; see :mod:`csms.demo`."""
    from csms.demo import DemoOptions, prepare_settings, remove_data, run_demo

    explicit = vars(args)
    settings, temporary = prepare_settings(
        settings, explicit.get("data_dir"), explicit.get("database_url")
    )
    log_file = None if args.verbose else settings.data_dir / "csms-demo.log"
    configure_logging(settings.log_format, settings.log_level, log_file)
    options = DemoOptions(
        chargers=args.chargers, speed=args.speed, duration=args.duration, kafka=not args.no_kafka
    )
    try:
        asyncio.run(run_demo(settings, options))
    except ValueError as error:
        print(f"csms demo: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        if temporary and not args.keep_data:
            remove_data(settings)
        elif log_file is not None:
            print(f"csms demo: data and log kept in {settings.data_dir}")
    return 0
