"""The PROXY protocol from a trusted TCP balancer gives the charger's address (15.1)."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from websockets.asyncio.client import connect

from csms.security.proxy_protocol import V2_SIGNATURE, ProxyHeaderError, parse_header
from tests.conftest import StartCsms
from tests.waiting import eventually


def v2(source: str, port: int) -> bytes:
    body = (ipaddress.IPv4Address(source).packed + ipaddress.IPv4Address("10.0.0.1").packed
            + port.to_bytes(2, "big") + (9000).to_bytes(2, "big"))  # fmt: skip
    return V2_SIGNATURE + bytes([0x21, 0x11]) + len(body).to_bytes(2, "big") + body


def test_headers_of_both_versions() -> None:
    assert parse_header(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 9000\r\nGET") == (
        ("203.0.113.7", 5555), 43)  # fmt: skip
    assert parse_header(b"PROXY TCP4 203.0.113.7") is None  # wait for the rest
    assert parse_header(v2("198.51.100.2", 4242) + b"GET") == (("198.51.100.2", 4242), 28)
    assert parse_header(V2_SIGNATURE[:5]) is None
    with pytest.raises(ProxyHeaderError):
        parse_header(b"PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n")
    with pytest.raises(ProxyHeaderError):
        parse_header(b"GET /ocpp/CP HTTP/1.1\r\n")


@pytest.mark.parametrize("header", ["v1", "v2"])
async def test_the_connect_event_names_the_charger_behind_the_balancer(
    start_csms: StartCsms, header: str
) -> None:
    csms = await start_csms(trusted_proxies="127.0.0.1", proxy_protocol=True)
    port = csms.app.port
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 9000\r\n" if header == "v1"
                 else v2("203.0.113.7", 5555))  # fmt: skip
    async with connect(
        f"ws://127.0.0.1:{port}/ocpp/CP", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        sock=sock,
    ) as ws:  # fmt: skip
        await ws.send('[2, "h", "Heartbeat", {}]')
        assert (await ws.recv())[:6] == '[3,"h"'
    address = await eventually(
        lambda: csms.pool.fetchval(
            "SELECT payload->>'remote_address' FROM events WHERE type = 'charger_connected'"
        )
    )
    assert address == "203.0.113.7:5555"
    # A plain charger from the trusted peer (no header) still connects.
    async with connect(f"ws://127.0.0.1:{port}/ocpp/CP2", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await ws.send('[2, "h", "Heartbeat", {}]')
        assert (await ws.recv())[:6] == '[3,"h"'
