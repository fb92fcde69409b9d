"""``csms demo``: a bounded, accelerated run shows what the system is for."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from csms.config import Settings
from csms.demo import DemoOptions, prepare_settings, run_demo
from csms.demo.console import DemoState, render
from csms.outbox.embedded import free_port


async def test_the_first_simulated_hour_has_a_priced_cdr_a_throttled_session_and_an_alert(
    database_dsn: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        Settings(),
        host="127.0.0.1",
        port=0,
        api_port=0,
        database_url=database_dsn,
        migrate_on_start=False,
        data_dir=tmp_path,
        alerts_clock_skew_max=0.0,
        kafka_embedded_port=free_port(),
    )
    out = io.StringIO()
    state = await run_demo(
        settings, DemoOptions(chargers=8, speed=120.0, duration=3600.0, refresh_s=0.5), out
    )
    console = out.getvalue()
    assert "/#key=csms_" in console and "?key=" not in console  # one click, key in the fragment
    assert "/api/v1/docs" in console and "/ocpp/<charge_point_id>" in console
    assert state.priced_cdrs >= 1, console
    assert any(cdr["total_tax"] and float(cdr["total_tax"]) > 0 for cdr in state.cdrs.values())
    assert state.throttled, console  # a depot session was held below its 32 A
    assert state.alerts_seen, console
    rules = set(state.alerts_seen.values())
    assert "connector_faulted" in rules, console  # the faulted connector
    assert rules & {"temperature_high", "temperature_rising_fast"}, console  # the drift
    assert state.kafka_events and state.kafka_events > 0, console
    assert "revenue" in console and "depot load" in console


def test_the_demo_never_uses_the_default_data_folder_or_the_environments_database() -> None:
    settings = dataclasses.replace(Settings(), database_url="postgresql://prod/csms")
    demo, temporary = prepare_settings(settings, None, None)
    try:
        assert temporary and demo.data_dir != Path(".csms-data") and demo.data_dir.is_dir()
        assert demo.database_url is None  # the embedded database in the demo's folder
    finally:
        demo.data_dir.rmdir()
    kept, temporary = prepare_settings(settings, Path("/tmp/x"), None)
    assert not temporary and kept.data_dir == Path("/tmp/x")


def test_the_summary_shows_load_against_the_limit_revenue_and_alerts() -> None:
    state = DemoState(
        sim_seconds=3720, chargers=12, online=11, active_sessions=5, site_limit_a=50.0,
        site_measured_a=(48.0, 48.0, 47.0), throttled_now=3, throttled={"a/1", "b/2"},
        cdrs={1: {"id": 1, "total_cost": "12.50", "currency": "EUR"}},
        open_alerts=1, alerts_seen={7: "connector_faulted"}, kafka_events=40,
    )  # fmt: skip
    text = "\n".join(render(state))
    assert "1h02m" in text and "11/12 online" in text
    assert "32.9 kW drawn of 34.5 kW" in text and "3 sessions throttled now, 2 so far" in text
    assert "12.50 EUR" in text and "1 open, 1 raised (connector_faulted)" in text
