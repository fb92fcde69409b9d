"""Where a charger's live connection is, and how a command reaches it.

Every CSMS-initiated call goes through :class:`CommandRouter`. A charger whose
socket is in this process's :class:`ConnectionRegistry` is called directly;
one connected to another node of the cluster (its presence in Postgres says
which) is called through :class:`RemoteCalls` (``csms.cluster.remote_commands``),
with the same answer and the same exceptions.
"""

from __future__ import annotations

from typing import Any
from typing import Protocol as TypingProtocol

from csms.connection import OcppConnection
from csms.events import Protocol
from csms.storage.chargers import Presence


class ChargerNotConnected(LookupError):
    """No live connection for this charger (it is offline, or unknown)."""


class WrongProtocolVersion(ValueError):
    """A command built for one OCPP version was addressed to a charger speaking the other."""


class ConnectionRegistry:
    """The live connection of each charger identity in this process (at most one)."""

    def __init__(self) -> None:
        self._connections: dict[str, OcppConnection] = {}

    def get(self, charge_point_id: str) -> OcppConnection | None:
        return self._connections.get(charge_point_id)

    def replace(self, connection: OcppConnection) -> OcppConnection | None:
        """Make ``connection`` the live one for its identity; return the one it replaces."""
        previous = self._connections.get(connection.id)
        self._connections[connection.id] = connection
        return previous if previous is not connection else None

    def remove(self, connection: OcppConnection) -> bool:
        """Forget ``connection`` if it is still the live one; say whether it was."""
        if self._connections.get(connection.id) is connection:
            del self._connections[connection.id]
            return True
        return False

    def __len__(self) -> int:
        return len(self._connections)

    def all(self) -> list[OcppConnection]:
        return list(self._connections.values())


class RemoteCalls(TypingProtocol):
    """Calls to chargers whose socket another node holds."""

    node_id: str

    async def locate(self, charge_point_id: str) -> Presence | None: ...

    async def call(self, charge_point_id: str, holder: Presence, payload: Any) -> Any: ...


_PAYLOAD_MODULE_PROTOCOL = {
    "ocpp.v16.call": Protocol.V16,
    "ocpp.v201.call": Protocol.V201,
}


class CommandRouter:
    """Send a command to a charger, on whichever node it is connected, and return its answer."""

    def __init__(self, registry: ConnectionRegistry, remote: RemoteCalls | None = None) -> None:
        self._registry = registry
        self.remote = remote  # None: this process alone (no cluster forwarding)

    def protocol_of(self, charge_point_id: str) -> Protocol:
        """The version of a charger connected to *this* node (see :meth:`find_protocol`)."""
        return self._connection(charge_point_id).protocol

    async def find_protocol(self, charge_point_id: str) -> Protocol:
        """The version of a charger connected to any node; raises ChargerNotConnected."""
        connection = self._registry.get(charge_point_id)
        if connection is not None:
            return connection.protocol
        return Protocol((await self._holder(charge_point_id)).protocol)

    async def call(self, charge_point_id: str, payload: Any) -> Any:
        """Send ``payload`` (an ``ocpp.v16.call`` or ``ocpp.v201.call`` dataclass).

        Raises :class:`ChargerNotConnected`, :class:`WrongProtocolVersion`,
        :class:`csms.connection.CallErrorReceived`, :class:`TimeoutError`,
        ``ConnectionError`` (closed before answering) or ``ocpp.exceptions.OCPPError``
        (the request or the answer breaks the schema), whichever node holds the charger.
        """
        expected = _PAYLOAD_MODULE_PROTOCOL.get(type(payload).__module__)
        connection = self._registry.get(charge_point_id)
        if connection is not None:
            _check_version(charge_point_id, connection.protocol, expected, payload)
            return await connection.call(payload)
        holder = await self._holder(charge_point_id)
        assert self.remote is not None  # _holder raised otherwise
        _check_version(charge_point_id, Protocol(holder.protocol), expected, payload)
        try:
            return await self.remote.call(charge_point_id, holder, payload)
        except ChargerNotConnected:
            # Not sent: the charger left that node. If it is connected again (moved
            # during a rolling restart), follow it once.
            moved = self._registry.get(charge_point_id)
            if moved is not None:
                _check_version(charge_point_id, moved.protocol, expected, payload)
                return await moved.call(payload)
            again = await self._holder(charge_point_id)
            if again.generation == holder.generation:
                raise
            _check_version(charge_point_id, Protocol(again.protocol), expected, payload)
            return await self.remote.call(charge_point_id, again, payload)

    async def _holder(self, charge_point_id: str) -> Presence:
        holder = None if self.remote is None else await self.remote.locate(charge_point_id)
        if holder is None or self.remote is None or holder.node_id == self.remote.node_id:
            # (held by this node in Postgres but not in its registry: it is closing)
            raise ChargerNotConnected(f"charger {charge_point_id!r} is not connected")
        return holder

    def _connection(self, charge_point_id: str) -> OcppConnection:
        connection = self._registry.get(charge_point_id)
        if connection is None:
            raise ChargerNotConnected(f"charger {charge_point_id!r} is not connected")
        return connection


def _check_version(
    charge_point_id: str, speaks: Protocol, expected: Protocol | None, payload: Any
) -> None:
    if expected is not speaks:
        raise WrongProtocolVersion(
            f"{charge_point_id} speaks {speaks.value}; "
            f"{type(payload).__module__}.{type(payload).__name__} does not fit"
        )
