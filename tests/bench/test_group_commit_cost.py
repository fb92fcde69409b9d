"""bench.group_commit_cost counts the statements a batch of 2.0.1 updates sends."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bench import group_commit_cost


async def test_a_lone_update_is_one_statement(
    database_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(sizes=[1, 4], seconds=0.3, kind="update")
    await group_commit_cost.measure(args, database_dsn, tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("size")]
    statements = [float(re.search(r"([0-9.]+) statements", line)[1]) for line in lines]  # type: ignore[index]
    # One round trip per batch (d587ece: BEGIN, three statements, COMMIT); a round of
    # one charger is one batch, of four one or two (the chargers hash to two lanes).
    assert len(statements) == 2
    assert statements[0] == pytest.approx(1.0, abs=0.1)
    assert 0.2 <= statements[1] <= 0.6


async def test_ends_share_a_statement_and_billing_adds_two(
    database_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(sizes=[1, 4], seconds=0.5, kind="end")
    await group_commit_cost.measure(args, database_dsn, tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("size")]
    statements = [float(re.search(r"([0-9.]+) statements", line)[1]) for line in lines]  # type: ignore[index]
    # A lone end: its statement, billing's read and billing's write (c2e4d01: BEGIN, the
    # end, the read, the write, COMMIT); four ends: one or two statements for the four,
    # then billing's two each (a connection's first use of a type adds asyncpg's query).
    assert 2.9 <= statements[0] <= 3.5
    assert 2.1 <= statements[1] <= 2.8
    assert "CSMS" in lines[0] and "Postgres" in lines[0]
