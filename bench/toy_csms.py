"""The yardstick: the simplest in-memory CSMS on the same ``ocpp`` and ``websockets`` libraries.

    python -m bench.toy_csms [--host 127.0.0.1] [--port 0]

One port, both OCPP versions (chosen by the WebSocket subprotocol the charger
offers), everything accepted and nothing stored: BootNotification
Accepted, Authorize Accepted, 1.6 StartTransaction gets the next transaction
id of a process-wide counter, and every other charger-initiated message its
minimal valid answer. The ``ocpp`` library validates each payload against its
JSON schemas (in and out) and answers what it cannot parse with a CALLERROR,
as it does for anyone using it; there is no other validation, no database, no
logging and no per-charger state beyond the library's ``ChargePoint``.

It exists so that the benchmarks (``bench.ingest``) can run the same load
against it and against ``csms`` in one run and print the ratio: absolute
figures on a shared machine move from run to run, ratios much less.

When it listens it prints ``ready ws://HOST:PORT`` on stdout (with the port
actually bound, so ``--port 0`` works); SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

HEARTBEAT_INTERVAL = 300  # seconds, told to every charger at boot
SUBPROTOCOLS = [Subprotocol("ocpp2.0.1"), Subprotocol("ocpp1.6")]

# One counter for the whole process: 1.6 transaction ids are unique per CSMS.
_transaction_ids = itertools.count(1)


_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def _on(action: str) -> Callable[[_Handler], _Handler]:
    """The library's (untyped) ``@on`` routing decorator, typed."""
    return cast(Callable[[_Handler], _Handler], on(action))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# Charger-initiated actions whose minimal valid answer is empty ({}), per version.
_EMPTY_16 = ("DiagnosticsStatusNotification", "FirmwareStatusNotification")
_EMPTY_16_SECURITY = (
    "LogStatusNotification",
    "SecurityEventNotification",
    "SignedFirmwareStatusNotification",
)
_EMPTY_201 = (
    "ClearedChargingLimit",
    "FirmwareStatusNotification",
    "LogStatusNotification",
    "MeterValues",
    "NotifyChargingLimit",
    "NotifyCustomerInformation",
    "NotifyDisplayMessages",
    "NotifyEvent",
    "NotifyMonitoringReport",
    "NotifyReport",
    "PublishFirmwareStatusNotification",
    "ReportChargingProfiles",
    "ReservationStatusUpdate",
    "SecurityEventNotification",
    "StatusNotification",
)


def _empty_answers(module: Any, actions: tuple[str, ...]) -> dict[str, Callable[..., Any]]:
    """``on(action)`` handlers answering the action's call_result with no fields."""
    handlers: dict[str, Callable[..., Any]] = {}
    for action in actions:
        answer = getattr(module, action)

        def handler(self: object, *, _answer: Any = answer, **_: Any) -> Any:
            return _answer()

        handler.__name__ = f"on_{action}"
        handlers[handler.__name__] = _on(action)(handler)
    return handlers


class _Toy16(ChargePoint16):  # type: ignore[misc]
    """OCPP 1.6J: accepts everything, stores nothing."""

    @_on("BootNotification")
    def on_boot_notification(self, **_: Any) -> Any:
        return result16.BootNotification(
            current_time=_now(), interval=HEARTBEAT_INTERVAL, status="Accepted"
        )

    @_on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        return result16.Heartbeat(current_time=_now())

    @_on("Authorize")
    def on_authorize(self, **_: Any) -> Any:
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @_on("StartTransaction")
    def on_start_transaction(self, **_: Any) -> Any:
        return result16.StartTransaction(
            transaction_id=next(_transaction_ids), id_tag_info={"status": "Accepted"}
        )

    @_on("StopTransaction")
    def on_stop_transaction(self, **_: Any) -> Any:
        return result16.StopTransaction()

    @_on("MeterValues")
    def on_meter_values(self, **_: Any) -> Any:
        return result16.MeterValues()

    @_on("StatusNotification")
    def on_status_notification(self, **_: Any) -> Any:
        return result16.StatusNotification()

    @_on("DataTransfer")
    def on_data_transfer(self, **_: Any) -> Any:
        return result16.DataTransfer(status="Accepted")

    @_on("SignCertificate")
    def on_sign_certificate(self, **_: Any) -> Any:
        return result16.SignCertificate(status="Accepted")


class _Toy201(ChargePoint201):  # type: ignore[misc]
    """OCPP 2.0.1: accepts everything, stores nothing."""

    @_on("BootNotification")
    def on_boot_notification(self, **_: Any) -> Any:
        return result201.BootNotification(
            current_time=_now(), interval=HEARTBEAT_INTERVAL, status="Accepted"
        )

    @_on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        return result201.Heartbeat(current_time=_now())

    @_on("Authorize")
    def on_authorize(self, **_: Any) -> Any:
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @_on("TransactionEvent")
    def on_transaction_event(self, id_token: dict[str, Any] | None = None, **_: Any) -> Any:
        # An idToken in the event asks for its authorization: Accepted.
        info = None if id_token is None else {"status": "Accepted"}
        return result201.TransactionEvent(id_token_info=info)

    @_on("DataTransfer")
    def on_data_transfer(self, **_: Any) -> Any:
        return result201.DataTransfer(status="Accepted")

    @_on("SignCertificate")
    def on_sign_certificate(self, **_: Any) -> Any:
        return result201.SignCertificate(status="Accepted")

    @_on("NotifyEVChargingNeeds")
    def on_notify_ev_charging_needs(self, **_: Any) -> Any:
        return result201.NotifyEVChargingNeeds(status="Accepted")

    @_on("NotifyEVChargingSchedule")
    def on_notify_ev_charging_schedule(self, **_: Any) -> Any:
        return result201.NotifyEVChargingSchedule(status="Accepted")


async def _serve_charger(connection: ServerConnection) -> None:
    """One charger: its id is the last path segment, its version the agreed subprotocol."""
    path = connection.request.path if connection.request is not None else "/"
    charger_id = path.rstrip("/").rsplit("/", 1)[-1] or "unknown"
    kind = _Toy201 if connection.subprotocol == "ocpp2.0.1" else _Toy16
    try:
        await kind(charger_id, connection).start()
    except Exception:  # the socket closed (or broke): this charger is done
        return


for _name, _handler in _empty_answers(result16, _EMPTY_16 + _EMPTY_16_SECURITY).items():
    setattr(_Toy16, _name, _handler)
for _name, _handler in _empty_answers(result201, _EMPTY_201).items():
    setattr(_Toy201, _name, _handler)


async def start(host: str = "127.0.0.1", port: int = 0) -> Server:
    """Listen (``await server.wait_closed()`` to serve); the bound port is ``bound_port``."""
    return await serve(
        _serve_charger,
        host,
        port,
        subprotocols=SUBPROTOCOLS,
        # The libraries' defaults otherwise (permessage-deflate offered, as csms does;
        # the load generator decides whether to negotiate it).
    )


def bound_port(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


async def _main(host: str, port: int) -> None:
    server = await start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready ws://{host}:{bound_port(server)}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    args = parser.parse_args()
    asyncio.run(_main(args.host, args.port))


if __name__ == "__main__":
    main()
