"""Reading settings from the environment: each variable's name, its parsing and validation.

:class:`csms.config.Settings` holds the settings; this turns the text of a
``CSMS_*`` variable (or ``DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS``) into the
value of its field, refusing a bad one with a message that names the variable.
"""

from __future__ import annotations

from pathlib import Path

from csms.config_types import EventLoopChoice, LogFormat, UnknownChargerPolicy
from csms.security.proxy import parse_networks

_OWN_NAMES = {
    "database_url": "DATABASE_URL",
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",  # the name Kafka tools use
}


def env_name(field: str) -> str:
    """The environment variable of a setting: ``CSMS_<FIELD>``, or its own name."""
    return _OWN_NAMES.get(field, f"CSMS_{field.upper()}")


def parse(field: str, raw: str) -> object:
    """Convert one environment value to the type of its setting, or raise ValueError."""
    if field in {"port", "heartbeat_interval", "boot_retry_interval", "max_message_size"}:
        return _positive_int(field, raw)
    if field in {"api_max_body_bytes", "api_db_pool_max"}:
        return _positive_int(field, raw)
    if field == "concurrent_tx_window_hours":
        value = float(raw)
        if value < 0:
            raise ValueError(f"{env_name(field)} must be 0 (off) or a number of hours")
        return value
    if field in {"db_statement_timeout", "db_acquire_timeout"}:
        return _seconds(field, raw)
    if field in {"group_commit_window_ms", "loop_stall_trace_ms"}:
        value = float(raw)
        if not value >= 0:
            raise ValueError(f"{env_name(field)} must be 0 (off) or a number of milliseconds")
        return value
    if field == "group_commit_max_batch":
        return _positive_int(field, raw)
    if field == "authorize_cache_seconds":
        value = float(raw)
        if value < 0:
            raise ValueError(f"{env_name(field)} must be 0 (off) or a number of seconds")
        return value
    if field in {"history_retention_days", "loop_lag_warn_ms"}:
        return _positive_float(field, raw)
    if field == "trusted_proxies":
        parse_networks(raw)  # refuse a typo at start-up, not at the first connection
        return raw
    if field in {"api_body_timeout", "api_request_timeout"}:
        return _seconds(field, raw)
    if field in {"db_pool_min", "db_pool_max", "outbox_batch_size", "workers"}:
        return _positive_int(field, raw)
    if field == "drain_seconds":
        value = float(raw)
        if not value >= 0:
            raise ValueError(f"{env_name(field)} must be 0 (all at once) or more seconds")
        return value
    if field in {"node_lease_seconds", "cluster_command_retention_hours"}:
        return _positive_float(field, raw)
    if field == "outbox_retention_hours":
        return _positive_float(field, raw)
    if field in {"security_profile_min", "tls_port", "auth_failure_limit"}:
        return _int_in_range(field, raw, 0, 3 if field == "security_profile_min" else 65535)
    if field in {
        "tls_cert_file",
        "tls_key_file",
        "tls_ca_file",
        "tls_second_cert_file",
        "tls_second_key_file",
    }:
        return Path(raw)
    if field in {"auth_failure_window", "auth_block_seconds"}:
        return _seconds(field, raw)
    if field.startswith("smart_charging_"):
        return _positive_float(field, raw)
    if field.startswith("monitoring_"):
        if field == "monitoring_webhook_max_attempts":
            return _positive_int(field, raw)
        return _positive_float(field, raw)
    if field.startswith("alerts_"):
        return _alerts_setting(field, raw)
    if field.startswith("billing_"):
        return _billing_setting(field, raw)
    if field in {"ping_interval", "ping_timeout"}:
        return None if raw.lower() in {"0", "none", "off"} else float(raw)
    if field in {"response_timeout", "last_seen_flush_interval"}:
        return float(raw)
    if field == "api_port":
        port = int(raw)
        if not 0 <= port <= 65535:
            raise ValueError(f"{env_name(field)} must be a port number, got {raw!r}")
        return port
    if field in {"api_tls", "reuse_port", "proxy_protocol", "ws_compression", "gc_freeze"}:
        return _bool(field, raw)
    if field == "group_commit_adaptive":
        return _bool(field, raw)
    if field in {"connect_concurrency", "gc_gen0_threshold", "setup_db_connections"}:
        return _positive_int(field, raw)
    if field == "ws_handshake_timeout":
        return _positive_float(field, raw)
    if field == "post_boot_spread_seconds":  # 0: probe at once
        spread = float(raw)
        if not spread >= 0:
            raise ValueError(f"{env_name(field)} must be 0 or more seconds, got {raw!r}")
        return spread
    if field == "kafka_embedded":
        return raw.strip().lower() == "embedded" or _bool(field, raw)
    if field == "kafka_embedded_port":
        return _int_in_range(field, raw, 1, 65535)
    if field == "migrate_on_start":
        return _bool(field, raw)
    if field == "data_dir":
        return Path(raw)
    if field == "certificates_contract_provider":
        return raw
    if field.startswith("certificates_") and field.endswith("_file"):
        return Path(raw)
    if field == "uploads_max_bytes":
        return _positive_int(field, raw)
    if field in {"uploads_valid_hours", "firmware_campaign_interval"}:
        return _positive_float(field, raw)
    if field.startswith("certificates_"):
        return _positive_float(field, raw)
    if field == "log_format":
        return LogFormat(raw.lower())
    if field == "event_loop":
        return EventLoopChoice(raw.strip().lower())
    if field == "unknown_charger_policy":
        return UnknownChargerPolicy(raw.lower())
    return raw


def _positive_int(field: str, raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{env_name(field)} must be a positive integer, got {raw!r}")
    return value


def _positive_float(field: str, raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(f"{env_name(field)} must be a positive number, got {raw!r}")
    return value


def _bool(field: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{env_name(field)} must be true or false, got {raw!r}")


def _int_in_range(field: str, raw: str, low: int, high: int) -> int:
    value = int(raw)
    if not low <= value <= high:
        raise ValueError(f"{env_name(field)} must be between {low} and {high}, got {raw!r}")
    return value


def _billing_setting(field: str, raw: str) -> object:
    if field == "billing_default_currency":
        return raw.strip().upper()
    if field == "billing_max_power_w":
        return _positive_float(field, raw)
    return _off_or_seconds(field, raw)  # an interval; 0 turns it off


def _seconds(field: str, raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(f"{env_name(field)} must be a positive number of seconds, got {raw!r}")
    return value


def _off_or_seconds(field: str, raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError(f"{env_name(field)} must be 0 (off) or a number of seconds")
    return value


def _alerts_setting(field: str, raw: str) -> object:
    if field == "alerts_enabled":
        return _bool(field, raw)
    if field == "alerts_evidence_cap":
        return _positive_int(field, raw)
    if field == "alerts_clock_skew_max":
        return _off_or_seconds(field, raw)
    return _positive_float(field, raw)
