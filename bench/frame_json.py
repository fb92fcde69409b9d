"""The pieces of the frame path that orjson and direct slot setting replaced, old against new.

    python -m bench.frame_json [--repeat 20000]

For the frames a benchmark charger sends most (bench.ocpp_load: a 1.6
MeterValues and a 2.0.1 TransactionEvent Updated, 8 samples each), the
microseconds of CPU per frame of: reading the frame (``json.loads`` against
:func:`csms.rpc_frames.read_frame`, which includes the poison screen's plain
walk the old path ran on the payload later), the canonical JSON the dedupe digest
is taken of (``json.dumps(sort_keys=True)`` against
:func:`csms.dedupe.canonical_json`), and building the samples
(``MeterSample(...)`` against :func:`csms.meter.new_sample`), and a message's
metrics (the counter's ``inc`` and the histogram's ``observe`` against
:class:`csms.message_tally.MessageTally`, written once per 40 messages: a
batch's answers in one loop turn; set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
folder to time them as ``csms --workers N`` writes them). Each pair checks
that old and new give the same result before timing them. The least of five
rounds is printed, the figure least moved by other work on a shared machine.
The whole path, handler and group-commit writer included, is bench.message_path.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.ocpp_load import ChargerScript
from csms.dedupe import canonical_json
from csms.events import MeterSample
from csms.message_tally import MessageTally
from csms.meter import new_sample
from csms.monitoring import metrics
from csms.poison import plain
from csms.rpc_frames import read_frame


def _least(fn: Callable[[], Any], repeat: int) -> float:
    """Microseconds of CPU per call, the least of five rounds."""
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(repeat):
            fn()
        best = min(best, (time.process_time() - started) / repeat * 1e6)
    return best


def _frames() -> dict[str, str]:
    texts = {}
    for v201 in (False, True):
        script = ChargerScript("BENCH-1", v201)
        script.transaction_id = "BENCH-1-1" if v201 else 7
        meter = script._meter_value()
        texts[meter.action] = json.dumps([2, "m1", meter.action, meter.payload])
    return texts


def _old_read(text: str) -> Any:
    frame = json.loads(text)
    plain(frame[3])  # the old path's fast poison check of the payload
    return frame


def _old_canonical(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def _old_sample(
    sampled_at: datetime,
    measurand: str,
    value: float,
    unit: str | None,
    phase: str | None,
    context: str | None,
    location: str | None,
) -> MeterSample:
    """As the old ``_samples`` built one: the dataclass, by keyword."""
    return MeterSample(
        sampled_at=sampled_at,
        measurand=measurand,
        value=value,
        unit=unit,
        phase=phase,
        context=context,
        location=location,
    )


def measure(repeat: int) -> dict[str, tuple[float, float]]:
    """(old, new) microseconds per call, by piece and frame."""
    results: dict[str, tuple[float, float]] = {}
    for action, text in _frames().items():
        if read_frame(text) != (json.loads(text), True):
            raise AssertionError(f"read_frame reads {action} otherwise than json")
        results[f"read {action}"] = (
            _least(functools.partial(_old_read, text), repeat),
            _least(functools.partial(read_frame, text), repeat),
        )
        payload = json.loads(text)[3]
        if canonical_json(payload) != _old_canonical(payload):
            raise AssertionError(f"canonical_json writes {action} otherwise than json")
        results[f"digest bytes {action}"] = (
            _least(functools.partial(_old_canonical, payload), repeat),
            _least(functools.partial(canonical_json, payload), repeat),
        )
    at = datetime.now(UTC)
    fields = (at, "Energy.Active.Import.Register", 1.0, "Wh", None, "Sample.Periodic", "Outlet")
    if new_sample(*fields) != MeterSample(*fields):
        raise AssertionError("new_sample differs from MeterSample")
    results["one meter sample"] = (
        _least(lambda: _old_sample(*fields), repeat),
        _least(lambda: new_sample(*fields), repeat),
    )
    results["metrics of one message"] = asyncio.run(_metrics(max(1, repeat // 40)))
    return results


async def _metrics(repeat: int) -> tuple[float, float]:
    """Inside a running loop, as the tally's writes are queued on it."""
    return (
        _least(_metrics_one_by_one, repeat) / 40,
        _least(_metrics_tallied, repeat) / 40,
    )


_TALLY = MessageTally()


def _metrics_one_by_one() -> None:
    for _ in range(40):
        metrics.bound(metrics.MESSAGES, "in", "MeterValues", "ok").inc()
        metrics.bound(metrics.HANDLER_SECONDS, "MeterValues").observe(0.003)


def _metrics_tallied() -> None:
    for _ in range(40):
        _TALLY.add("MeterValues", "ok", 0.003)
    _TALLY.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20000)
    args = parser.parse_args()
    for name, (old, new) in measure(args.repeat).items():
        print(f"{name:>34}: {old:6.2f} -> {new:6.2f} us per call")


if __name__ == "__main__":
    main()
