"""The store's connection: SQLite (the default) or PostgreSQL, migrations at start-up, short
transactions.

SQLite: the web process and the worker each open their own `Database` on the same file (WAL, busy
timeout). Inside a process, one aiosqlite connection is shared and guarded by an asyncio lock, so
one coroutine's transaction never interleaves with another's statements.

PostgreSQL (`postgresql://…`, sync/store/engine_pg.py): a connection pool; a transaction holds
its company's advisory lock, so one writer per company at a time, as SQLite's one writer per file.

One set of queries runs on both (sync/store/sql.py): `?` placeholders, rows as `sqlite3.Row`.
Catch `IntegrityError` / `DatabaseUnavailable` from here, never a driver's own classes.
Never hold `transaction()` across an HTTP call.
"""

from __future__ import annotations

import asyncio
import copy
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiosqlite

from sync.store.migrate import (
    RENUMBERED,
    MigrationOutOfOrder,
    Step,
    migration_files,
    pending_versions,
    plan,
    refuse_out_of_order,
    split_sql,
)
from sync.store.sql import (
    Connection,
    Cursor,
    DatabaseUnavailable,
    IntegrityError,
    OperationalError,
    Params,
    Row,
    is_postgresql,
)

if TYPE_CHECKING:
    from sync.store.engine_pg import PgEngine

__all__ = [
    "DEFAULT_COMPANY", "RENUMBERED", "Connection", "Cursor", "Database", "DatabaseUnavailable",
    "Engine", "IntegrityError", "MigrationOutOfOrder", "OperationalError", "Row",
    "check_openable", "utcnow",
]

BUSY_TIMEOUT_MS = 10_000
Engine = Literal["sqlite", "postgresql"]
_migration_files = migration_files  # the shared migrations (tests/store/test_migrations.py)
_split_sql = split_sql


def check_openable(path: Path) -> None:
    """Raise DatabaseUnavailable now if `path` cannot be opened (or created) as a SQLite
    database: for the web process, which must say so in one line before its server starts
    (inside the server's start-up, the failure would be a traceback). Synchronous and brief."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA schema_version")  # reads the header: "file is not a database"
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseUnavailable(path, exc) from exc


def utcnow() -> str:
    """The one timestamp format of the store: ISO 8601, UTC, microseconds, sortable as text."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


DEFAULT_COMPANY = "default"


