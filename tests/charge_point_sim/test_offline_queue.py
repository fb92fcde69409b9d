"""The offline transaction queue: order, seqNo, offline flag, original timestamps.

No server: the charger's CALL function is replaced by a recorder, so this
tests exactly the queueing logic in :mod:`charge_point_sim.charger`.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from charge_point_sim.charger import ChargerConfig
from charge_point_sim.clock import SimClock, parse_iso
from charge_point_sim.ev import EVSpec, EVState
from charge_point_sim.stats import Stats
from charge_point_sim.v16 import V16Charger
from charge_point_sim.v201 import V201Charger


async def _run_offline_session(ch: Any, sent: list[Any]) -> Any:
    """Charge for a while offline, stop, then come online and drain the queue."""

    async def recorder(payload: Any) -> Any:
        sent.append(payload)
        return SimpleNamespace(
            id_token_info=None,
            id_tag_info={"status": "Accepted"},
            transaction_id=77,
        )

    ch._ocpp_call = recorder
    ch.booted = True  # as if it had booted before the link dropped
    ev = EVState(EVSpec(capacity_kwh=50, max_ac_kw=11), soc=20, target_soc=90)
    session = await ch.start_session(1, "TAG1", ev)
    assert session is not None
    await asyncio.sleep(0.3)  # 0.3 s x 3600 = ~18 simulated minutes, meter every 60 s
    assert ch.stop_session(1, "Local")
    for _ in range(100):
        if ch.connectors[1].session is None:
            break
        await asyncio.sleep(0.01)
    queued = len(ch.tx_queue)
    assert queued >= 5 and all(item.offline for item in ch.tx_queue)
    reconnect_time = ch.clock.now()
    ch.online = True
    sender = asyncio.ensure_future(ch._tx_sender())
    ch._tx_wakeup.set()
    for _ in range(100):
        if not ch.tx_queue:
            break
        await asyncio.sleep(0.01)
    sender.cancel()
    assert len(sent) == queued
    return reconnect_time


async def test_v201_offline_events_are_delivered_in_order_with_offline_flag() -> None:
    ch = V201Charger(
        ChargerConfig("CP201", connectors=1, meter_interval=60), SimClock(3600), Stats()
    )
    sent: list[Any] = []
    reconnect = await _run_offline_session(ch, sent)
    assert sent[0].event_type == "Started"
    assert sent[-1].event_type == "Ended"
    assert {p.event_type for p in sent[1:-1]} == {"Updated"}
    assert [p.seq_no for p in sent] == list(range(len(sent)))
    assert all(p.offline is True for p in sent)
    stamps = [parse_iso(p.timestamp) for p in sent]
    assert stamps == sorted(stamps) and stamps[-1] <= reconnect
    energies = [p.meter_value[0]["sampled_value"][0]["value"] for p in sent]
    assert energies == sorted(energies) and energies[-1] > energies[0]
    assert len({p.transaction_info["transaction_id"] for p in sent}) == 1


async def test_v16_offline_messages_use_the_transaction_id_from_start() -> None:
    ch = V16Charger(ChargerConfig("CP16", connectors=1, meter_interval=60), SimClock(3600), Stats())
    sent: list[Any] = []
    reconnect = await _run_offline_session(ch, sent)
    names = [type(p).__name__ for p in sent]
    assert names[0] == "StartTransaction" and names[-1] == "StopTransaction"
    assert set(names[1:-1]) == {"MeterValues"}
    assert all(p.transaction_id == 77 for p in sent[1:])
    assert sent[-1].meter_stop > sent[0].meter_start
    assert parse_iso(sent[-1].timestamp) <= reconnect
    stamps = [parse_iso(p.meter_value[0]["timestamp"]) for p in sent[1:-1]]
    assert stamps == sorted(stamps)
