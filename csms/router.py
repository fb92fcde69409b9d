"""Where a charger's live connection is, and how a command reaches it.

Every CSMS-initiated call goes through :class:`CommandRouter`. Today it finds
the socket in this process's :class:`ConnectionRegistry`; when chargers are
spread over several processes or nodes, the router is the one place that
learns to forward a call to the process holding the socket.
"""

from __future__ import annotations

from typing import Any

from csms.connection import OcppConnection
from csms.events import Protocol


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


_PAYLOAD_MODULE_PROTOCOL = {
    "ocpp.v16.call": Protocol.V16,
    "ocpp.v201.call": Protocol.V201,
}


class CommandRouter:
    """Send a command to a charger and return its answer."""

    def __init__(self, registry: ConnectionRegistry) -> None:
        self._registry = registry

    def protocol_of(self, charge_point_id: str) -> Protocol:
        return self._connection(charge_point_id).protocol

    async def call(self, charge_point_id: str, payload: Any) -> Any:
        """Send ``payload`` (an ``ocpp.v16.call`` or ``ocpp.v201.call`` dataclass).

        Raises :class:`ChargerNotConnected`, :class:`WrongProtocolVersion`,
        :class:`csms.connection.CallErrorReceived` or :class:`TimeoutError`.
        """
        connection = self._connection(charge_point_id)
        expected = _PAYLOAD_MODULE_PROTOCOL.get(type(payload).__module__)
        if expected is not connection.protocol:
            raise WrongProtocolVersion(
                f"{charge_point_id} speaks {connection.protocol.value}; "
                f"{type(payload).__module__}.{type(payload).__name__} does not fit"
            )
        return await connection.call(payload)

    def _connection(self, charge_point_id: str) -> OcppConnection:
        connection = self._registry.get(charge_point_id)
        if connection is None:
            raise ChargerNotConnected(f"charger {charge_point_id!r} is not connected")
        return connection
