"""Scenario inputs: scheduled arrivals (JSON file) and fault-injection specs.

Both are plain data so the CLI, tests and demos describe a run the same way.
Times are simulated seconds from the start of the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULT_KINDS = ("faulted", "stuck-meter", "disconnect-storm", "power-drop", "temperature-drift")


@dataclass(frozen=True)
class Arrival:
    """One EV arriving at ``at`` seconds on a given charger (index) and connector."""

    at: float
    charger: int
    connector: int = 1
    id_tag: str | None = None
    soc: float | None = None
    target_soc: float | None = None
    capacity_kwh: float | None = None
    dwell_s: float | None = None


@dataclass(frozen=True)
class FaultSpec:
    """A fault injected at ``at`` simulated seconds, lasting ``duration`` seconds.

    ``charger`` is an index into the fleet (None = a seeded random one, or
    for ``disconnect-storm`` a ``fraction`` of all chargers). ``temperature-drift``
    raises the connector's temperature by ``factor`` °C, linearly over ``duration``,
    and leaves it there (a failing contactor or fan: it does not heal by itself).
    """

    kind: str
    at: float
    charger: int | None = None
    connector: int = 1
    duration: float = 300.0
    code: str = "GroundFailure"
    factor: float = 0.0
    fraction: float = 0.5
    extra: dict[str, str] = field(default_factory=dict)


def load_schedule(path: str | Path) -> list[Arrival]:
    """Read ``[{"at": 0, "charger": 0, "connector": 1, "id_tag": "TAG1"}, ...]``."""
    data: Any = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError("schedule must be a JSON list of arrivals")
    out = []
    for item in data:
        out.append(
            Arrival(
                at=float(item["at"]),
                charger=int(item.get("charger", 0)),
                connector=int(item.get("connector", 1)),
                id_tag=item.get("id_tag"),
                soc=item.get("soc"),
                target_soc=item.get("target_soc"),
                capacity_kwh=item.get("capacity_kwh"),
                dwell_s=item.get("dwell_s"),
            )
        )
    return sorted(out, key=lambda a: a.at)


def parse_fault(spec: str) -> FaultSpec:
    """Parse ``KIND@SECONDS[:key=value,...]``, e.g. ``power-drop@60:charger=0,factor=0.2``."""
    head, _, tail = spec.partition(":")
    kind, sep, at = head.partition("@")
    if kind not in FAULT_KINDS or not sep:
        raise ValueError(f"bad fault spec {spec!r}; kinds: {', '.join(FAULT_KINDS)}")
    opts = dict(kv.split("=", 1) for kv in tail.split(",") if kv) if tail else {}
    known = {"charger", "connector", "duration", "code", "factor", "fraction"}
    return FaultSpec(
        kind=kind,
        at=float(at),
        charger=int(opts["charger"]) if "charger" in opts else None,
        connector=int(opts.get("connector", 1)),
        duration=float(opts.get("duration", 300)),
        code=opts.get("code", "GroundFailure"),
        factor=float(opts.get("factor", 0.0)),
        fraction=float(opts.get("fraction", 0.5)),
        extra={k: v for k, v in opts.items() if k not in known},
    )
