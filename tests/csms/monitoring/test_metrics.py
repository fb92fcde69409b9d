"""GET /metrics: scraped over HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest
from ocpp.v16 import call as call16
from prometheus_client.parser import text_string_to_metric_families

from csms.connection import CallErrorReceived
from csms.monitoring import metrics
from tests.conftest import RunningCsms
from tests.ocpp_clients import charger_v16, raw_charger
from tests.waiting import eventually

BOOT16 = call16.BootNotification(charge_point_vendor="Acme", charge_point_model="W1")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(csms: RunningCsms) -> tuple[str, Samples]:
    base = csms.app.api_url.replace("://localhost", "://127.0.0.1").removesuffix("/api/v1")
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float:
    return samples.get((name, frozenset((labels or {}).items())), 0.0)


async def test_scrape_counts_messages_errors_latency_and_connections(csms: RunningCsms) -> None:
    _, before = await scrape(csms)
    async with charger_v16(csms.ocpp_url, "METRICS-CP-1") as cp:
        await cp.call(BOOT16)
        # After the boot the CSMS asks for the charger's rate units (csms.interop): the
        # library charger answers NotImplemented, which is recorded once counted.
        await eventually(
            lambda: csms.pool.fetchval(
                "SELECT count(*) FROM charger_unsupported_actions WHERE action = $1",
                "GetConfiguration",
            )
        )
        await cp.call(call16.Heartbeat())
        await cp.call(call16.Heartbeat())
        # The library charger handles no CSMS-initiated action: it answers with a CALLERROR.
        with pytest.raises(CallErrorReceived):
            await csms.router.call("METRICS-CP-1", call16.ClearCache())
        async with raw_charger(csms.ocpp_url, "METRICS-CP-2") as raw:
            await raw.exchange('[2, "x1", "NoSuchAction", {}]')
            await raw.exchange('[2, "x2", "Heartbeat", {"unexpected": 1}]')
            text, after = await scrape(csms)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, labels) - value(before, name, labels)

    node = csms.app.node_id  # connected chargers are per node: a sum over nodes counts each once
    assert value(after, "csms_chargers_connected", {"protocol": "ocpp1.6", "node": node}) == 2
    assert value(after, "csms_chargers_connected", {"protocol": "ocpp2.0.1", "node": node}) == 0

    def messages(direction: str, action: str, outcome: str) -> float:
        return delta(
            "csms_ocpp_messages_total", direction=direction, action=action, outcome=outcome
        )

    def call_errors(direction: str, code: str) -> float:
        return delta("csms_ocpp_call_errors_total", direction=direction, code=code)

    assert messages("in", "Heartbeat", "ok") == 2
    assert messages("in", "BootNotification", "ok") == 1
    assert messages("in", "unknown", "call_error") == 1
    assert messages("out", "ClearCache", "call_error") == 1
    assert call_errors("sent", "NotImplemented") == 1
    assert messages("out", "GetConfiguration", "call_error") == 1
    # The library names an unhandled action NotImplemented or NotSupported, by version.
    assert call_errors("received", "NotImplemented") + call_errors("received", "NotSupported") == 2
    assert delta("csms_ocpp_handler_seconds_count", action="Heartbeat") == 3
    assert delta("csms_db_write_seconds_count", operation="charger_booted") == 1
    assert delta("csms_db_write_seconds_count", operation="charger_connected") == 2
    # Bounded labels: no charger identity appears anywhere in the exposition.
    assert "METRICS-CP" not in text
    assert "csms_alerts_open" in text and "csms_sessions_active" in text


async def test_open_alerts_gauge_is_replaced_by_set_open_alerts(csms: RunningCsms) -> None:
    metrics.set_open_alerts({("critical", "test_rule_a"): 2, ("warning", "test_rule_b"): 1})
    metrics.set_open_alerts({("warning", "test_rule_b"): 3})
    _, samples = await scrape(csms)
    assert value(samples, "csms_alerts_open", {"severity": "critical", "rule": "test_rule_a"}) == 0
    assert value(samples, "csms_alerts_open", {"severity": "warning", "rule": "test_rule_b"}) == 3
    metrics.set_open_alerts({})


def test_labels_stay_bounded() -> None:
    assert metrics.bounded_action("Heartbeat", frozenset({"Heartbeat"})) == "Heartbeat"
    assert metrics.bounded_action("Made-Up-" * 5, frozenset({"Heartbeat"})) == "unknown"
    assert metrics.bounded_action(42, frozenset({"Heartbeat"})) == "unknown"
    assert metrics.bounded_code("FormationViolation") == "FormationViolation"
    assert metrics.bounded_code("VendorSpecificBoom") == "other"
