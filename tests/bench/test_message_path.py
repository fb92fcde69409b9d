"""bench.message_path drives the real per-message path (no I/O) and counts its answers."""

from __future__ import annotations

from bench import message_path


async def test_every_measured_message_is_answered() -> None:
    answered = await message_path.measure_answers(messages=20)
    # Two versions, two kinds each: every measured frame got exactly one CALLRESULT
    # through websockets' framing (a CALLERROR is not counted).
    assert answered == {"1.6 meter": 20, "1.6 status": 20, "2.0.1 meter": 20, "2.0.1 status": 20}