class Database:
    """One process's connection to the store. Open with `await Database.open(target)`: a SQLite
    file's path, or a `postgresql://` URL (`engine` says which).

    A handle is scoped to one company (`company`, 'default' unless `for_company` says otherwise):
    the store's functions read and write that company's rows only. Scoped handles share the
    connection (SQLite: one connection and its lock; PostgreSQL: one pool)."""

    def __init__(self, conn: aiosqlite.Connection | None, path: Path | None,
                 pg: PgEngine | None = None) -> None:
        self._conn = conn
        self._path = path
        self._pg = pg
        self.engine: Engine = "sqlite" if pg is None else "postgresql"
        self.location = str(path) if pg is None else pg.location  # for messages: no password
        self.company = DEFAULT_COMPANY
        self._lock = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        """The SQLite connection (SQLite only: PRAGMAs, tests)."""
        if self._conn is None:
            raise TypeError(f"{self.location} is PostgreSQL: no SQLite connection")
        return self._conn

    @property
    def path(self) -> Path:
        """The SQLite file (SQLite only)."""
        if self._path is None:
            raise TypeError(f"{self.location} is PostgreSQL: no database file")
        return self._path

    def for_company(self, company: str) -> Database:
        """The same connection, scoped to `company`."""
        scoped = copy.copy(self)
        scoped.company = company
        return scoped

    @classmethod
    async def open(cls, target: Path | str, *, migrate: bool = True) -> Database:
        """Connect and apply pending migrations (idempotent, concurrent-safe). `target`: a SQLite
        file's path, or a `postgresql://user:password@host:port/dbname` URL."""
        if is_postgresql(target):
            db = await cls._open_postgresql(str(target))
        else:
            db = await cls._open_sqlite(Path(target))
        if migrate:
            try:
                await db.migrate()
            except BaseException:
                await db.close()
                raise
        return db

    @classmethod
    async def _open_postgresql(cls, url: str) -> Database:
        from sync.store.engine_pg import PgEngine  # noqa: PLC0415 -- psycopg_pool only when used

        engine = PgEngine(url)
        await engine.open()
        return cls(None, None, engine)

    @classmethod
    async def _open_sqlite(cls, path: Path) -> Database:
        """Connect and set the pragmas."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(str(path), isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseUnavailable(path, exc) from exc
        conn.row_factory = sqlite3.Row
        try:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as exc:  # not a database, or unreadable: close, or it hangs
            await conn.close()
            raise DatabaseUnavailable(path, exc) from exc
        # FULL: a committed row survives power loss too, not only a killed process. Group commit
        # (see receiver/inbox/writer.py) is what keeps this affordable on the hot webhook path.
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
        return cls(conn, path)

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
        else:
            await self.conn.close()

    async def migrate(self) -> list[int]:
        """Apply every migration not yet recorded; returns the versions applied now.

        SQLite: foreign keys are off while migrations run (a table others reference may be
        rebuilt) and checked before COMMIT: a migration that leaves a dangling reference is rolled
        back. PostgreSQL: one transaction under a session advisory lock (two processes starting
        at once apply them once); PostgreSQL checks the foreign keys itself."""
        if self._pg is not None:
            async with self._pg.migrating() as conn:
                return await _apply(conn, "postgresql")
        await self.conn.execute("PRAGMA foreign_keys = OFF")
        try:
            async with self.transaction() as conn:
                return await _apply(conn, "sqlite")
        finally:
            await self.conn.execute("PRAGMA foreign_keys = ON")

    async def pending_migrations(self) -> list[int]:
        """Versions shipped with the code but not applied to this database (for /readyz)."""
        rows = await self.fetchall("SELECT version FROM schema_migrations")
        done = {RENUMBERED.get(row[0], row[0]) for row in rows}
        return pending_versions(self.engine, done)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """BEGIN … COMMIT (ROLLBACK on error), one writer at a time. SQLite: BEGIN IMMEDIATE,
        exclusive within this process. PostgreSQL: a pooled connection holding the handle's
        company's advisory lock until COMMIT, so one writer per company across every process."""
        if self._pg is not None:
            async with self._pg.transaction(self._lock_key()) as pg_conn:
                yield pg_conn
            return
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    def _lock_key(self) -> int:
        from sync.store.engine_pg import lock_key  # noqa: PLC0415 -- loaded with the engine

        return lock_key(f"company:{self.company}")

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in its own transaction; returns the number of rows changed."""
        async with self.transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        if self._pg is not None:
            return await self._pg.fetchone(sql, params)
        async with self._lock:
            cursor = await self.conn.execute(sql, params)
            row: Row | None = await cursor.fetchone()
            return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        if self._pg is not None:
            return await self._pg.fetchall(sql, params)
        async with self._lock:
            cursor = await self.conn.execute(sql, params)
            return list(await cursor.fetchall())

    async def scalar(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]


_CREATE_RECORD = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


async def _apply(conn: Connection, engine: Engine) -> list[int]:
    """Inside the migration's transaction: run each pending step and record its versions."""
    await conn.execute(_CREATE_RECORD)
    if engine == "sqlite":
        await _renumber(conn, {version: name for version, name, _ in migration_files()})
    cursor = await conn.execute("SELECT version FROM schema_migrations")
    done = {row[0] for row in await cursor.fetchall()}
    steps = plan(engine, done)
    refuse_out_of_order([v for step in steps for v, _ in step.records], done)
    check_fks = engine == "sqlite" and bool(steps)
    dangling_before = await _dangling(conn) if check_fks else Counter()
    applied_now: list[int] = []
    for step in steps:
        applied_now += await _run(conn, step)
    if check_fks:
        await _refuse_new_dangling(conn, dangling_before)
    return applied_now


async def _run(conn: Connection, step: Step) -> list[int]:
    for statement in split_sql(step.sql):
        await conn.execute(statement)
    now = utcnow()
    await conn.executemany(
        "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
        [(version, name, now) for version, name in step.records],
    )
    return [version for version, _ in step.records]


async def _dangling(conn: Connection) -> Counter[tuple[str, str]]:
    """SQLite: rows whose reference finds no parent, counted by (table, parent table)."""
    cursor = await conn.execute("PRAGMA foreign_key_check")
    return Counter((row[0], row[2]) for row in await cursor.fetchall())


async def _refuse_new_dangling(conn: Connection, before: Counter[tuple[str, str]]) -> None:
    """Roll the migrations back if they left a reference dangling that was not before."""
    new = await _dangling(conn) - before
    if new:
        raise sqlite3.IntegrityError(f"migration left dangling references: {dict(new)}")


async def _renumber(conn: Connection, names: dict[int, str]) -> None:
    """SQLite: move the record of each renumbered migration to its new number (and file name)."""
    for old, new in RENUMBERED.items():
        await conn.execute(
            "UPDATE OR IGNORE schema_migrations SET version = ?, name = ? WHERE version = ?",
            (new, names[new], old),
        )
