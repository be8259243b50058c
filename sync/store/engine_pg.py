"""The store on PostgreSQL: a psycopg 3 connection pool behind the same calls as SQLite.

- Reads (`Database.fetchone/fetchall/scalar`) take a pooled connection in autocommit mode.
- `transaction(key)` is BEGIN, then `pg_advisory_xact_lock(key)` (the key is the company's):
  one writer per company at a time, as SQLite's BEGIN IMMEDIATE gives one writer per file.
  The store's read-then-write code relies on it. The lock ends with the transaction.
- Every checkout checks the connection first, so the pool recovers by itself after a
  PostgreSQL restart; a server that cannot be reached raises `DatabaseUnavailable`.
- Queries keep SQLite's `?` placeholders (`sql.to_pyformat` rewrites them); rows are
  `sqlite3.Row` objects (`sql.RowMaker`); NUMERIC results (SUM, AVG) come back as int or float,
  as SQLite gives them.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import RowMaker as PsycopgRowMaker
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from sync.store.sql import DatabaseUnavailable, Row, RowMaker, to_pyformat

POOL_MIN = 1
POOL_MAX = 10
# How long a caller waits for a pooled connection (PostgreSQL down: then DatabaseUnavailable),
# and for a new connection to be made.
POOL_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5
# SQLSTATEs that mean the server is gone or refusing, not that the statement is wrong.
_GONE = ("08", "57P01", "57P02", "57P03", "53300")

_ROWS = RowMaker()


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for `name` (a company id, or a fixed purpose)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


MIGRATE_LOCK = lock_key("alegra-sync:migrate")


def describe(url: str) -> str:
    """`postgresql://host:port/dbname` for messages: never the user's password."""
    parts = conninfo_to_dict(url)
    host = parts.get("host") or "localhost"
    return f"postgresql://{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def _sqlite_rows(cursor: psycopg.AsyncCursor[Any]) -> PsycopgRowMaker[Row]:
    if cursor.description is None:
        return tuple  # type: ignore[return-value]  # never called: no rows without columns
    return _ROWS.for_columns([column.name for column in cursor.description])


class _Number(Loader):
    """NUMERIC → int, or float when it has a fraction: what SQLite returns for SUM and AVG."""

    def load(self, data: Buffer) -> int | float:
        text = bytes(data).decode("ascii")
        return float(text) if "." in text or not text.lstrip("-").isdigit() else int(text)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_loader("numeric", _Number)


def gone(exc: BaseException) -> bool:
    """True if `exc` says the database cannot be reached (not that a statement is wrong)."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(_GONE)


class PgCursor:
    """A psycopg cursor seen as an aiosqlite one: fetches give None / [] after a write."""

    lastrowid: int | None = None  # PostgreSQL has no rowid: use RETURNING

    def __init__(self, cursor: psycopg.AsyncCursor[Row]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def fetchone(self) -> Row | None:
        if self._cursor.description is None:
            return None
        return await self._cursor.fetchone()

    async def fetchall(self) -> list[Row]:
        if self._cursor.description is None:
            return []
        return await self._cursor.fetchall()


class PgConnection:
    """One pooled connection, taking the store's `?` queries."""

    def __init__(self, raw: psycopg.AsyncConnection[Row]) -> None:
        self.raw = raw

    async def execute(self, sql: str, parameters: Any = None) -> PgCursor:
        cursor = self.raw.cursor()
        if parameters is None or len(parameters) == 0:
            await cursor.execute(sql)  # no parameters: the text as written, `%` and `?` too
        else:
            await cursor.execute(to_pyformat(sql), _params(parameters))
        return PgCursor(cursor)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> PgCursor:
        cursor = self.raw.cursor()
        await cursor.executemany(to_pyformat(sql), [_params(row) for row in parameters])
        return PgCursor(cursor)


def _params(parameters: Any) -> Sequence[Any] | dict[str, Any]:
    return parameters if isinstance(parameters, dict) else tuple(parameters)


class PgEngine:
    """The pool of one process (shared by every company's handle)."""

    def __init__(self, url: str) -> None:
        self.location = describe(url)
        self._url = url
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
            url,
            open=False,
            min_size=POOL_MIN,
            max_size=POOL_MAX,
            timeout=POOL_TIMEOUT_S,
            kwargs={"autocommit": True, "row_factory": _sqlite_rows,
                    "connect_timeout": CONNECT_TIMEOUT_S},
            configure=_configure,
            check=AsyncConnectionPool.check_connection,
            name="alegra-sync",
        )

    async def open(self) -> None:
        """Open the pool and wait for its first connection; DatabaseUnavailable if none comes."""
        try:
            await self._pool.open(wait=True, timeout=POOL_TIMEOUT_S)
        except PoolTimeout as exc:
            await self._pool.close()
            reason = await self._why_not()
            raise DatabaseUnavailable(self.location, reason) from exc

    async def _why_not(self) -> str:
        """The server's own reason for refusing (a wrong password, no such database…)."""
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._url, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        await conn.close()
        return f"no connection within {POOL_TIMEOUT_S:.0f} s"

    async def close(self) -> None:
        await self._pool.close()

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if gone(exc):
                raise DatabaseUnavailable(self.location, _first_line(exc)) from exc
            raise

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PgConnection]:
        """A pooled connection in autocommit mode: each statement commits on its own."""
        with self._reachable():
            async with self._pool.connection() as raw:
                yield PgConnection(raw)

    @asynccontextmanager
    async def transaction(self, key: int) -> AsyncIterator[PgConnection]:
        """BEGIN; pg_advisory_xact_lock(key); … COMMIT (ROLLBACK on error)."""
        with self._reachable():
            async with self._pool.connection() as raw, raw.transaction():
                await raw.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
                yield PgConnection(raw)

    @asynccontextmanager
    async def migrating(self) -> AsyncIterator[PgConnection]:
        """One transaction holding the migration lock: two processes starting at once migrate
        one after the other (the second finds nothing left to do)."""
        with self._reachable():
            async with self._pool.connection() as raw:
                await raw.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
                try:
                    async with raw.transaction():
                        yield PgConnection(raw)
                finally:
                    await raw.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))

    async def fetchone(self, sql: str, params: Any) -> Row | None:
        async with self.connection() as conn:
            return await (await conn.execute(sql, params)).fetchone()

    async def fetchall(self, sql: str, params: Any) -> list[Row]:
        async with self.connection() as conn:
            return await (await conn.execute(sql, params)).fetchall()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
