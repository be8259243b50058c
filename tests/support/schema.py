"""Databases built at an older schema, and a comparable view of any database's schema."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from sync.store.db import _split_sql

Migration = tuple[int, str, str]  # (version, file name, SQL)

RELEASES = Path(__file__).parent.parent / "store" / "releases"


def release_migrations(release: str) -> list[Migration]:
    """The migration files a release shipped (a copy kept under tests/store/releases/)."""
    folder = RELEASES / release / "migrations"
    return sorted(
        (int(path.name.split("_", 1)[0]), path.name, path.read_text(encoding="utf-8"))
        for path in folder.glob("*.sql")
    )


def build(path: Path, migrations: Iterable[Migration]) -> None:
    """A database with exactly these migrations applied, in version order, and recorded the way
    every release's `Database.migrate` recorded them."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(
            "CREATE TABLE schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for version, name, sql in sorted(migrations):
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, "2024-05-01T00:00:00.000000+00:00"),
            )
    finally:
        conn.close()


def run_script(path: Path, script: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(script)
    finally:
        conn.close()


def schema(path: Path) -> set[tuple[str, str, str]]:
    """Every table, index and trigger as (type, name, SQL with whitespace normalised)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name != 'sqlite_sequence'"
        ).fetchall()
    finally:
        conn.close()
    return {(kind, name, _normalised(sql)) for kind, name, sql in rows}


def versions(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(path)
    try:
        query = "SELECT version, name FROM schema_migrations ORDER BY version"
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def table_rows(path: Path) -> dict[str, list[dict[str, object]]]:
    """Every row of every table but the migration record, as dicts, in rowid order."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT IN ('schema_migrations', 'sqlite_sequence') ORDER BY name")]
        return {
            table: [dict(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]  # noqa: S608 -- names from sqlite_master
            for table in tables
        }
    finally:
        conn.close()


def _normalised(sql: str | None) -> str:
    if sql is None:  # an index SQLite made itself (a PRIMARY KEY or UNIQUE constraint)
        return ""
    return re.sub(r"\s+", " ", sql).replace("( ", "(").replace(" )", ")").strip()
