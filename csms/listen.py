"""Listening sockets that several processes on one host share (SO_REUSEPORT)."""

from __future__ import annotations

import socket


def reuse_port_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound (not yet listening) sockets with SO_REUSEPORT on every address of ``host``.

    Each process of ``csms --workers N`` binds its own, and the kernel spreads
    new connections over the listening ones by a hash of the 4-tuple. For port 0
    every address gets the port the first one was given.
    """
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    for family, kind, proto, _, address in socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        if (family, address) in seen:
            continue
        seen.add((family, address))
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if sockets and port == 0:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
        except OSError:
            sock.close()
            for bound in sockets:
                bound.close()
            raise
        sockets.append(sock)
    return sockets


def bound_port(sockets: list[socket.socket]) -> int:
    return int(sockets[0].getsockname()[1])
