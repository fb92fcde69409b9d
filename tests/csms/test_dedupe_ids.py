"""Event ids derived from a message stay what uuid5 made of them (resends across an upgrade)."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from csms import dedupe


def _reference(name: str) -> uuid.UUID:
    """What next_event_id returned before it built the UUID from its integer."""
    name = name.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return uuid.uuid5(dedupe._NAMESPACE, name)


@settings(max_examples=500)
@given(st.text())  # lone surrogates included
def test_the_same_id_as_uuid5(name: str) -> None:
    made = dedupe.event_uuid(name)
    assert made == _reference(name)
    assert made.version == 5 and made.variant == uuid.RFC_4122


def test_a_message_scope_numbers_its_events() -> None:
    with dedupe.handling("CP-1", "MeterValues|abc"):
        first, second = dedupe.next_event_id(), dedupe.next_event_id()
    assert first == _reference("CP-1\x1fMeterValues|abc\x1f0")
    assert second == _reference("CP-1\x1fMeterValues|abc\x1f1")
    assert dedupe.next_event_id().version == 4  # outside a message: random
