"""A WHERE clause built from the filters a caller gave, every value a bound parameter.

A list filter written ``($1::text IS NULL OR charge_point_id = $1)`` is one
statement for every combination of filters, so Postgres plans it once for all
of them: asyncpg prepares each statement, and after five runs a prepared
statement may switch to the generic plan, made without the values. That plan
cannot use the index of a filter that might be NULL, and a filtered list of a
history table (sessions, alerts) became a sequential scan of all of it
(docs/database.md, "Filters"). Here only the filters given become conditions,
so each combination is its own statement, planned for what it filters on.

Conditions are SQL written in the code (``"charge_point_id = {}"``); the value
only ever travels as a parameter (``$n``), never pasted into the text.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from csms.storage import Executor

# The cursor of a first page. GiST orders by a float8 distance, exact below 2**53 only:
# from the largest bigint, ids a thousand apart would be equally far, in any order. No
# sequence gets near 2**52 (4.5e15) ids.
PAST_EVERY_ID = 2**52


class Where:
    """Conditions and their parameters; ``{}`` in a condition is its value's placeholder.

    >>> where = Where()
    >>> where.add("charge_point_id = {}", "CP-1")
    >>> where.add("status = {}", None)  # not given: no condition
    >>> f"WHERE {where.sql} LIMIT {where.param(10)}", where.args
    ('WHERE (charge_point_id = $1) LIMIT $2', ['CP-1', 10])
    """

    def __init__(self) -> None:
        self.args: list[Any] = []
        self._conditions: list[str] = []

    def param(self, value: Any) -> str:
        """Bind ``value``; its placeholder (``$n``)."""
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, condition: str, value: Any) -> None:
        """``condition`` with ``value`` in each ``{}``, unless ``value`` is None (no filter)."""
        if value is None:
            return
        self._conditions.append(condition.replace("{}", self.param(value)))

    def always(self, condition: str) -> None:
        """A condition that holds whatever was given (no parameter)."""
        self._conditions.append(condition)

    @property
    def sql(self) -> str:
        """The conditions joined with AND; ``true`` when there are none."""
        return " AND ".join(f"({c})" for c in self._conditions) or "true"


async def fetch_planned_for_values(conn: Executor, query: str, *args: Any) -> list[asyncpg.Record]:
    """``conn.fetch(query, *args)``, planned for these values, never as a generic plan.

    asyncpg keeps every statement prepared, and after five runs Postgres may settle
    on the statement's generic plan, made without the values. Where the right plan
    depends on them (how wide a time range is), that one is wrong for some calls.
    A statement prepared for this call alone (not in asyncpg's cache; closed when
    dropped) is planned with its values: one more round trip, for an operator's page.
    """
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as acquired:
            return await fetch_planned_for_values(acquired, query, *args)
    prepare = getattr(conn, "prepare", None)
    if prepare is None:  # an executor without prepared statements (a test's look-alike)
        return list(await conn.fetch(query, *args))
    statement = await prepare(query)
    return list(await statement.fetch(*args))


def nearest_ids_below(where: Where, before_id: int | None) -> str:
    """``ORDER BY`` for a page of a GiST (column, id) range: newest first, from the cursor.

    ``id <-> cursor`` is a nearest-neighbour search of the GiST index (btree_gist):
    the ids nearest the cursor among the rows of the range. With every id below the
    cursor (``id < before_id``, or the first page's :data:`PAST_EVERY_ID`) those are
    the same rows in the same order as ``ORDER BY id DESC``, read as a page; a B-tree
    gives either the range or the id order, never both (docs/database.md, "Filters").
    """
    cursor = min(before_id if before_id is not None else PAST_EVERY_ID, PAST_EVERY_ID)
    return f"ORDER BY id <-> {where.param(cursor)}::bigint"
