"""The ``csms-sim`` CLI: argument handling, and short bounded runs against the real CSMS."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from charge_point_sim.cli import build_parser, config_from_args, main


def test_cli_flags_map_to_fleet_config(tmp_path: object) -> None:
    schedule = tmp_path / "schedule.json"  # type: ignore[operator]
    schedule.write_text(json.dumps([{"at": 5, "charger": 1, "id_tag": "A"}, {"at": 1}]))
    args = build_parser().parse_args(
        [
            "--chargers", "10", "--v201-share", "0.3", "--connectors", "3", "--seed", "4",
            "--speed", "60", "--duration", "600", "--password", "pw", "--id-tag", "T1",
            "--schedule", str(schedule), "--fault", "faulted@10:charger=2,code=OverCurrentFailure",
            "--quiet",
        ]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert (cfg.chargers, cfg.connectors, cfg.seed, cfg.speed) == (10, 3, 4, 60.0)
    assert cfg.password == "pw" and list(cfg.id_tags) == ["T1"] and not cfg.progress
    assert [a.at for a in cfg.schedule] == [1.0, 5.0]
    assert cfg.faults[0].code == "OverCurrentFailure" and cfg.faults[0].charger == 2
    assert sum(cfg.is_v201(i) for i in range(10)) == 3


def test_cli_defaults_are_bounded() -> None:
    cfg = config_from_args(build_parser().parse_args(["--chargers", "50"]))
    assert cfg.duration == 3600.0 and cfg.sessions is None
    assert cfg.duration / cfg.speed <= 180  # at most a few minutes of real time
    # Arrivals start sessions within the default window: ~1 per connector per hour.
    assert cfg.arrival_rate * cfg.duration / 3600 >= 1
    only_sessions = config_from_args(build_parser().parse_args(["--sessions", "5"]))
    assert (only_sessions.duration, only_sessions.sessions) == (None, 5)
    unbounded = config_from_args(build_parser().parse_args(["--duration", "0", "--sessions", "2"]))
    assert (unbounded.duration, unbounded.sessions) == (None, 2)
    with pytest.raises(SystemExit):
        config_from_args(build_parser().parse_args(["--duration", "0"]))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """main() quiets the ocpp logger for its run; give the other tests theirs back."""
    level = logging.getLogger("ocpp").level
    yield
    logging.getLogger("ocpp").setLevel(level)


def _run(csms: Any, *flags: str) -> list[str]:
    base = ["--url", csms.ocpp_url, "--quiet", "--id-prefix", "CLI-"]
    return [*base, *flags]


def _numbers(pattern: str, out: str) -> list[float]:
    """The groups of ``pattern``'s first match in the printed summary, as numbers."""
    found = re.search(pattern, out)
    assert found is not None, f"{pattern!r} not in:\n{out}"
    return [float(g) for g in found.groups()]


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.usefixtures("restore_logging")
async def test_cli_run_prints_sessions_energy_and_refused_tokens(
    csms: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    await csms.add_token("GOOD")
    argv = _run(
        csms,
        *("--chargers", "4", "--duration", "1800", "--speed", "1800", "--arrival-rate", "6"),
        *("--id-tag", "GOOD", "--id-tag", "BAD"),
    )
    assert await asyncio.to_thread(main, argv) == 0  # main() runs its own event loop
    out = capsys.readouterr().out
    [simulated] = _numbers(r"^chargers: 4 +simulated: (\d+) s", out)
    assert 1800 <= simulated < 2400
    started, completed = _numbers(r"sessions: (\d+) started, (\d+) completed", out)
    assert started > 0 and completed == started  # the end of the run stops every session
    refused, invalid = _numbers(r"auth rejected: (\d+) \(Invalid=(\d+)\)", out)
    assert refused == invalid > 0
    [energy] = _numbers(r"energy: +([0-9.]+) kWh", out)
    assert energy > 0
    assert "hint:" not in out
    # Only GOOD reached the CSMS as a transaction; BAD stopped at Authorize.
    tokens = await csms.pool.fetch("SELECT DISTINCT id_token FROM sessions")
    assert [r["id_token"] for r in tokens] == ["GOOD"]
    assert await csms.pool.fetchval("SELECT count(*) FROM sessions") == started


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.usefixtures("restore_logging")
async def test_cli_explains_a_csms_that_knows_no_tokens(
    csms: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _run(csms, "--chargers", "2", "--duration", "900", "--speed", "1800")
    argv += ["--arrival-rate", "12"]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "sessions: 0 started" in out
    assert re.search(r"auth rejected: [1-9]\d* \(Invalid=", out)
    assert "hint: the CSMS refused every authorization" in out and "SIMTAG" in out
    assert await csms.pool.fetchval("SELECT count(*) FROM sessions") == 0
    summary = await asyncio.to_thread(main, [*argv, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert summary == 0 and data["auth_rejected"]["Invalid"] > 0
