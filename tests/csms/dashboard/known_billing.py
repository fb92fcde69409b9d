"""Real CDRs for the known history (known_data.py), priced by billing's own functions.

Tariffs (no time prices, so only energy, fee and tax count):

* ``EUR``: 0.30 / kWh, a 1.00 session fee, VAT 19 %; assigned to ``AN-A`` while
  A1 and A2 are priced.
* ``CHF``: 0.45 / kWh, VAT 8.1 %; assigned to ``AN-A`` (replacing EUR) before A3.

By hand (each line rounded half-even to cents, tax on the rounded net):

* A1 (ends 2026-03-02 10:00): 10 kWh x 0.30 = 3.00 + 1.00 fee = 4.00 net,
  tax 0.76, total 4.76 EUR.
* A2 (ends 2026-03-02 09:30): no energy, the fee 1.00 net, tax 0.19, total 1.19 EUR.
* A3 (ends 2026-03-03 01:00): 14 kWh x 0.45 = 6.30 net, tax 0.5103 -> 0.51,
  total 6.81 CHF.

So 2026-03-02: EUR 2 sessions, 5.00 net, 0.95 tax, 5.95 total; 2026-03-03:
CHF 1 session, 6.30 / 0.51 / 6.81. ``AN-B`` has none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from billing import cdrs, store
from billing.tariff import Tariff

MAX_POWER_W = Decimal(400_000)


async def price_known_history(pool: asyncpg.Pool) -> None:
    """Create the two tariffs and the three sessions' CDRs (history must be written)."""
    eur = await store.create_tariff(
        pool, "Standard EUR", Tariff(currency="EUR", price_per_kwh=Decimal("0.30"),
                                     flat_fee=Decimal("1.00"), vat_rate=Decimal("0.19")),
    )  # fmt: skip
    chf = await store.create_tariff(
        pool, "Swiss", Tariff(currency="CHF", price_per_kwh=Decimal("0.45"),
                              vat_rate=Decimal("0.081")),
    )  # fmt: skip
    ids = {
        r["transaction_id"]: r["id"]
        for r in await pool.fetch("SELECT id, transaction_id FROM sessions")
    }
    now = datetime.now(UTC)
    await store.assign(pool, "charger", "AN-A", eur.id)
    for tx in ("A1", "A2"):
        assert await cdrs.create_cdr(pool, ids[tx], now, "EUR", MAX_POWER_W) is not None
    await store.assign(pool, "charger", "AN-A", chf.id)
    assert await cdrs.create_cdr(pool, ids["A3"], now, "EUR", MAX_POWER_W) is not None
