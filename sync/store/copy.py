"""`alegra-sync db copy --from URL --to URL`: every row of a SQLite store into another, empty one.

The move of a single-machine deployment to PostgreSQL (or to another SQLite file).
The tables come from the databases' own catalogs (`store/catalog.py`), not from a list kept
here: every table the migrations create is copied, except `schema_migrations`, which the target
gets by being migrated. The copy is

- refused, with nothing written, when the target holds rows (the migrations' own seed rows, the
  `default` company, do not count), when the source is not migrated to this version, when it
  holds references that find no row (the target's foreign keys would refuse them), or when
  another process has the SQLite source open (the web process or the worker: rows they wrote
  after the snapshot would be lost);
- one consistent snapshot of the source (one transaction, BEGIN IMMEDIATE: a writer that
  slipped past the check above waits, or fails, rather than write after the snapshot), written
  in one transaction of the target, tables in foreign-key order, columns by name, read in
  batches of `BATCH_ROWS` rows (fewer when they are large: attachments) and written with
  `executemany` (SQLite) or one `COPY … FROM STDIN` per table (PostgreSQL). A failure
  rolls the whole copy back: the target is left migrated and empty, and the copy can simply
  be run again;
- checked by counts: each table's rows in the source snapshot, rows written, and rows in the
  target inside its transaction must agree (or it rolls back); `copy_database` answers the
  counts read again after COMMIT.

Values are converted to the target column's type where SQLite's typing is looser than
PostgreSQL's (an integer stored as text, text in a BLOB column); what cannot be converted
fails the copy naming the table, the column and the row, never the value.
"""

from __future__ import annotations

import contextlib
import graphlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sync import instance
from sync.settings import database_path_from_url, shown_url
from sync.store import catalog
from sync.store.catalog import POSTGRESQL, Table, quoted
from sync.store.db import Connection, Database
from sync.store.engine_pg import PgConnection
from sync.store.sql import is_postgresql

BATCH_ROWS = 1000
BATCH_BYTES = 16 * 1024 * 1024  # a batch of 1000 attachments would be gigabytes: cut by size too
NOT_COPIED = frozenset({"schema_migrations"})  # the target's own, written by its migrations

Progress = Callable[[str, int], None]  # (table, rows copied so far)
Converter = Callable[[Any], Any]


class CopyRefused(Exception):
    """The copy did not start: nothing was written to the target (at most, its migrations)."""


class CopyFailed(Exception):
    """The copy started and failed: its transaction was rolled back, the target has none of it."""


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.source == self.target


class _Rows(Protocol):
    """The source's cursor: SQLite's (aiosqlite's), which streams its rows."""

    async def fetchmany(self, size: int) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Seeds:
    """The rows a freshly migrated database already holds, by table: (key columns, keys)."""

    rows: dict[str, tuple[tuple[str, ...], frozenset[tuple[Any, ...]]]]

    def key(self, table: str) -> tuple[str, ...]:
        return self.rows[table][0] if table in self.rows else ()

    def holds(self, table: str, keys: Sequence[tuple[Any, ...]]) -> bool:
        """Are these rows of `table` all seed rows?"""
        seeded = self.rows[table][1] if table in self.rows else frozenset()
        return all(key in seeded for key in keys)


