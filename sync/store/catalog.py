"""What a database holds, read from its own catalog (SQLite's `sqlite_master` and pragmas,
PostgreSQL's `information_schema`): its tables, their columns and types, primary keys, the tables
each one references, and the sequences behind auto-numbered columns. Used by `db copy`
(`store/copy.py`), which must know the schema without a list of tables of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.store.db import Database

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as the catalog says, lower case: 'text', 'integer', 'bigint', 'bytea', 'blob', …
    always_generated: bool = False  # PostgreSQL `GENERATED ALWAYS AS IDENTITY`


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    references: frozenset[str]  # the tables its foreign keys point at (itself left out)
    sequences: tuple[tuple[str, str], ...] = ()  # (column, sequence): PostgreSQL auto-numbering

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def quoted(name: str) -> str:
    """An identifier, quoted the way both engines read it."""
    return '"' + name.replace('"', '""') + '"'


async def table_names(db: Database) -> list[str]:
    """Every table of the schema, the engine's own bookkeeping (`sqlite_*`) left out."""
    if db.engine == POSTGRESQL:
        rows = await db.fetchall(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
    else:
        rows = await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    return sorted(name for (name, *_) in rows if not str(name).startswith("sqlite_"))


async def describe(db: Database, name: str) -> Table:
    """The table `name` as the catalog describes it."""
    if db.engine == POSTGRESQL:
        return await _describe_postgresql(db, name)
    return await _describe_sqlite(db, name)


async def _describe_sqlite(db: Database, name: str) -> Table:
    info = await db.fetchall(f"PRAGMA table_info({quoted(name)})")
    columns = tuple(Column(row["name"], str(row["type"]).lower()) for row in info)
    key = tuple(row["name"] for row in sorted(info, key=lambda r: r["pk"]) if row["pk"])
    foreign = await db.fetchall(f"PRAGMA foreign_key_list({quoted(name)})")
    references = frozenset(row["table"] for row in foreign) - {name}
    return Table(name, columns, key, references)


async def _describe_postgresql(db: Database, name: str) -> Table:
    info = await db.fetchall(
        "SELECT column_name, data_type, identity_generation,"
        " pg_get_serial_sequence(quote_ident(table_name), column_name) AS sequence"
        " FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        (name,))
    columns = tuple(Column(row[0], str(row[1]).lower(), row[2] == "ALWAYS") for row in info)
    sequences = tuple((row[0], row[3]) for row in info if row[3] is not None)
    key = await db.fetchall(
        "SELECT k.column_name FROM information_schema.table_constraints c"
        " JOIN information_schema.key_column_usage k"
        "  ON k.constraint_schema = c.constraint_schema AND k.constraint_name = c.constraint_name"
        " WHERE c.table_schema = current_schema() AND c.table_name = ?"
        "  AND c.constraint_type = 'PRIMARY KEY' ORDER BY k.ordinal_position", (name,))
    foreign = await db.fetchall(
        "SELECT DISTINCT u.table_name FROM information_schema.table_constraints c"
        " JOIN information_schema.constraint_column_usage u"
        "  ON u.constraint_schema = c.constraint_schema AND u.constraint_name = c.constraint_name"
        " WHERE c.table_schema = current_schema() AND c.table_name = ?"
        "  AND c.constraint_type = 'FOREIGN KEY'", (name,))
    references = frozenset(row[0] for row in foreign) - {name}
    return Table(name, columns, tuple(row[0] for row in key), references, sequences)


async def describe_all(db: Database) -> dict[str, Table]:
    """Every table of the schema (`table_names`), described."""
    return {name: await describe(db, name) for name in await table_names(db)}
