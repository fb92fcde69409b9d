"""Dataclasses built by their slots: equal to ``__init__``'s, and only for their exact fields."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from csms.slots import slot_setters


@dataclass(frozen=True, slots=True)
class Pair:
    left: int
    right: str


def test_an_object_built_by_its_slots_equals_the_one_init_builds() -> None:
    set_left, set_right = slot_setters(Pair, ("left", "right"))
    built = Pair.__new__(Pair)
    set_left(built, 1)
    set_right(built, "r")
    assert built == Pair(1, "r")


@pytest.mark.parametrize("names", [("left",), ("right", "left"), ("left", "right", "extra")])
def test_setters_are_refused_unless_they_name_every_field_in_order(names: tuple[str, ...]) -> None:
    with pytest.raises(ImportError, match="Pair"):
        slot_setters(Pair, names)
