"""Revenue per time bucket, from billing's charge detail records (table ``cdrs``).

A CDR counts in the bucket its session **ended** in (``cdrs.end_at``), with the
net, tax and total it was priced at. Amounts are summed per currency and never
converted: a bucket with sessions in two currencies has two revenue entries.
Groups (the whole selection, each charger, each site) are the same as the other
analytics figures: a CDR belongs to its charger's current site, as the
charger's energy and sessions do.

CDRs are immutable and indexed by ``(charge_point_id, end_at)``, so the sums
are read straight from them (no pre-aggregation needed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from csms.dashboard.analytics import GROUPINGS, Grouping, Selection
from csms.storage import Executor

_REVENUE_SQL = """
WITH scope_chargers AS (
    SELECT c.charge_point_id, COALESCE({grouping}, '') AS grp FROM chargers c
    WHERE $2::text[] IS NULL OR c.charge_point_id = ANY($2)
)
SELECT NULLIF(c.grp, '') AS group_id,
       ($1::timestamptz[])[width_bucket(d.end_at, $1::timestamptz[])] AS start, d.currency,
       count(*) AS sessions, sum(d.total_net) AS net, sum(d.total_tax) AS tax,
       sum(d.total_cost) AS total
FROM cdrs d JOIN scope_chargers c USING (charge_point_id)
WHERE d.end_at >= ($1::timestamptz[])[1] AND d.end_at < $1[cardinality($1::timestamptz[])]
GROUP BY 1, 2, 3
"""


@dataclass(frozen=True, slots=True)
class Revenue:
    """What priced sessions brought in, in one currency (amounts exact, as billed)."""

    sessions: int
    net: Decimal
    tax: Decimal
    total: Decimal

    def __add__(self, other: Revenue) -> Revenue:
        return Revenue(
            self.sessions + other.sessions,
            self.net + other.net,
            self.tax + other.tax,
            self.total + other.total,
        )


ByCurrency = dict[str, Revenue]
BucketKey = tuple[str | None, datetime]  # (group id, bucket start)


async def per_bucket(
    conn: Executor, selection: Selection, grouping: Grouping = "all"
) -> dict[BucketKey, ByCurrency]:
    """Revenue per (group, bucket start) and currency; buckets without CDRs are absent."""
    rows = await conn.fetch(
        _REVENUE_SQL.format(grouping=GROUPINGS[grouping]),
        list(selection.edges),
        None if selection.charge_point_ids is None else list(selection.charge_point_ids),
    )
    out: dict[BucketKey, ByCurrency] = {}
    for r in rows:
        out.setdefault((r["group_id"], r["start"]), {})[r["currency"]] = Revenue(
            r["sessions"], r["net"], r["tax"], r["total"]
        )
    return out


def combine(parts: Iterable[Mapping[str, Revenue]]) -> ByCurrency:
    """Several buckets' revenue as one, summed per currency (never across currencies)."""
    total: ByCurrency = {}
    for part in parts:
        for currency, revenue in part.items():
            total[currency] = total[currency] + revenue if currency in total else revenue
    return total


def as_json(by_currency: Mapping[str, Revenue]) -> list[dict[str, Any]]:
    """Entries sorted by currency; amounts as decimal strings (money is never a float)."""
    return [
        {
            "currency": currency,
            "sessions": r.sessions,
            "net": _text(r.net),
            "tax": _text(r.tax),
            "total": _text(r.total),
        }
        for currency, r in sorted(by_currency.items())
    ]


def _text(amount: Decimal) -> str:
    return format(amount, "f")


def flatten_for_csv(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose ``revenue`` list becomes columns per currency of any row, e.g.
    ``revenue_net_EUR``, so every CSV row has the same columns (0 where none)."""
    currencies = sorted({e["currency"] for row in rows for e in row.get("revenue", [])})
    flat = []
    for row in rows:
        entries = {e["currency"]: e for e in row.get("revenue", [])}
        out = {k: v for k, v in row.items() if k != "revenue"}
        for currency in currencies:
            entry = entries.get(currency)
            out[f"priced_sessions_{currency}"] = entry["sessions"] if entry else 0
            for part in ("net", "tax", "total"):
                out[f"revenue_{part}_{currency}"] = entry[part] if entry else "0"
        flat.append(out)
    return flat
