"""The ``csms kafka-init`` and ``csms consume`` subcommands (wired in :mod:`csms.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from csms.config import Settings

COMMANDS = ("kafka-init", "consume")


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    init = commands.add_parser(
        "kafka-init", parents=[common], help="create the Kafka topics (idempotent)"
    )
    init.add_argument("--partitions", type=int, default=6, help="partitions per topic (6)")
    init.add_argument("--replication-factor", type=int, default=1, help="replicas per topic (1)")
    consume = commands.add_parser(
        "consume", parents=[common], help="print a topic live (station-status: a table)"
    )
    consume.add_argument(
        "topic_name", nargs="?", default=None, metavar="TOPIC", help="topic (station-status)"
    )
    consume.add_argument("--topic", default=None, help="the same, as an option")
    consume.add_argument("--group", default=None, help="consumer group (none: read all)")
    consume.add_argument(
        "--latest", action="store_true", help="only new events (default: from the beginning)"
    )
    consume.add_argument("--seconds", type=float, default=None, help="stop after this long")


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "consume" and not settings.kafka_bootstrap_servers:
        # The broker of `csms demo` / `csms --kafka embedded` on this machine.
        settings = dataclasses.replace(
            settings, kafka_bootstrap_servers=f"127.0.0.1:{settings.kafka_embedded_port}"
        )
        print(
            f"csms: KAFKA_BOOTSTRAP_SERVERS unset; reading {settings.kafka_bootstrap_servers}",
            file=sys.stderr,
        )
    if not settings.kafka_bootstrap_servers:
        print("csms: set KAFKA_BOOTSTRAP_SERVERS (or --kafka-bootstrap-servers)", file=sys.stderr)
        return 2
    if args.command == "kafka-init":
        from csms.outbox.admin import init_topics

        try:
            lines = asyncio.run(init_topics(settings, args.partitions, args.replication_factor))
        except RuntimeError as error:
            print(f"csms: kafka-init failed:\n{error}", file=sys.stderr)
            return 1
        print("\n".join(lines))
        return 0
    from csms.outbox.consume import consume

    try:
        asyncio.run(
            consume(
                settings,
                args.topic_name or args.topic or settings.kafka_topic_station_status,
                from_beginning=not args.latest,
                group_id=args.group,
                max_seconds=args.seconds,
            )
        )
    except KeyboardInterrupt:
        pass
    return 0