@dataclass(frozen=True)
class Plan:
    """How one table is copied: its columns (the source's, all present in the target) and, per
    column, how a source value becomes a target value (None: as it is)."""

    table: Table
    columns: tuple[str, ...]
    types: tuple[str, ...]  # the target's column types
    converters: tuple[Converter | None, ...]
    overriding: bool  # PostgreSQL identity column GENERATED ALWAYS: our ids are kept
    wide: tuple[int, ...] = ()  # positions of the source's BLOB columns (attachments: large)

    @property
    def name(self) -> str:
        return self.table.name

    def select(self) -> str:
        return f"SELECT {_column_list(self.columns)} FROM {quoted(self.name)}"  # noqa: S608 -- names quoted, from the catalog

    def insert(self) -> str:
        holders = ", ".join("?" for _ in self.columns)
        override = " OVERRIDING SYSTEM VALUE" if self.overriding else ""
        return (f"INSERT INTO {quoted(self.name)} ({_column_list(self.columns)}){override}"  # noqa: S608 -- names quoted, from the catalog
                f" VALUES ({holders})")

    def copy_statement(self) -> str:
        """PostgreSQL's bulk load of the table (several times faster than INSERTs)."""
        return f"COPY {quoted(self.name)} ({_column_list(self.columns)}) FROM STDIN"

    def convert(self, rows: Sequence[Sequence[Any]], first: int) -> list[Sequence[Any]]:
        """The rows as the target takes them; `first` is the first one's position (messages)."""
        changed = [(n, convert, NATIVE.get(self.types[n]))
                   for n, convert in enumerate(self.converters) if convert]
        if not changed:
            return [tuple(row) for row in rows]
        converted: list[Sequence[Any]] = []
        for position, row in enumerate(rows, start=first):
            values = list(row)
            for n, convert, native in changed:
                value = values[n]
                if value is None or (type(value) is native and (
                        native is not str or "\x00" not in str(value))):
                    continue  # already the column's type (the usual case: no call)
                values[n] = self._converted(convert, value, n, position)
            converted.append(tuple(values))
        return converted

    def _converted(self, convert: Converter, value: Any, column: int, position: int) -> Any:
        try:
            return convert(value)
        except ValueError as exc:  # the value itself is never named: it may be anything
            why = f" ({exc})" if exc.args and not isinstance(exc, UnicodeError) else ""
            raise CopyFailed(
                f"{self.name}.{self.columns[column]}, row {position + 1}: a "
                f"{type(value).__name__} value does not fit a {self.types[column]} column{why};"
                " nothing was copied") from None


async def copy_database(
    source_url: str, target_url: str, progress: Progress | None = None
) -> list[TableCount]:
    """Copy every row from `source_url` into the empty `target_url` (migrating it first); the
    tables' counts, source against target, read again after COMMIT."""
    async with contextlib.AsyncExitStack() as stack:
        if is_postgresql(source_url):
            raise CopyRefused("--from: a SQLite database (sqlite:///…); to copy PostgreSQL to "
                              "PostgreSQL, use pg_dump and pg_restore")
        source = await open_database(source_url, existing=True)
        stack.push_async_callback(source.close)
        if _same_database(source, source_url, target_url):
            raise CopyRefused("--from and --to name the same database")
        await _refuse_unready_source(source)
        target = await open_database(target_url, existing=False)
        stack.push_async_callback(target.close)
        return await _copy(source, target, progress or _quiet)
    raise AssertionError("unreachable")  # pragma: no cover (mypy: the stack may swallow)


def _quiet(table: str, rows: int) -> None:
    return None


async def open_database(url: str, *, existing: bool = False) -> Database:
    """The database at `url`, not migrated by opening; `existing`: a SQLite file must be there
    already (a source is never created)."""
    if is_postgresql(url):
        return await Database.open(url, migrate=False)
    if not url.startswith("sqlite:///"):
        raise CopyRefused(f"{shown_url(url)}: expected sqlite:///path or postgresql://…")
    path = database_path_from_url(url)
    if existing and not path.is_file():
        raise CopyRefused(f"no database at {path} ({url})")
    return await Database.open(path, migrate=False)


def _same_database(source: Database, source_url: str, target_url: str) -> bool:
    if is_postgresql(target_url):
        return False
    target = database_path_from_url(target_url)
    return target.exists() and source.path.resolve() == target.resolve()


async def _copy(source: Database, target: Database, progress: Progress) -> list[TableCount]:
    tables = {name: table for name, table in (await catalog.describe_all(source)).items()
              if name not in NOT_COPIED}
    seeds = await migration_seeds()
    existing = [name for name in await catalog.table_names(target) if name not in NOT_COPIED]
    await _refuse_filled(_fetcher(target), existing, seeds)
    try:
        await target.migrate()
    except Exception as exc:  # a table of another application in the way, a missing privilege
        raise CopyFailed(f"migrating the target failed: {_first_line(exc)}") from exc
    plans = plan_copy(tables, await catalog.describe_all(target), target.engine)
    try:
        copied = await _transfer(source, target, plans, seeds, progress)
    except (CopyFailed, CopyRefused):
        raise
    except Exception as exc:  # the source locked by a writer, the server gone: rolled back
        raise CopyFailed(f"{_first_line(exc)}; nothing was copied") from exc
    if target.engine == POSTGRESQL:
        await target.execute("ANALYZE")  # the planner's statistics, for the tables just filled
    fetch = _fetcher(target)
    return [TableCount(name, rows, await _count_rows(fetch, name))
            for name, rows in copied.items()]


