"""Check that a query's plan does not grow with history (docs/database.md).

The history tables of a CSMS -- events, sessions, meter samples, status history,
alerts, CDRs, audit, cluster commands, downtime, deliveries -- grow without bound
in production. A query that runs on a timer or per charger message and is planned
as a sequential scan of one of them costs that table's size on every run, which a
test on a nearly empty database never shows. A test fills a database with
history of a realistic shape (bench/history.py: most sessions ended, a small hot
subset open, most alerts resolved, most commands finished), VACUUM ANALYZEs it,
and plans the real statements of a function with :class:`Explaining`;
:func:`full_scans` and :func:`rows_read` then say what they read.

The volumes are small enough for a test to fill in a few seconds yet large enough
for the planner to prefer an index wherever one is usable: with a few thousand
rows a sequential scan is "cheaper" and a missing index goes unnoticed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg


class Explaining:
    """An executor (connection look-alike) that plans each statement instead of running it.

    ``fetch`` and ``fetchrow`` answer nothing (``[]``, ``None``), ``fetchval`` None,
    ``execute`` an empty status: enough for the function under test to run its
    statements once each. With ``analyze`` each is run instead (EXPLAIN ANALYZE, then
    for its rows or status, both rolled back), so that :func:`rows_read` can count
    what it read and the caller gets real answers; with ``generic`` too, the plan is
    the generic one (made for any parameters), which a prepared statement -- asyncpg
    prepares every statement -- may switch to after five runs. A statement
    containing one of ``run`` is run
    for real instead -- a lock, or the read that gives the next statement its
    parameters. ``plans`` holds the root of each plan (EXPLAIN's JSON), ``queries``
    the statements planned.
    """

    def __init__(
        self,
        conn: asyncpg.Connection,
        run: Sequence[str] = (),
        analyze: bool = False,
        generic: bool = False,
    ) -> None:
        self.conn = conn
        self.run = tuple(run)
        self.analyze = analyze
        self.generic = generic
        self.plans: list[dict[str, Any]] = []
        self.queries: list[str] = []

    def _for_real(self, query: str) -> bool:
        return any(part in query for part in self.run)

    async def _explain(self, query: str, *args: Any, status: bool = False) -> Any:
        """Plan (or with ``analyze`` run, rolled back) ``query``; if it was run, its rows
        (its command status with ``status``), else ``[]`` (``""``)."""
        answer: Any = "" if status else []
        if self.analyze:  # run it to count the rows it reads, then undo what it wrote
            transaction = self.conn.transaction()
            await transaction.start()
            try:
                if self.generic:
                    raw = await self._explain_generic(query, *args)
                else:
                    raw = await self.conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *args)
                if status:
                    answer = await self.conn.execute(query, *args)
                else:
                    answer = list(await self.conn.fetch(query, *args))
            finally:
                await transaction.rollback()
        else:
            raw = await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
        self.plans.append(json.loads(raw)[0]["Plan"])
        self.queries.append(query)
        return answer

    async def _explain_generic(self, query: str, *args: Any) -> str:
        """EXPLAIN ANALYZE of the generic plan: the one a prepared statement (asyncpg
        prepares every statement) settles on after five runs, made for any parameters."""
        await self.conn.execute(f"PREPARE explaining AS {query}")
        try:
            await self.conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            # EXECUTE takes no protocol parameters: the values go in as literals.
            values = ", ".join([await _literal(self.conn, value) for value in args])
            call = f"EXECUTE explaining({values})" if args else "EXECUTE explaining"
            return str(await self.conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {call}"))
        finally:
            await self.conn.execute("DEALLOCATE explaining")

    async def fetch(self, query: str, *args: Any, **_: Any) -> list[Any]:
        if self._for_real(query):
            return list(await self.conn.fetch(query, *args))
        return list(await self._explain(query, *args))

    async def fetchrow(self, query: str, *args: Any, **_: Any) -> Any:
        if self._for_real(query):
            return await self.conn.fetchrow(query, *args)
        rows = await self._explain(query, *args)
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any, **_: Any) -> Any:
        if self._for_real(query):
            return await self.conn.fetchval(query, *args)
        rows = await self._explain(query, *args)
        return rows[0][0] if rows else None

    async def execute(self, query: str, *args: Any, **_: Any) -> str:
        if self._for_real(query):
            return str(await self.conn.execute(query, *args))
        return str(await self._explain(query, *args, status=True))

    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


async def _literal(conn: asyncpg.Connection, value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool | int | float):
        return repr(value).upper() if isinstance(value, bool) else repr(value)
    if isinstance(value, datetime):
        value = value.isoformat()
    if not isinstance(value, str):
        raise TypeError(f"no literal for {type(value).__name__} here")
    return str(await conn.fetchval("SELECT quote_literal($1::text)", value))


def scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, relation) of every scan in a plan tree (subplans and CTEs included)."""
    found = []
    if "Relation Name" in plan:
        found.append((plan["Node Type"], plan["Relation Name"]))
    for child in plan.get("Plans", []):
        found.extend(scans(child))
    return found


def full_scans(plans: Iterable[dict[str, Any]], tables: Iterable[str]) -> list[str]:
    """Every read of a whole table of ``tables`` in ``plans``, as readable lines.

    A sequential scan, or an index scan with no condition (the whole index in its
    order, e.g. into a merge join) unless a Limit above it stops it early.
    """
    watched = set(tables)
    found: list[str] = []

    def walk(plan: dict[str, Any], limited: bool) -> None:
        node, relation = plan["Node Type"], plan.get("Relation Name")
        if relation in watched:
            if node == "Seq Scan":
                found.append(f"Seq Scan on {relation}")
            elif node in ("Index Scan", "Index Only Scan") and "Index Cond" not in plan:
                if not limited:
                    found.append(f"{node} of all of {relation} ({plan.get('Index Name')})")
        for child in plan.get("Plans", []):
            walk(child, limited or node == "Limit")

    for plan in plans:
        walk(plan, False)
    return found


def rows_read(plans: Iterable[dict[str, Any]], tables: Iterable[str]) -> int:
    """Rows the scans of ``tables`` read in EXPLAIN ANALYZE plans (kept or filtered out).

    A bitmap scan counts the index entries its index scans found too: combined
    (BitmapAnd) they may each read far more than the rows the table gives.
    """
    watched = set(tables)

    def entries(plan: dict[str, Any]) -> float:
        found = plan.get("Actual Rows", 0) if plan["Node Type"] == "Bitmap Index Scan" else 0
        return float(found) + sum(entries(child) for child in plan.get("Plans", []))

    def walk(plan: dict[str, Any]) -> int:
        read = 0
        if plan.get("Relation Name") in watched:
            per_loop = (
                plan.get("Actual Rows", 0)
                + plan.get("Rows Removed by Filter", 0)
                + plan.get("Rows Removed by Index Recheck", 0)
            )
            if plan["Node Type"] == "Bitmap Heap Scan":
                per_loop = max(per_loop, sum(entries(child) for child in plan.get("Plans", [])))
            read += round(per_loop * plan.get("Actual Loops", 1))
        return read + sum(walk(child) for child in plan.get("Plans", []))

    return sum(walk(plan) for plan in plans)
