"""The store on PostgreSQL: a psycopg 3 connection pool behind the same calls as SQLite.

- Reads (`Database.fetchone/fetchall/scalar`) take a pooled connection in autocommit mode.
- `transaction(key)` is BEGIN, then `pg_advisory_xact_lock(key)` (the key is the company's):
  one writer per company at a time, as SQLite's BEGIN IMMEDIATE gives one writer per file.
  The store's read-then-write code relies on it. The lock ends with the transaction. Within a
  process, a company's transactions first queue on an asyncio lock, so a burst for one company
  waits without holding the pool's connections (the advisory lock is then contended only by
  other processes).
- Every checkout checks the connection first, so the pool recovers by itself after a
  PostgreSQL restart; a server that cannot be reached raises `DatabaseUnavailable`.
- Queries keep SQLite's `?` placeholders (`sql.to_pyformat` rewrites them); rows are
  `sqlite3.Row` objects (`sql.RowMaker`); NUMERIC results (SUM, AVG) come back as int or float,
  as SQLite gives them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import select
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import RowMaker as PsycopgRowMaker
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from sync.store.sql import (
    DatabaseUnavailable,
    PgIntegrityError,
    PgOperationalError,
    Row,
    RowMaker,
    to_pyformat,
)

POOL_MIN = 1
POOL_MAX = 10
# How long a caller waits for a pooled connection (PostgreSQL down: then DatabaseUnavailable),
# and for a new connection to be made.
POOL_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5
# A server that vanishes without closing its connections (a host or network down) is noticed by
# TCP keepalives after about 10 + 3 × 5 s instead of the system's default two hours, and an
# unacknowledged write gives up after 30 s. Taken unless DATABASE_URL sets its own.
CONNECTION_DEFAULTS = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5",
                       "keepalives_count": "3", "tcp_user_timeout": "30000",
                       "application_name": "alegra-sync"}
# SQLSTATEs that mean the server is gone or refusing, not that the statement is wrong.
_GONE = ("08", "57P01", "57P02", "57P03", "53300")

_ROWS = RowMaker()

# The pool's own warnings ("error connecting in 'alegra-sync'" twice a second while the server is
# away, "discarding closed connection"), plain text among the JSON lines, are left out: whoever
# needs the database reports it gone, once (DatabaseUnavailable: the worker's
# `database.unavailable` line, the web process's 503 and /readyz).
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


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


def _connection_defaults(url: str) -> dict[str, Any]:
    given = conninfo_to_dict(url)
    defaults = {"connect_timeout": str(CONNECT_TIMEOUT_S), **CONNECTION_DEFAULTS}
    return {name: value for name, value in defaults.items() if name not in given}


def _sqlite_rows(cursor: psycopg.AsyncCursor[Any]) -> PsycopgRowMaker[Row]:
    if cursor.description is None:
        return tuple  # type: ignore[return-value]  # never called: no rows without columns
    return _ROWS.for_columns([column.name for column in cursor.description])


class _BoolAsInt(Dumper):
    """True/False as an untyped '1'/'0', which PostgreSQL reads as what the place needs: an
    INTEGER (our booleans' columns, as SQLite stores them) or a condition (`CASE WHEN ?`)."""

    oid = 0  # unknown: typed by its context

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _Number(Loader):
    """NUMERIC → int, or float when it has a fraction: what SQLite returns for SUM and AVG."""

    def load(self, data: Buffer) -> int | float:
        text = bytes(data).decode("ascii")
        return float(text) if "." in text or not text.lstrip("-").isdigit() else int(text)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_loader("numeric", _Number)
    conn.adapters.register_dumper(bool, _BoolAsInt)


async def _check(conn: psycopg.AsyncConnection[Any]) -> None:
    """On checkout: a connection the server ended (a restart, pg_terminate_backend) has its
    socket readable while idle (the server's goodbye, then EOF); only then is a round trip
    spent to find out, and the pool replaces the connection if it fails. A server that vanished
    without a word is found by the next statement (DatabaseUnavailable; the pool drops it)."""
    if conn.broken or conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        await AsyncConnectionPool.check_connection(conn)


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

    def __init__(self, cursor: psycopg.AsyncCursor[Row]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        """PostgreSQL has no rowid: refused loudly rather than a wrong 0 or None."""
        raise TypeError("lastrowid is SQLite's: write `INSERT … RETURNING id` and fetch it")

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
        params = _params(parameters or ())
        with store_errors():
            if params:
                await cursor.execute(to_pyformat(sql), params)
            else:
                await cursor.execute(sql)  # no parameters: the text as written, `%` and `?` too
        return PgCursor(cursor)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> PgCursor:
        cursor = self.raw.cursor()
        with store_errors():
            await cursor.executemany(to_pyformat(sql), [_params(row) for row in parameters])
        return PgCursor(cursor)


@contextmanager
def store_errors() -> Iterator[None]:
    """psycopg's integrity and (non-connection) operational errors as the store's own types,
    with the server's primary message only: its DETAIL line repeats the refused row's values
    ("Failing row contains (…)", "Key (…)=(…)"), which must reach no log. The driver's error is
    left out of the chain for the same reason (a traceback prints its text); its SQLSTATE is
    kept as `sqlstate`."""
    try:
        yield
    except psycopg.IntegrityError as exc:
        raise _without_detail(PgIntegrityError, exc) from None
    except psycopg.OperationalError as exc:
        if gone(exc):
            raise
        raise _without_detail(PgOperationalError, exc) from None


def _without_detail(
    kind: type[PgIntegrityError] | type[PgOperationalError], exc: psycopg.Error
) -> PgIntegrityError | PgOperationalError:
    primary = exc.diag.message_primary or type(exc).__name__
    error = kind(" ".join(primary.split()))
    error.sqlstate = exc.sqlstate
    return error


def _params(parameters: Any) -> Sequence[Any] | dict[str, Any]:
    return parameters if isinstance(parameters, dict) else tuple(parameters)


class PgEngine:
    """The pool of one process (shared by every company's handle)."""

    def __init__(self, url: str, *, timeout_s: float | None = None) -> None:
        self.location = describe(url)
        self._url = url
        self._timeout_s = timeout_s = timeout_s or POOL_TIMEOUT_S
        self._writers: dict[int, asyncio.Lock] = {}  # this process's writer, by lock key
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
            url,
            open=False,
            min_size=POOL_MIN,
            max_size=POOL_MAX,
            timeout=timeout_s,
            kwargs={"autocommit": True, "row_factory": _sqlite_rows,
                    **_connection_defaults(url)},
            configure=_configure,
            check=_check,
            name="alegra-sync",
        )

    async def open(self) -> None:
        """Connect once (a refusal says why at once: no server, a wrong password, no such
        database), then open the pool; DatabaseUnavailable if either fails."""
        try:
            first = await psycopg.AsyncConnection.connect(
                self._url, **_connection_defaults(self._url))
        except psycopg.Error as exc:
            raise DatabaseUnavailable(self.location, _one_line(exc)) from exc
        await first.close()
        try:
            await self._pool.open(wait=True, timeout=self._timeout_s)
        except PoolTimeout as exc:
            await self._pool.close()
            raise DatabaseUnavailable(
                self.location, f"no connection within {self._timeout_s:g} s") from exc

    async def close(self) -> None:
        await self._pool.close()

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if gone(exc):
                raise DatabaseUnavailable(self.location, _one_line(exc)) from exc
            raise

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PgConnection]:
        """A pooled connection in autocommit mode: each statement commits on its own."""
        with self._reachable():
            async with self._pool.connection() as raw:
                yield PgConnection(raw)

    @asynccontextmanager
    async def transaction(self, key: int) -> AsyncIterator[PgConnection]:
        """BEGIN; pg_advisory_xact_lock(key); … COMMIT (ROLLBACK on error). BEGIN and the lock
        go in one round trip (the key is an int: no quoting to get wrong)."""
        writer = self._writers.setdefault(key, asyncio.Lock())
        with self._reachable():
            async with writer, self._pool.connection() as raw:
                await raw.execute(f"BEGIN; SELECT pg_advisory_xact_lock({int(key)})")
                try:
                    yield PgConnection(raw)
                except BaseException:
                    if not raw.broken:
                        await raw.execute("ROLLBACK")
                    raise
                done = await raw.execute("COMMIT")
                if done.statusmessage != "COMMIT":  # a statement failed, its error caught
                    raise PgOperationalError(
                        "the transaction was rolled back: a statement in it failed")

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


def read_now(url: str, sql: str) -> list[tuple[Any, ...]]:
    """`sql`'s rows on a short-lived synchronous connection, for start-up checks made before any
    event loop runs (sync/credentials.py); [] when its table does not exist yet (a database not
    migrated holds nothing). DatabaseUnavailable when the server cannot be reached."""
    try:  # as `PgEngine.open`: any refusal to connect says why, as DatabaseUnavailable
        conn = psycopg.connect(url, autocommit=True, **_connection_defaults(url))
    except psycopg.Error as exc:
        raise DatabaseUnavailable(describe(url), _one_line(exc)) from exc
    try:
        with conn, store_errors():
            return list(conn.execute(to_pyformat(sql)).fetchall())
    except psycopg.errors.UndefinedTable:
        return []
    except psycopg.OperationalError as exc:  # gone (store_errors re-raised it as it was)
        raise DatabaseUnavailable(describe(url), _one_line(exc)) from exc


def _one_line(exc: BaseException) -> str:
    """libpq's reason for a failed connection, on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__
