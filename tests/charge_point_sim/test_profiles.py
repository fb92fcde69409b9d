"""Charging-profile stacking and composite schedules against hand-worked examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from charge_point_sim.profiles import (
    Limit,
    ProfileStack,
    Purpose,
    TxContext,
    composite_schedule,
    limit_at,
    parse_v16,
    parse_v201,
)

T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
H = 3600


def v16_profile(
    pid: int,
    level: int,
    purpose: str,
    periods: list[tuple[int, float]],
    unit: str = "A",
    kind: str = "Absolute",
    start: datetime | None = T0,
    duration: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A 1.6 csChargingProfiles dict in the snake_case form the ocpp library delivers."""
    sched: dict[str, Any] = {
        "charging_rate_unit": unit,
        "charging_schedule_period": [{"start_period": s, "limit": x} for s, x in periods],
    }
    if start is not None:
        sched["start_schedule"] = start.isoformat()
    if duration is not None:
        sched["duration"] = duration
    return {
        "charging_profile_id": pid,
        "stack_level": level,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": kind,
        "charging_schedule": sched,
        **extra,
    }


def spec_like_stack() -> ProfileStack:
    """OCPP 1.6 §3.13.5-style example: a max profile, TxDefault at two levels, a TxProfile.

    * ChargePointMaxProfile (connector 0): 50 A, but 16 A from 18:00 to 22:00.
    * TxDefaultProfile level 0 (connector 0): 32 A all day.
    * TxDefaultProfile level 1 (connector 0): 10 A from 08:00 for 10 h.
    * TxProfile (connector 1, Relative to the transaction start): 20 A, 6 A after
      1 h, for 2 h in total.
    """
    stack = ProfileStack()
    assert stack.install(
        parse_v16(
            v16_profile(1, 0, "ChargePointMaxProfile", [(0, 50), (18 * H, 16), (22 * H, 50)]), 0
        )
    )
    assert stack.install(parse_v16(v16_profile(2, 0, "TxDefaultProfile", [(0, 32)]), 0))
    assert stack.install(
        parse_v16(
            v16_profile(
                3, 1, "TxDefaultProfile", [(0, 10)], start=T0 + timedelta(hours=8), duration=10 * H
            ),
            0,
        )
    )
    assert stack.install(
        parse_v16(
            v16_profile(
                4, 0, "TxProfile", [(0, 20), (H, 6)], kind="Relative", start=None, duration=2 * H
            ),
            1,
        )
    )
    return stack


def periods(out: list[Any]) -> list[tuple[int, float]]:
    return [(p.start, p.limit) for p in out]


def test_composite_with_transaction_matches_hand_worked_example() -> None:
    stack = spec_like_stack()
    tx = TxContext("42", T0 + timedelta(hours=7))
    out = composite_schedule(stack.profiles, 1, T0, 24 * H, "A", tx)
    # 00-07 TxDefault L0 32 A; 07-08 TxProfile 20 A; 08-09 TxProfile 6 A (beats TxDefault L1);
    # 09-18 TxDefault L1 10 A; 18-22 TxDefault L0 32 A capped by max 16 A; 22-24 32 A.
    assert periods(out) == [
        (0, 32),
        (7 * H, 20),
        (8 * H, 6),
        (9 * H, 10),
        (18 * H, 16),
        (22 * H, 32),
    ]
    assert all(p.phases == 3 for p in out)


def test_composite_without_transaction_ignores_tx_profile() -> None:
    stack = spec_like_stack()
    out = composite_schedule(stack.profiles, 2, T0, 24 * H, "A")
    assert periods(out) == [(0, 32), (8 * H, 10), (18 * H, 16), (22 * H, 32)]


def test_composite_in_watts_and_mixed_units() -> None:
    stack = ProfileStack()
    stack.install(parse_v16(v16_profile(1, 0, "ChargePointMaxProfile", [(0, 11000)], unit="W"), 0))
    stack.install(parse_v16(v16_profile(2, 0, "TxDefaultProfile", [(0, 32), (H, 10)]), 0))
    amps = composite_schedule(stack.profiles, 1, T0, 2 * H, "A")
    # 11 kW / (230 V x 3) = 15.9 A caps 32 A; later 10 A (6.9 kW) is below the cap.
    assert periods(amps) == [(0, 15.9), (H, 10)]
    watts = composite_schedule(stack.profiles, 1, T0, 2 * H, "W")
    assert periods(watts) == [(0, 11000), (H, 6900)]


def test_limit_at_and_default_when_nothing_applies() -> None:
    assert limit_at([], 1, T0) is None
    out = composite_schedule([], 1, T0, H, "W", default=Limit(22000, 3))
    assert periods(out) == [(0, 22000)]


