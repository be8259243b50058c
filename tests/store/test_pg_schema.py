"""PostgreSQL's schema is SQLite's: the same tables, columns (types, NOT NULL, defaults),
primary keys, indexes and foreign keys, after every migration on each engine."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sync.store.db import Database
from tests.support.databases import PgServer

pytestmark = pytest.mark.anyio

# SQLite's declared type → PostgreSQL's (8-byte ids where SQLite numbers rows; REAL is 8 bytes)
TYPES = {"TEXT": {"text"}, "INTEGER": {"integer", "bigint"}, "REAL": {"double precision"},
         "BLOB": {"bytea"}}

Column = tuple[str, str, bool, str | None, int]  # (name, SQLite type, not null, default, pk)
Index = tuple[str, str, tuple[str, ...], bool, bool]  # (name, table, columns, unique, partial)
ForeignKey = tuple[str, str, str, str, str]  # (table, column, parent, parent column, on delete)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.create(migrated=False)
    try:
        yield url
    finally:
        pg_server.drop(url)


def _default(value: str | None) -> str | None:
    return None if value is None else re.sub(r"::[a-z ]+$", "", value)


def sqlite_schema(path: Path) -> tuple[dict[str, list[Column]], set[Index], set[ForeignKey]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence'")]
        columns = {t: sorted((name, kind.upper(), bool(notnull) or pk > 0, _default(dflt), pk)
                             for _, name, kind, notnull, dflt, pk in
                             conn.execute(f"PRAGMA table_info({t})"))
                   for t in tables}
        indexes = set()
        for name, table, sql in conn.execute(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index'"
                " AND sql IS NOT NULL"):
            cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})"))
            indexes.add((name, table, cols, sql.startswith("CREATE UNIQUE"), " WHERE " in sql))
        keys = {(t, r[3], r[2], r[4], r[6]) for t in tables
                for r in conn.execute(f"PRAGMA foreign_key_list({t})")}
        return columns, indexes, keys
    finally:
        conn.close()


PG_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'NO', c.column_default,
       COALESCE(k.ordinal_position, 0), c.is_identity = 'YES'
FROM information_schema.columns c
LEFT JOIN information_schema.table_constraints t
  ON t.table_name = c.table_name AND t.constraint_type = 'PRIMARY KEY'
LEFT JOIN information_schema.key_column_usage k
  ON k.constraint_name = t.constraint_name AND k.column_name = c.column_name
WHERE c.table_schema = 'public'
"""
PG_INDEXES = """
SELECT i.relname, t.relname, x.indisunique, x.indpred IS NOT NULL,
       ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(num, pos)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.num ORDER BY k.pos)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public' AND i.relname NOT IN (SELECT conname FROM pg_constraint)
"""
PG_KEYS = """
SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, af.attname,
       c.confdeltype
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1]
WHERE c.contype = 'f'
"""
ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def pg_schema(url: str) -> tuple[dict[str, list[tuple[str, str, bool, str | None, int, bool]]],
                                 set[Index], set[ForeignKey]]:
    with psycopg.connect(url) as conn:
        columns: dict[str, list[tuple[str, str, bool, str | None, int, bool]]] = {}
        for table, name, kind, notnull, dflt, pk, identity in conn.execute(PG_COLUMNS):
            columns.setdefault(table, []).append(
                (name, kind, notnull, _default(dflt), pk, identity))
        indexes = {(name, table, tuple(cols), unique, partial)
                   for name, table, unique, partial, cols in conn.execute(PG_INDEXES)}
        keys = {(t, col, parent, pcol, ON_DELETE[rule])
                for t, col, parent, pcol, rule in conn.execute(PG_KEYS)}
    return {t: sorted(cols) for t, cols in columns.items()}, indexes, keys


async def test_postgresql_has_sqlites_schema(tmp_path: Path, pg_url: str) -> None:
    for target in (tmp_path / "store.db", pg_url):
        await (await Database.open(target)).close()
    lite_columns, lite_indexes, lite_keys = sqlite_schema(tmp_path / "store.db")
    pg_columns, pg_indexes, pg_keys = pg_schema(pg_url)

    assert sorted(pg_columns) == sorted(lite_columns)
    for table, columns in lite_columns.items():
        theirs = pg_columns[table]
        assert [c[0] for c in theirs] == [c[0] for c in columns], table
        for (name, kind, notnull, dflt, pk), (_, pg_kind, pg_notnull, pg_dflt, pg_pk,
                                               identity) in zip(columns, theirs, strict=True):
            where = f"{table}.{name}"
            assert pg_kind in TYPES[kind], where
            assert (pg_notnull, pg_pk) == (notnull, pk), where
            # SQLite's AUTOINCREMENT ids are PostgreSQL identities: neither has a plain default
            assert pg_dflt == dflt or (identity and pk and dflt is None), where
    assert pg_indexes == lite_indexes
    assert pg_keys == lite_keys
