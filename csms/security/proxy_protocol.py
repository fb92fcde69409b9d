"""The PROXY protocol (v1 text, v2 binary) from trusted load balancers, on the charger port.

A TCP load balancer (HAProxy, AWS NLB, ...) that does not speak HTTP cannot add
``X-Forwarded-For``; it prefixes the connection with a PROXY header naming the
client instead. With ``CSMS_PROXY_PROTOCOL=true``, a connection from a peer in
``CSMS_TRUSTED_PROXIES`` may start with one (v1 or v2); its source address then
becomes the connection's remote address, for the rate limiter, the logs and the
connect event. Peers that are not trusted are read as plain WebSocket, so a
client cannot claim an address by sending the header itself. A malformed
header closes the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from websockets.asyncio.server import ServerConnection

from csms.security.proxy import TrustedProxies

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
_V1_MAX = 107  # the spec's longest v1 line, CRLF included


class ProxyHeaderError(ValueError):
    pass


def parse_header(data: bytes) -> tuple[tuple[str, int] | None, int] | None:
    """(source address or None for LOCAL/UNKNOWN, header length), None if more bytes are needed.

    Raises ProxyHeaderError for something that is not a PROXY header.
    """
    if data.startswith(V2_SIGNATURE):
        if len(data) < 16:
            return None
        length = 16 + int.from_bytes(data[14:16], "big")
        if len(data) < length:
            return None
        command, family = data[12] & 0x0F, data[13]
        if data[12] >> 4 != 2:
            raise ProxyHeaderError("PROXY v2 header with a wrong version")
        if command == 0:  # LOCAL: the balancer's own health check
            return None, length
        if family == 0x11 and length >= 16 + 12:
            return (str(ipaddress.IPv4Address(data[16:20])), int.from_bytes(data[24:26])), length
        if family == 0x21 and length >= 16 + 36:
            return (str(ipaddress.IPv6Address(data[16:32])), int.from_bytes(data[48:50])), length
        return None, length
    if data.startswith(V1_PREFIX):
        end = data.find(b"\r\n")
        if end < 0:
            if len(data) >= _V1_MAX:
                raise ProxyHeaderError("PROXY v1 line too long")
            return None
        parts = data[:end].decode("ascii", "replace").split(" ")
        if len(parts) >= 2 and parts[1] == "UNKNOWN":
            return None, end + 2
        if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
            raise ProxyHeaderError(f"not a PROXY v1 line: {data[:end]!r}")
        try:
            source, port = str(ipaddress.ip_address(parts[2])), int(parts[4])
        except ValueError:
            raise ProxyHeaderError(f"not a PROXY v1 line: {data[:end]!r}") from None
        return (source, port), end + 2
    if V2_SIGNATURE.startswith(data[:12]) or V1_PREFIX.startswith(data[:6]):
        return None  # the start of a header: wait
    raise ProxyHeaderError("no PROXY header")


def connection_class(proxies: TrustedProxies) -> type[ServerConnection]:
    """A ServerConnection that reads a PROXY header first when its peer is trusted."""

    class ProxiedConnection(ServerConnection):
        _proxied: tuple[str, int] | None = None
        _pending: bytes | None = None  # bytes before the header is complete; None: done

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            if peer and proxies.trusts(str(peer[0])):
                self._pending = b""

        def data_received(self, data: bytes) -> None:
            if self._pending is None:
                super().data_received(data)
                return
            buffered = self._pending + data
            try:
                parsed = parse_header(buffered)
            except ProxyHeaderError:
                if buffered.startswith((V1_PREFIX, V2_SIGNATURE)):
                    self.transport.close()  # a broken header: refuse
                    return
                self._pending = None  # a trusted peer without a header: plain WebSocket
                super().data_received(buffered)
                return
            if parsed is None:
                self._pending = buffered
                return
            self._proxied, length = parsed
            self._pending = None
            if len(buffered) > length:
                super().data_received(buffered[length:])

        @property
        def remote_address(self) -> Any:
            return self._proxied or super().remote_address

    return ProxiedConnection
