"""What the 1.6 security extension and 2.0.1 chargers share: certificates, password changes."""

from __future__ import annotations

from charge_point_sim.certificates import CertificateStore
from charge_point_sim.commands import SimCharger


class SecurityCommon(SimCharger):
    @property
    def certificates(self) -> CertificateStore:
        store: CertificateStore | None = getattr(self, "_certificate_store", None)
        if store is None:
            store = CertificateStore(self.cfg.charger_id)
            self._certificate_store = store
        return store

    def take_password(self, password: str) -> None:
        """A new Basic Auth password: used from the next connection, which follows at once
        (after the answer is sent), as chargers do (1.6 security whitepaper, 2.0.1 A01)."""
        self.cfg.password = password

        async def reconnect() -> None:
            self.drop_connection()

        self.defer(reconnect)