# --- refusals: checked before anything is written ----------------------------------------------

async def _refuse_unready_source(source: Database) -> None:
    """The source must be an alegra-sync database of this version, used by no other process,
    whose references all find their rows."""
    if "schema_migrations" not in await catalog.table_names(source):
        raise CopyRefused("the source is not an alegra-sync database (no schema_migrations)")
    pending = await source.pending_migrations()
    if pending:
        raise CopyRefused(
            f"the source lacks migrations {', '.join(map(str, pending))} of this version: "
            "migrate it first (`alegra-sync db migrate --url …`, or start the service on it)")
    users = instance.processes_with_open(source.path)
    if users:
        raise CopyRefused(
            f"processes {', '.join(map(str, users))} have {source.path} open (the web process or "
            "the worker?): stop them first, or rows they write after the copy's snapshot are lost")
    dangling = await source.fetchall("PRAGMA foreign_key_check")
    if dangling:
        pairs = sorted({f"{row[0]} → {row[2]}" for row in dangling})
        raise CopyRefused(
            f"{len(dangling)} rows of the source reference rows that do not exist "
            f"({', '.join(pairs)}); the target's foreign keys would refuse them")


async def migration_seeds() -> Seeds:
    """The rows the migrations themselves insert (the `default` company), found by migrating a
    scratch database in memory: a target holding only these counts as empty."""
    scratch = await Database.open(":memory:")
    try:
        found = {}
        for table in (await catalog.describe_all(scratch)).values():
            if table.name in NOT_COPIED:
                continue
            key = table.primary_key or table.column_names
            rows = await scratch.fetchall(
                f"SELECT {_column_list(key)} FROM {quoted(table.name)}")  # noqa: S608 -- names quoted, from the catalog
            if rows:
                found[table.name] = (key, frozenset(tuple(row) for row in rows))
        return Seeds(found)
    finally:
        await scratch.close()


Fetch = Callable[[str], Awaitable[Sequence[Any]]]


def _fetcher(db: Database) -> Fetch:
    async def fetch(sql: str) -> Sequence[Any]:
        return await db.fetchall(sql)

    return fetch


def _fetcher_in(conn: Connection) -> Fetch:
    async def fetch(sql: str) -> Sequence[Any]:
        cursor = await conn.execute(sql)
        return list(await cursor.fetchall())

    return fetch


async def _refuse_filled(fetch: Fetch, tables: Sequence[str], seeds: Seeds) -> None:
    filled = []
    for name in tables:
        rows = await _rows_beyond_seeds(fetch, name, seeds)
        if rows:
            filled.append(f"{name} holds {rows} rows")
    if filled:
        raise CopyRefused(f"the target is not empty: {', '.join(filled)}; `db copy` fills an "
                          "empty database only (nothing was written): name a new database, or "
                          "drop and create this one again")


async def _rows_beyond_seeds(fetch: Fetch, table: str, seeds: Seeds) -> int:
    """0 when `table` holds nothing but the migrations' seed rows, else its row count."""
    key = seeds.key(table)
    limit = len(seeds.rows[table][1]) + 1 if key else 1
    rows = await fetch(f"SELECT {_column_list(key) or '1'} FROM {quoted(table)} LIMIT {limit}")  # noqa: S608 -- names quoted, from the catalog
    if not rows or (key and seeds.holds(table, [tuple(row) for row in rows])):
        return 0
    return await _count_rows(fetch, table)


async def _count_rows(fetch: Fetch, table: str) -> int:
    rows = await fetch(f"SELECT COUNT(*) FROM {quoted(table)}")  # noqa: S608 -- names quoted, from the catalog
    return int(rows[0][0])


# --- the plan: which tables, in which order, which columns, converted how -------------------------

