"""The CSMS process freezes its start-up heap and collects the young generation less often."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator

import pytest

from csms import gc_tuning
from csms.config import Settings


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()  # the test process's objects go back to being collected


def test_the_start_up_heap_is_frozen_and_no_longer_scanned(restore_gc: None) -> None:
    alive = [[n] for n in range(1000)]  # containers alive at "start-up"
    frozen = gc_tuning.freeze_start_up_heap(Settings())
    assert frozen >= len(alive)
    scanned = gc.get_objects()  # every generation a collection scans (not the frozen one)
    assert not any(o is alive or o is alive[0] for o in scanned), "frozen: never scanned"


def test_freezing_can_be_turned_off(restore_gc: None) -> None:
    gc.unfreeze()
    assert gc_tuning.freeze_start_up_heap(dataclasses.replace(Settings(), gc_freeze=False)) == 0
    assert gc.get_freeze_count() == 0


def test_the_young_generation_threshold_is_applied(restore_gc: None) -> None:
    _, older1, older2 = gc.get_threshold()
    gc_tuning.apply_thresholds(dataclasses.replace(Settings(), gc_gen0_threshold=12_345))
    assert gc.get_threshold() == (12_345, older1, older2)
