"""``csms kafka-init``: create the topics, idempotently.

Topics that exist are left as they are (their partitions and configs are
reported, not changed), so the command is safe to run on every deploy.
Retention and cleanup policy per topic come from :data:`~csms.outbox.topics.TOPIC_SPECS`.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

from csms.config import Settings
from csms.outbox.topics import TOPIC_SPECS, topic_names


async def init_topics(settings: Settings, partitions: int, replication_factor: int) -> list[str]:
    """Create missing topics; return one line per topic saying what was done."""
    assert settings.kafka_bootstrap_servers, "set KAFKA_BOOTSTRAP_SERVERS"
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, client_id="csms-kafka-init"
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = topic_names(settings)
        wanted = [
            NewTopic(names[topic], partitions, replication_factor, topic_configs=spec.configs())
            for topic, spec in TOPIC_SPECS.items()
            if names[topic] not in existing
        ]
        errors: dict[str, str] = {}
        if wanted:
            response = await admin.create_topics(wanted)
            for name, code, message in response.topic_errors:
                if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (a concurrent init)
                    errors[name] = f"error {code}: {message}"
        lines = []
        for topic, spec in TOPIC_SPECS.items():
            name = names[topic]
            configs = ", ".join(f"{k}={v}" for k, v in spec.configs().items())
            if name in errors:
                lines.append(f"{name}: FAILED ({errors[name]})")
            elif name in existing:
                lines.append(f"{name}: exists (left unchanged)")
            else:
                lines.append(
                    f"{name}: created (partitions={partitions}, "
                    f"replication_factor={replication_factor}, {configs})"
                )
        if errors:
            raise RuntimeError("\n".join(lines))
        return lines
    finally:
        await admin.close()