def plan_copy(source: dict[str, Table], target: dict[str, Table], engine: str) -> list[Plan]:
    """One plan per source table, referenced tables before those referencing them; refused
    when the target lacks a table or a column of the source."""
    missing = sorted(set(source) - set(target))
    if missing:
        raise CopyRefused(f"the target has no table {', '.join(missing)} (is the source newer "
                          "than this alegra-sync?)")
    order = _dependency_order({name: target[name] for name in sorted(source)})
    return [_plan_table(source[name], target[name], engine) for name in order]


def _dependency_order(tables: dict[str, Table]) -> list[str]:
    sorter = graphlib.TopologicalSorter(
        {name: sorted(table.references & tables.keys()) for name, table in tables.items()})
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        raise CopyRefused(f"the foreign keys form a cycle: {' → '.join(exc.args[1])}") from None


def _plan_table(source: Table, target: Table, engine: str) -> Plan:
    columns = {column.name: column for column in target.columns}
    lacking = [name for name in source.column_names if name not in columns]
    if lacking:
        raise CopyRefused(f"the target's table {target.name} has no column {', '.join(lacking)}")
    names = source.column_names
    types = tuple(columns[name].type for name in names)
    converters = tuple(
        CONVERTERS.get(kind) if engine == POSTGRESQL else None for kind in types)
    overriding = any(columns[name].always_generated for name in names)
    wide = tuple(n for n, column in enumerate(source.columns) if column.type in _BLOB_TYPES)
    return Plan(target, names, types, converters, overriding, wide)


_BLOB_TYPES = ("blob", "bytea", "")  # SQLite: a column declared without a type holds anything


def _column_list(columns: Sequence[str]) -> str:
    return ", ".join(quoted(column) for column in columns)


# --- values: SQLite's loose typing → the PostgreSQL column's type ---------------------------------

_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def _to_integer(value: Any) -> int:
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    raise ValueError


def _to_real(value: Any) -> float:
    if isinstance(value, int | float | str):
        return float(value)
    raise ValueError


def _to_text(value: Any) -> str:
    if type(value) is not str:
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, int | float):
            value = str(value)
        else:
            raise ValueError
    if "\x00" in value:
        raise ValueError("it holds a NUL character, which PostgreSQL's text cannot")
    return str(value)


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise ValueError


def _to_boolean(value: Any) -> bool:
    if value in (0, 1):
        return bool(value)
    raise ValueError


# The Python type each converter gives: a value of that type is taken as it is.
NATIVE: dict[str, type] = {
    "smallint": int, "integer": int, "bigint": int, "real": float, "double precision": float,
    "text": str, "character varying": str, "character": str, "bytea": bytes, "boolean": bool,
}
CONVERTERS: dict[str, Converter] = {
    "smallint": _to_integer, "integer": _to_integer, "bigint": _to_integer,
    "real": _to_real, "double precision": _to_real,
    "text": _to_text, "character varying": _to_text, "character": _to_text,
    "bytea": _to_bytes, "boolean": _to_boolean,
}


# --- the copy: one read transaction, one write transaction ---------------------------------------

async def _transfer(source: Database, target: Database, plans: Sequence[Plan], seeds: Seeds,
                    progress: Progress) -> dict[str, int]:
    """Every table in one transaction of the target, read in one of the source; each table's
    source count, checked against what was written before COMMIT."""
    async with source.transaction() as read, target.transaction() as write:
        await _refuse_filled(_fetcher_in(write), [plan.name for plan in plans], seeds)
        for plan in reversed(plans):  # the seed rows make way for the source's
            if plan.name in seeds.rows:
                await write.execute(f"DELETE FROM {quoted(plan.name)}")  # noqa: S608 -- names quoted, from the catalog
        counts = {plan.name: await _copy_table(read, write, plan, progress) for plan in plans}
        await _carry_sequences(write, plans, await _sqlite_sequence(read), target.engine)
    return counts


