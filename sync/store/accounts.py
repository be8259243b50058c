"""The chart-of-accounts cache. Alegra sends no webhooks for it: polled, and written through.
Per company: every query reads and writes `db.company`'s rows only (a parent is in the same
company as its child)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sync.alegra.records import AccountRecord
from sync.store import cache
from sync.store.db import Database, Row

TABLE = "accounts"
COLUMNS = (
    "alegra_id", "parent_id", "name", "name_key", "code", "type", "nature", "status",
    "read_only", "is_leaf",
)


def _row(record: AccountRecord) -> dict[str, Any]:
    return {**record.__dict__, "read_only": int(record.read_only), "is_leaf": int(record.is_leaf)}


def record_from_row(row: Row) -> AccountRecord:
    return AccountRecord(
        alegra_id=row["alegra_id"],
        parent_id=row["parent_id"],
        name=row["name"],
        name_key=row["name_key"],
        code=row["code"],
        type=row["type"],
        nature=row["nature"],
        status=row["status"],
        read_only=bool(row["read_only"]),
        is_leaf=bool(row["is_leaf"]),
        raw=json.loads(row["raw"]),
    )


async def upsert_accounts(
    db: Database, records: Iterable[AccountRecord], *, source: str, confirmed_at: str | None = None
) -> int:
    async with db.transaction() as conn:
        count = await cache.upsert(
            conn, TABLE, COLUMNS, map(_row, records),
            company=db.company, source=source, confirmed_at=confirmed_at,
        )
        # A parent gains a child when an account is created under it: it is no longer a leaf.
        await conn.execute(
            "UPDATE accounts SET is_leaf = 0 WHERE company_id = ? AND is_leaf = 1 AND alegra_id IN"
            " (SELECT parent_id FROM accounts"
            "  WHERE company_id = ? AND deleted = 0 AND parent_id IS NOT NULL)",
            (db.company, db.company),
        )
        return count


async def mark_missing_accounts_deleted(
    db: Database, seen_ids: set[str], *, source: str, scan_started_at: str
) -> list[str]:
    return await cache.mark_missing_deleted(
        db, TABLE, seen_ids, source=source, scan_started_at=scan_started_at
    )


async def find_expense_account(db: Database, key: str) -> AccountRecord | None:
    """The active expense leaf whose normalised name is `key` (a document posts to leaves only).
    An empty key (a name of only symbols or emoji) matches nothing."""
    if not key:
        return None
    row = await db.fetchone(
        "SELECT * FROM accounts"
        " WHERE company_id = ? AND type = 'expense' AND name_key = ? AND deleted = 0"
        " ORDER BY (status = 'inactive') NULLS FIRST, is_leaf DESC, alegra_id LIMIT 1",
        (db.company, key),
    )
    return record_from_row(row) if row else None


async def get_account(db: Database, alegra_id: str) -> AccountRecord | None:
    row = await db.fetchone(
        "SELECT * FROM accounts WHERE company_id = ? AND alegra_id = ? AND deleted = 0",
        (db.company, alegra_id),
    )
    return record_from_row(row) if row else None


async def root_expense_account(db: Database) -> AccountRecord | None:
    """The top of the expense branch (an expense account whose parent is not an expense account)."""
    row = await db.fetchone(
        "SELECT a.* FROM accounts a"
        " LEFT JOIN accounts p ON p.company_id = a.company_id AND p.alegra_id = a.parent_id"
        " WHERE a.company_id = ? AND a.type = 'expense' AND a.deleted = 0"
        " AND (p.alegra_id IS NULL OR COALESCE(p.type, '') != 'expense')"
        " ORDER BY a.code NULLS FIRST, a.alegra_id LIMIT 1",
        (db.company,),
    )
    return record_from_row(row) if row else None


async def count_accounts(db: Database) -> int:
    return int(await db.scalar(
        "SELECT COUNT(*) FROM accounts WHERE company_id = ? AND deleted = 0", (db.company,)
    ))
