"""Clock helpers shared by the handlers of both versions."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def ocpp_time(moment: datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a ``Z``, as chargers parse most reliably."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
