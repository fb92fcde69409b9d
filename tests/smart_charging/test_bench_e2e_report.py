"""The e2e benchmark's report says which figures ran end to end and pairs the days."""

from __future__ import annotations

from bench.smart_charging_e2e_runs import LevelResult, PolicyResult, level_line, paired_lines
from bench.smart_charging_quality import Row


def _level() -> LevelResult:
    fair, llf = PolicyResult(), PolicyResult()
    fair.days, llf.days = [98.0, 97.0, 96.5], [97.5, 97.5, 96.0]
    fair.row.optimum_pct, llf.row.optimum_pct = 97.17, 97.0
    pure = {"allocator": Row(), "EDF": Row(), "LLF": Row()}
    pure["LLF"].optimum_pct = 99.8
    return LevelResult({"fair": fair, "llf": llf}, pure)


def test_the_level_line_keeps_end_to_end_and_pure_figures_apart() -> None:
    line = level_line(10, _level())
    e2e, pure = line.split("; pure, without the CSMS: ")
    assert "service 97.2% of optimum (LLF e2e 97.0%)" in e2e
    assert "LLF 99.80%" in pure and "99.8" not in e2e


def test_the_lead_is_paired_day_by_day() -> None:
    (line,) = paired_lines(10, _level())
    assert "per day +0.50 / -0.50 / +0.50" in line
    assert "mean +0.17 ± 0.33" in line
    assert "behind on 1 of 3 days" in line
