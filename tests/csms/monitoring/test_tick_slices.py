"""The alert engine's time-driven rules run over the fleet in slices (csms/monitoring)."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.monitoring.rules import Thresholds
from csms.monitoring.rules_engine import ChargerRuleState, FaultDetector


def test_a_slice_covers_only_its_chargers_and_skips_forgotten_ones() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    detector = FaultDetector()
    th = Thresholds()
    for name in ("A", "B", "C"):
        detector.chargers[name] = ChargerRuleState()
    # No recent boots: the reboot-loop rule reports each charger it looks at as clear.
    assert [cp for cp, _ in detector.tick(now, lambda _: th, ["A", "gone", "C"])] == ["A", "C"]
    assert sorted(cp for cp, _ in detector.tick(now, lambda _: th)) == ["A", "B", "C"]