async def _copy_table(read: Connection, write: Connection, plan: Plan, progress: Progress) -> int:
    expected = await _count_rows(_fetcher_in(read), plan.name)
    cursor = cast(_Rows, await read.execute(plan.select()))
    try:
        if isinstance(write, PgConnection):
            copied = await _load_postgresql(cursor, write, plan, progress)
        else:
            copied = await _insert_batches(cursor, write, plan, progress)
    except CopyFailed:
        raise
    except Exception as exc:  # the engine's error (either driver's), named by its table
        raise CopyFailed(f"{plan.name}: {_first_line(exc)}; nothing was copied") from exc
    written = await _count_rows(_fetcher_in(write), plan.name)
    if not expected == copied == written:
        raise CopyFailed(f"{plan.name}: {expected} rows in the source, {copied} read, {written} "
                         "in the target; nothing was copied")
    return expected


def _first_line(exc: Exception) -> str:
    """The engine's message without the row it shows (PostgreSQL's DETAIL and CONTEXT hold the
    values): the row's number instead, when COPY says it."""
    text = str(exc).strip() or type(exc).__name__
    line = re.search(r"^CONTEXT:\s+COPY [^,]+, line (\d+)", text, re.MULTILINE)
    return text.splitlines()[0] + (f" (row {line[1]})" if line else "")


async def _insert_batches(cursor: _Rows, write: Connection, plan: Plan,
                          progress: Progress) -> int:
    insert, copied = plan.insert(), 0
    async for rows in _batches(cursor, plan.wide):
        await write.executemany(insert, plan.convert(rows, copied))
        copied += len(rows)
        progress(plan.name, copied)
    return copied


async def _load_postgresql(cursor: _Rows, write: PgConnection, plan: Plan,
                           progress: Progress) -> int:
    """The table in one COPY … FROM STDIN, fed batch by batch as the source is read."""
    copied = 0
    async with write.raw.cursor() as target, target.copy(plan.copy_statement()) as load:
        async for rows in _batches(cursor, plan.wide):
            for row in plan.convert(rows, copied):
                await load.write_row(row)
            copied += len(rows)
            progress(plan.name, copied)
    return copied


async def _batches(cursor: _Rows, wide: Sequence[int]) -> AsyncIterator[Sequence[Any]]:
    """The cursor's rows, BATCH_ROWS at a time; for a table with BLOB columns (`wide`, their
    positions), fewer when those add up to BATCH_BYTES: the first fetch is one row, then as many
    as the widest row so far leaves room for."""
    if not wide:
        while rows := await cursor.fetchmany(BATCH_ROWS):
            yield rows
        return
    batch: list[Any] = []
    size, widest = 0, BATCH_BYTES
    while True:
        room = min(BATCH_ROWS - len(batch), max(1, (BATCH_BYTES - size) // widest))
        rows = await cursor.fetchmany(room)
        if not rows:
            break
        sizes = [64 + sum(len(row[n] or b"") for n in wide) for row in rows]
        widest = max(sizes) if widest == BATCH_BYTES else max(widest, *sizes)
        batch += rows
        size += sum(sizes)
        if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


async def _carry_sequences(
    write: Connection, plans: Sequence[Plan], given: dict[str, int], engine: str
) -> None:
    """The next auto-numbered id (the inbox's, job runs') continues above every id the source
    ever gave (`given`, by table), not only above those still there."""
    for plan in plans:
        mark = given.get(plan.name, 0)
        if engine == POSTGRESQL:
            for column, sequence in plan.table.sequences:
                top = await _fetcher_in(write)(
                    f"SELECT COALESCE(MAX({quoted(column)}), 0) FROM {quoted(plan.name)}")  # noqa: S608 -- names quoted, from the catalog
                highest = max(mark, int(top[0][0]))
                if highest > 0:  # the next id is highest + 1
                    await write.execute("SELECT setval(?, ?)", (sequence, highest))
        elif mark:
            await write.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?",
                                (mark, plan.name, mark))
            await write.execute(
                "INSERT INTO sqlite_sequence(name, seq) SELECT ?, ? WHERE NOT EXISTS"
                " (SELECT 1 FROM sqlite_sequence WHERE name = ?)", (plan.name, mark, plan.name))


async def _sqlite_sequence(read: Connection) -> dict[str, int]:
    """SQLite's record of the highest id each AUTOINCREMENT table gave."""
    fetch = _fetcher_in(read)
    if not await fetch("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"):
        return {}
    rows = await fetch("SELECT name, seq FROM sqlite_sequence")
    return {str(row[0]): int(row[1]) for row in rows}
