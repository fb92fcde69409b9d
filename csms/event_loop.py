"""Which asyncio event loop a CSMS process runs on (``CSMS_EVENT_LOOP``).

``asyncio`` is the standard library's loop; ``uvloop`` (libuv, when the
``uvloop`` package is installed: ``pip install 'csms[uvloop]'``) moves the
loop's own work -- timers, callbacks, socket transports -- into C;
``auto`` takes uvloop when it is installed and the standard loop otherwise.
The default is ``asyncio``: on the charger path uvloop measured no better
within the noise (the time goes to system calls and Python code, not to the
loop's own machinery); docs/profiling.md has the figures.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from csms.config import EventLoopChoice

T = TypeVar("T")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop ``choice`` names; None for the standard loop.

    Raises :class:`ValueError` when uvloop is asked for by name and not installed.
    """
    if choice is EventLoopChoice.ASYNCIO:
        return None
    if not uvloop_available():
        if choice is EventLoopChoice.UVLOOP:
            raise ValueError("CSMS_EVENT_LOOP=uvloop, but uvloop is not installed")
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice) -> T:
    """``asyncio.run(main)`` on the loop ``choice`` names."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
