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
