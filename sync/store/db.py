"""The SQLite connection: WAL, busy timeout, migrations at start-up, short transactions.

The web process and the worker each open their own `Database` on the same file. Inside a process,
one aiosqlite connection is shared and guarded by an asyncio lock, so one coroutine's transaction
never interleaves with another's statements. Never hold `transaction()` across an HTTP call.
"""

from __future__ import annotations

import asyncio
import copy
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

BUSY_TIMEOUT_MS = 10_000
Row = sqlite3.Row
# Migrations renumbered after a release: old version → new. A database that recorded the old
# number has the migration applied; `migrate` moves its record to the new number.
# (0101 was added after 0401 and 0500 had shipped; it became 0501 so the sequence only grows.)
RENUMBERED = {101: 501}


class MigrationOutOfOrder(RuntimeError):
    """A migration not applied yet is numbered below one already applied: a fresh database and
    this one would apply them in different orders. Renumber it above every released one."""


class DatabaseUnavailable(Exception):
    """The DATABASE_URL file cannot be opened as a SQLite database; the message says why."""

    def __init__(self, path: Path, reason: object) -> None:
        super().__init__(f"DATABASE_URL: cannot open {path} as a SQLite database: {reason}")


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


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("sync.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


DEFAULT_COMPANY = "default"


class Database:
    """One process's connection to the store. Open with `await Database.open(path)`.

    A handle is scoped to one company (`company`, 'default' unless `for_company` says otherwise):
    the store's functions read and write that company's rows only. Scoped handles share the
    connection and its lock."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.company = DEFAULT_COMPANY
        self._lock = asyncio.Lock()

    def for_company(self, company: str) -> Database:
        """The same connection, scoped to `company`."""
        scoped = copy.copy(self)
        scoped.company = company
        return scoped

    @classmethod
    async def open(cls, path: Path | str, *, migrate: bool = True) -> Database:
        """Connect, set the pragmas, and apply pending migrations (idempotent, concurrent-safe)."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(str(path), isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseUnavailable(path, exc) from exc
        conn.row_factory = sqlite3.Row
        db = cls(conn, path)
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
        if migrate:
            await db.migrate()
        return db

    async def close(self) -> None:
        await self.conn.close()

    async def migrate(self) -> list[int]:
        """Apply every migration not yet recorded; returns the versions applied now.

        Foreign keys are off while migrations run (a table others reference may be rebuilt) and
        checked before COMMIT: a migration that leaves a dangling reference is rolled back."""
        await self.conn.execute("PRAGMA foreign_keys = OFF")
        try:
            return await self._migrate()
        finally:
            await self.conn.execute("PRAGMA foreign_keys = ON")

    async def _migrate(self) -> list[int]:
        applied_now: list[int] = []
        async with self.transaction() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            files = _migration_files()
            await _renumber(conn, {version: name for version, name, _ in files})
            cursor = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            pending = [(v, n, sql) for v, n, sql in files if v not in done]
            _refuse_out_of_order([v for v, _, _ in pending], done)
            dangling_before = await _dangling(conn) if pending else Counter()
            for version, name, sql in pending:
                for statement in _split_sql(sql):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, utcnow()),
                )
                applied_now.append(version)
            if applied_now:
                await _refuse_new_dangling(conn, dangling_before)
        return applied_now

    async def pending_migrations(self) -> list[int]:
        """Versions shipped with the code but not applied to this file (for /readyz)."""
        rows = await self.fetchall("SELECT version FROM schema_migrations")
        done = {RENUMBERED.get(row[0], row[0]) for row in rows}
        return [v for v, _, _ in _migration_files() if v not in done]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error), exclusive within this process."""
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement in its own transaction; returns the number of rows changed."""
        async with self.transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        async with self._lock:
            cursor = await self.conn.execute(sql, params)
            row: Row | None = await cursor.fetchone()
            return row

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        async with self._lock:
            cursor = await self.conn.execute(sql, params)
            return list(await cursor.fetchall())

    async def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]


async def _dangling(conn: aiosqlite.Connection) -> Counter[tuple[str, str]]:
    """Rows whose reference finds no parent, counted by (table, parent table)."""
    cursor = await conn.execute("PRAGMA foreign_key_check")
    return Counter((row[0], row[2]) for row in await cursor.fetchall())


async def _refuse_new_dangling(
    conn: aiosqlite.Connection, before: Counter[tuple[str, str]]
) -> None:
    """Roll the migrations back if they left a reference dangling that was not before."""
    new = await _dangling(conn) - before
    if new:
        raise sqlite3.IntegrityError(f"migration left dangling references: {dict(new)}")


async def _renumber(conn: aiosqlite.Connection, names: dict[int, str]) -> None:
    """Move the record of each renumbered migration to its new number (and file name)."""
    for old, new in RENUMBERED.items():
        await conn.execute(
            "UPDATE OR IGNORE schema_migrations SET version = ?, name = ? WHERE version = ?",
            (new, names[new], old),
        )


def _refuse_out_of_order(pending: list[int], done: set[int]) -> None:
    """Migrations only grow: each one not applied yet must be numbered above every applied one."""
    highest = max(done, default=0)
    behind = [version for version in pending if version < highest]
    if behind:
        raise MigrationOutOfOrder(
            f"migrations {', '.join(map(str, behind))} are not applied yet but numbered below"
            f" {highest}, which is: a fresh database would apply them in another order."
            " Renumber them above every released migration"
        )


def _split_sql(script: str) -> list[str]:
    """Split a migration on `;` at line ends (our migrations hold no triggers or string `;`)."""
    statements, current = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s.strip(" ;\n")]
