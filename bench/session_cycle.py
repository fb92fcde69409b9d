"""CPU and latency of transaction starts and ends alone (billing on, a default tariff).

    python -m bench.session_cycle [--chargers 20] [--duration 10] [--csms-python PATH]
                                  [--py-spy profile.txt] [--as-fleet]

Starts ``csms`` (bench.load_targets: a fresh embedded Postgres; ``--csms-python``
runs another checkout's), assigns a default tariff (so every end is priced and its
CDR written in the end's transaction), boots ``--chargers`` strict chargers (half
1.6J, half 2.0.1; bench.load_client) and lets each send only the starts and stops
of bench.ocpp_load's session cycle, one after the other, for ``--duration`` seconds
after a warm-up cycle. Prints the calls answered, p50/p99 of starts and stops, and
the CPU per call of the CSMS and of its Postgres (what docs/profiling.md,
"Transaction starts and ends in fewer round trips", compares).

Two things of this load are not a fleet's: every session lasts milliseconds (so
fault detection finds a run of short sessions at each end and stores the finding),
and a 2.0.1 end's seqNo counts the meter values it skipped (so the CSMS sees a gap
and asks the charger GetTransactionStatus). ``--as-fleet`` takes both out: sessions
count as short only below 0 s (a threshold override for the bench's charger model,
through the API) and a 2.0.1 end follows its start's seqNo. What is left is what a
start or stop of a real fleet's session costs ("Starts and stops: the services'
share" in docs/profiling.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import asyncpg

from bench.load_client import StrictCharger
from bench.load_targets import start_csms
from bench.ocpp_load import Call, boot
from bench.profile_csms import _a_worker, _py_spy, top_of_profile
from billing import store
from billing.tariff import Tariff
from csms.storage import api_keys


async def _next_start_or_stop(charger: StrictCharger, as_fleet: bool = False) -> Call:
    while (call := charger.script.next_call()).kind not in {"start", "stop"}:
        pass  # meter values, statuses, heartbeats: not sent
    if as_fleet and call.kind == "stop" and "seqNo" in call.payload:
        call.payload["seqNo"] = charger.script.seq_no = 1  # the start's 0, then this
    return call


async def _cycle(
    charger: StrictCharger, latencies: dict[str, list[float]], as_fleet: bool = False
) -> None:
    for _ in range(2):  # a start, then its stop
        call = await _next_start_or_stop(charger, as_fleet)
        sent = time.monotonic()
        answer = await charger._call(call)
        if answer is None:
            raise RuntimeError(f"{charger.id} {call.action}: no answer (bench.load_client)")
        latencies[call.kind].append(time.monotonic() - sent)
        charger.script.on_answer(call, answer)


@dataclass
class CycleResult:
    latencies: dict[str, list[float]]  # "start", "stop": send to answer, seconds
    csms_cpu_s: float  # over the window, the CSMS's processes
    postgres_cpu_s: float

    @property
    def calls(self) -> int:
        return sum(len(v) for v in self.latencies.values())


async def _no_short_sessions(api_url: str, conn: asyncpg.Connection) -> None:
    """Fault detection counts no session of the bench's chargers (model "B") as short."""
    _, key = await api_keys.create(conn, "bench", "operator")
    request = urllib.request.Request(
        f"{api_url.removesuffix('/')}/alert-thresholds/model/B",
        data=json.dumps({"short_session_s": 0}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="PUT",
    )
    await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=10).read())


async def run(
    chargers: int,
    duration: float,
    csms_python: str | None = None,
    py_spy: str | None = None,
    as_fleet: bool = False,
) -> CycleResult:
    """Boot ``chargers`` chargers and measure ``duration`` seconds of starts and stops.

    With ``py_spy``, the CSMS process is sampled by py-spy over the window into that file
    (collapsed stacks; bench.profile_csms.top_of_profile prints the top of it).
    """
    with tempfile.TemporaryDirectory(prefix="session-cycle-") as data_dir:
        target = await start_csms(
            Path(data_dir),
            python=csms_python,
            env={"CSMS_POST_BOOT_SPREAD_SECONDS": "1", "CSMS_BILLING_COST_UPDATE_INTERVAL": "0"},
        )
        try:
            assert target.dsn is not None
            conn = await asyncpg.connect(target.dsn)
            tariff = Tariff(currency="EUR", price_per_kwh=Decimal("0.39"), flat_fee=Decimal("0.5"))
            stored = await store.create_tariff(conn, "bench", tariff)
            await store.assign(conn, "default", "", stored.id)
            if as_fleet:
                assert target.api_url is not None
                await _no_short_sessions(target.api_url, conn)
            await conn.close()
            fleet = [
                StrictCharger(target.url, f"SC-{i}", v201=i % 2 == 1, timeout=30)
                for i in range(chargers)
            ]
            for charger in fleet:
                await charger._connect()
                if await charger._call(boot(charger.v201)) is None:
                    raise RuntimeError(f"{charger.id}: boot failed")
            warm: dict[str, list[float]] = {"start": [], "stop": []}
            await asyncio.gather(*(_cycle(c, warm, as_fleet) for c in fleet))
            await asyncio.sleep(2)  # the post-boot probes out of the window
            latencies: dict[str, list[float]] = {"start": [], "stop": []}
            end = time.monotonic() + duration
            spy = await _py_spy(_a_worker(target), py_spy, duration, rate=250) if py_spy else None
            cpu_before = target.cpu_seconds()

            async def loop(charger: StrictCharger) -> None:
                while time.monotonic() < end:
                    await _cycle(charger, latencies, as_fleet)

            await asyncio.gather(*(loop(c) for c in fleet))
            cpu_after = target.cpu_seconds()
            if spy is not None:
                await spy.wait()
            for charger in fleet:
                await charger.close()
        finally:
            await target.stop()
    return CycleResult(latencies, cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1])


def report(result: CycleResult, chargers: int, duration: float) -> str:
    calls = result.calls
    lines = [
        f"chargers: {chargers} (half 1.6J, half 2.0.1), {duration:g} s, "
        f"{calls} starts and stops answered ({calls / duration:.0f}/s)"
    ]
    for kind, values in result.latencies.items():
        values = sorted(values)
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        lines.append(
            f"  {kind}: p50 {statistics.median(values) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms"
        )
    lines.append(
        f"CPU per start or stop: CSMS {result.csms_cpu_s / calls * 1e6:.0f} us, "
        f"Postgres {result.postgres_cpu_s / calls * 1e6:.0f} us"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chargers", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--csms-python", help="run csms with this interpreter (another checkout)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--py-spy", dest="py_spy", help="record the CSMS with py-spy into FILE")
    parser.add_argument(
        "--as-fleet",
        action="store_true",
        help="no short-session findings, no seqNo gaps: what a real session's ends cost",
    )
    args = parser.parse_args()
    random.seed(args.seed)
    result = asyncio.run(
        run(args.chargers, args.duration, args.csms_python, args.py_spy, args.as_fleet)
    )
    print(report(result, args.chargers, args.duration))
    if args.py_spy:
        print(top_of_profile(Path(args.py_spy).read_text(), count=30))


if __name__ == "__main__":
    main()
