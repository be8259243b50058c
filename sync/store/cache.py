"""The mechanics every cached Alegra table shares: newer-wins upserts and soft deletion.

Each row carries `confirmed_at`, the moment Alegra's answer was received. A write only lands if
it is at least as new as what the row holds, so a slow fetch that finishes after a newer one
(webhook confirmation racing a reconciliation) can never put an older state back.
Every row belongs to one company (`company_id`; Alegra ids are unique only within an account):
each statement here reads and writes the rows of one company only.
Table and column names come from the calling module's constants, never from input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sync.store.db import Connection, Database, utcnow

KEY = ("company_id", "alegra_id")


def _upsert_sql(table: str, columns: Sequence[str]) -> str:
    names = ["company_id", *columns, "raw", "source", "deleted", "confirmed_at", "updated_at"]
    updates = ", ".join(f"{c} = excluded.{c}" for c in names if c not in KEY)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"  # noqa: S608
        f" ON CONFLICT({', '.join(KEY)}) DO UPDATE SET {updates}"
        f" WHERE excluded.confirmed_at >= {table}.confirmed_at"
    )


async def upsert(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    *,
    company: str,
    source: str,
    confirmed_at: str | None = None,
) -> int:
    """Insert or refresh `company`'s rows (inside the caller's transaction); returns how many
    were given."""
    at = confirmed_at or utcnow()
    params = [
        (company, *(row[c] for c in columns), json.dumps(row["raw"], ensure_ascii=False), source,
         0, at, at)
        for row in rows
    ]
    if params:
        await conn.executemany(_upsert_sql(table, columns), params)
    return len(params)


async def mark_deleted(
    db: Database, table: str, alegra_id: str, *, source: str, confirmed_at: str | None = None
) -> bool:
    """Soft-delete one of `db.company`'s rows if the news of its deletion is newer than the row.
    True if changed."""
    at = confirmed_at or utcnow()
    changed = await db.execute(
        f"UPDATE {table} SET deleted = 1, source = ?, confirmed_at = ?, updated_at = ?"  # noqa: S608
        " WHERE company_id = ? AND alegra_id = ? AND deleted = 0 AND confirmed_at <= ?",
        (source, at, at, db.company, alegra_id, at),
    )
    return changed > 0


async def mark_missing_deleted(
    db: Database, table: str, seen_ids: set[str], *, source: str, scan_started_at: str
) -> list[str]:
    """After a COMPLETE scan of `db.company`'s account: soft-delete its rows Alegra no longer
    lists. Returns the ids deleted.

    Rows confirmed after the scan started (a webhook or a receipt created them meanwhile) are kept.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            f"SELECT alegra_id FROM {table}"  # noqa: S608
            " WHERE company_id = ? AND deleted = 0 AND confirmed_at < ?",
            (db.company, scan_started_at),
        )
        gone = [row[0] for row in await cursor.fetchall() if row[0] not in seen_ids]
        at = utcnow()
        await conn.executemany(
            f"UPDATE {table} SET deleted = 1, source = ?, updated_at = ?"  # noqa: S608
            " WHERE company_id = ? AND alegra_id = ?",
            [(source, at, db.company, alegra_id) for alegra_id in gone],
        )
    return gone
