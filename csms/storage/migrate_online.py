"""Index builds that do not block writes, run by :mod:`csms.storage.migrate` outside a transaction.

A plain ``CREATE INDEX`` blocks every write to its table while it builds --
seconds per million rows, minutes on a grown events or sessions table, during
which no charger message can be stored. ``CREATE INDEX CONCURRENTLY`` lets
writes go on, but cannot run inside a transaction, and a build that fails or
is interrupted leaves an *invalid* index behind, which ``IF NOT EXISTS`` would
then take for done. Here:

* :func:`statements` splits a migration into its statements (quotes,
  comments and dollar-quoted bodies respected);
* :func:`build_concurrently` runs one ``CREATE INDEX CONCURRENTLY`` after
  dropping an invalid leftover of the same name, so running it again after a
  crash finishes the job;
* :func:`concurrent_form` turns a migration's ``CREATE INDEX IF NOT EXISTS``
  on an existing table into its concurrent twin, which the migrator builds
  before the migration's transaction: the migration's own statement then finds
  the index and does nothing (docs/database.md, "Migrations and table locks").
"""

from __future__ import annotations

import re

import asyncpg

NO_TRANSACTION = re.compile(r"^\s*--\s*migrate:\s*no-transaction\s*$", re.MULTILINE)
"""The header line of a migration that runs statement by statement, outside a transaction."""

_CREATE_INDEX = re.compile(
    r"^CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(IF\s+NOT\s+EXISTS\s+)?"
    r"(?P<name>\"[^\"]+\"|[a-z_][a-z0-9_$]*)\s+ON\s+(ONLY\s+)?"
    r"(?P<table>\"[^\"]+\"|[a-z_][a-z0-9_$.]*)",
    re.IGNORECASE,
)


def statements(sql: str) -> list[str]:
    """The statements of ``sql``, without comments around them, in order."""
    found: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            current.append("\n")
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            current.append(" ")
            continue
        if c in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == c and sql.startswith(c * 2, end):
                    end += 2  # a doubled quote inside
                elif sql[end] == c:
                    break
                else:
                    end += 1
            current.append(sql[i : end + 1])
            i = end + 1
            continue
        tag = re.match(r"\$[A-Za-z_0-9]*\$", sql[i:]) if c == "$" else None
        if tag:
            end = sql.find(tag.group(), i + len(tag.group()))
            end = n if end < 0 else end + len(tag.group())
            current.append(sql[i:end])
            i = end
            continue
        if c == ";":
            _close(current, found)
        else:
            current.append(c)
        i += 1
    _close(current, found)
    return found


def _close(current: list[str], found: list[str]) -> None:
    text = "".join(current).strip()
    current.clear()
    if text:
        found.append(text)


def index_name(statement: str) -> tuple[str, str] | None:
    """(index, table) a ``CREATE INDEX`` statement creates; None for any other statement."""
    match = _CREATE_INDEX.match(statement)
    if match is None:
        return None
    return match["name"], match["table"]


def concurrent_form(statement: str) -> str | None:
    """The ``CONCURRENTLY`` twin of a ``CREATE INDEX IF NOT EXISTS``; None for others.

    Only ``IF NOT EXISTS`` ones: after building the twin, the statement itself
    must find the index and do nothing.
    """
    match = _CREATE_INDEX.match(statement)
    if match is None or match.group(3) is None or match.group(2) is not None:
        return None
    head = "CREATE UNIQUE INDEX" if match.group(1) else "CREATE INDEX"
    return f"{head} CONCURRENTLY IF NOT EXISTS{statement[match.end(3) - 1 :]}"


async def table_exists(conn: asyncpg.Connection[asyncpg.Record], table: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table))


async def drop_invalid(conn: asyncpg.Connection[asyncpg.Record], index: str) -> bool:
    """Drop index ``index`` if a failed concurrent build left it invalid; True if it did."""
    invalid = await conn.fetchval(
        "SELECT NOT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)", index
    )
    if invalid:
        await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}")
    return bool(invalid)


async def build_concurrently(conn: asyncpg.Connection[asyncpg.Record], statement: str) -> None:
    """Run a ``CREATE INDEX CONCURRENTLY``, first dropping an invalid index of its name.

    On failure the build's own invalid leftover is dropped too, so that nothing
    half-built stays behind; the error is raised.
    """
    names = index_name(statement)
    if names is not None:
        await drop_invalid(conn, names[0])
    try:
        await conn.execute(statement)
    except BaseException:
        if names is not None and not conn.is_closed():
            await drop_invalid(conn, names[0])
        raise