def test_recurring_daily_profile() -> None:
    stack = ProfileStack()
    stack.install(
        parse_v16(
            v16_profile(
                5,
                0,
                "TxDefaultProfile",
                [(0, 16), (6 * H, 32)],
                kind="Recurring",
                recurrency_kind="Daily",
                start=T0 - timedelta(days=3),
            ),
            1,
        )
    )
    start = T0 + timedelta(hours=3)
    out = composite_schedule(stack.profiles, 1, start, 24 * H, "A")
    assert periods(out) == [(0, 16), (3 * H, 32), (21 * H, 16)]


def test_validity_window_and_fall_through() -> None:
    stack = ProfileStack()
    stack.install(parse_v16(v16_profile(1, 0, "TxDefaultProfile", [(0, 32)]), 0))
    stack.install(
        parse_v16(
            v16_profile(
                2,
                5,
                "TxDefaultProfile",
                [(0, 8)],
                valid_from=(T0 + timedelta(hours=1)).isoformat(),
                valid_to=(T0 + timedelta(hours=2)).isoformat(),
            ),
            0,
        )
    )
    out = composite_schedule(stack.profiles, 1, T0, 3 * H, "A")
    assert periods(out) == [(0, 32), (H, 8), (2 * H, 32)]


def test_stack_rules_replace_and_clear() -> None:
    stack = ProfileStack()
    assert not stack.install(parse_v16(v16_profile(1, 0, "ChargePointMaxProfile", [(0, 1)]), 1))
    assert not stack.install(
        parse_v16(v16_profile(1, 0, "TxProfile", [(0, 1)]), 1), tx_active=False
    )
    assert stack.install(parse_v16(v16_profile(1, 0, "TxDefaultProfile", [(0, 10)]), 1))
    # Same purpose + stack level + connector replaces, even with another id.
    assert stack.install(parse_v16(v16_profile(2, 0, "TxDefaultProfile", [(0, 12)]), 1))
    assert [p.id for p in stack.profiles] == [2]
    assert stack.install(parse_v16(v16_profile(3, 1, "TxProfile", [(0, 6)]), 1))
    stack.end_transaction(1)
    assert [p.id for p in stack.profiles] == [2]
    assert not stack.clear(profile_id=99)
    assert stack.clear(purpose=Purpose.TX_DEFAULT, evse_id=1)
    assert stack.profiles == []


def test_v201_profile_station_max_and_tx_profile_for_transaction() -> None:
    def v201(pid: int, level: int, purpose: str, limit: float, **extra: Any) -> dict[str, Any]:
        return {
            "id": pid,
            "stack_level": level,
            "charging_profile_purpose": purpose,
            "charging_profile_kind": "Absolute",
            "charging_schedule": [
                {
                    "id": pid,
                    "start_schedule": T0.isoformat(),
                    "charging_rate_unit": "W",
                    "charging_schedule_period": [{"start_period": 0, "limit": limit}],
                }
            ],
            **extra,
        }

    stack = ProfileStack()
    assert stack.install(parse_v201(v201(1, 0, "ChargingStationMaxProfile", 7000), 0))
    assert stack.install(parse_v201(v201(2, 0, "TxDefaultProfile", 11000), 1))
    assert stack.install(parse_v201(v201(3, 0, "TxProfile", 4000, transaction_id="tx-a"), 1))
    now = T0 + timedelta(minutes=5)
    other = limit_at(stack.profiles, 1, now, TxContext("tx-b", T0))
    assert other is not None and other.watts == 7000  # TxProfile is for another tx
    mine = limit_at(stack.profiles, 1, now, TxContext("tx-a", T0))
    assert mine is not None and mine.watts == 4000


def test_an_amp_limit_caps_each_line_whatever_phases_the_profiles_assume() -> None:
    """14 A on three phases (TxProfile) under a 32 A single-phase maximum: 14 A on one line.

    Compared in watts (9.66 kW against 7.36 kW) the maximum would win and a single-phase EV
    would draw 32 A - what the end-to-end smart-charging benchmark caught.
    """
    maximum = v16_profile(1, 0, "ChargePointMaxProfile", [(0, 32.0)])
    maximum["charging_schedule"]["charging_schedule_period"][0]["number_phases"] = 1
    tx = v16_profile(2, 1, "TxProfile", [(0, 14.0)], kind="Relative", start=None)
    tx["charging_schedule"]["charging_schedule_period"][0]["number_phases"] = 3
    limit = limit_at([parse_v16(maximum, 0), parse_v16(tx, 1)], 1, T0, TxContext("t", T0))
    assert limit is not None
    assert (limit.amps, limit.phases, limit.watts) == (14.0, 1, 14.0 * 230.0)
