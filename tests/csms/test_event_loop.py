"""CSMS_EVENT_LOOP picks each process's asyncio loop (csms/event_loop.py)."""

from __future__ import annotations

import asyncio

import pytest

from csms import event_loop
from csms.config import EventLoopChoice, Settings


async def _loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_the_setting_is_read_and_defaults_to_uvloop_when_installed() -> None:
    assert Settings().event_loop is EventLoopChoice.AUTO
    assert Settings.from_env({"CSMS_EVENT_LOOP": "UVLOOP"}).event_loop is EventLoopChoice.UVLOOP
    with pytest.raises(ValueError):
        Settings.from_env({"CSMS_EVENT_LOOP": "trio"})


def test_asyncio_runs_the_standard_loop() -> None:
    assert event_loop.run(_loop_type(), EventLoopChoice.ASYNCIO).startswith("asyncio")


def test_uvloop_asked_for_but_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_loop, "uvloop_available", lambda: False)
    with pytest.raises(ValueError, match="uvloop is not installed"):
        event_loop.loop_factory(EventLoopChoice.UVLOOP)
    assert event_loop.loop_factory(EventLoopChoice.AUTO) is None  # auto falls back


@pytest.mark.skipif(not event_loop.uvloop_available(), reason="uvloop not installed")
def test_uvloop_runs_uvloop() -> None:
    assert event_loop.run(_loop_type(), EventLoopChoice.UVLOOP).startswith("uvloop")
    assert event_loop.run(_loop_type(), EventLoopChoice.AUTO).startswith("uvloop")
