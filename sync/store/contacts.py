"""The contact cache: suppliers and clients as Alegra last confirmed them, per company (every
query reads and writes `db.company`'s rows only)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sync.alegra.records import ContactRecord
from sync.store import cache
from sync.store.db import Database, Row

TABLE = "contacts"
# Active before inactive (a NULL status first, as SQLite always sorted it), suppliers before
# clients (`types` is a JSON list; LOWER: LIKE ignores ASCII case on SQLite only), newest first.
_BEST_FIRST = (
    "(status = 'inactive') NULLS FIRST, (LOWER(types) NOT LIKE '%provider%'), confirmed_at DESC"
)
COLUMNS = (
    "alegra_id", "name", "name_key", "tax_id", "id_type", "types", "status", "email", "phone",
)


def _row(record: ContactRecord) -> dict[str, Any]:
    return {**record.__dict__, "types": json.dumps(list(record.types))}


def record_from_row(row: Row) -> ContactRecord:
    return ContactRecord(
        alegra_id=row["alegra_id"],
        name=row["name"],
        name_key=row["name_key"],
        tax_id=row["tax_id"],
        id_type=row["id_type"],
        types=tuple(json.loads(row["types"])),
        status=row["status"],
        email=row["email"],
        phone=row["phone"],
        raw=json.loads(row["raw"]),
    )


async def upsert_contacts(
    db: Database, records: Iterable[ContactRecord], *, source: str, confirmed_at: str | None = None
) -> int:
    """Write contacts as Alegra returned them (newer-wins; un-deletes a restored contact)."""
    async with db.transaction() as conn:
        return await cache.upsert(
            conn, TABLE, COLUMNS, map(_row, records),
            company=db.company, source=source, confirmed_at=confirmed_at,
        )


async def mark_contact_deleted(
    db: Database, alegra_id: str, *, source: str, confirmed_at: str | None = None
) -> bool:
    return await cache.mark_deleted(db, TABLE, alegra_id, source=source, confirmed_at=confirmed_at)


async def find_supplier_by_tax_id(db: Database, tax_id: str) -> ContactRecord | None:
    """The live contact with this tax id, preferring active suppliers over clients."""
    row = await db.fetchone(
        "SELECT * FROM contacts WHERE company_id = ? AND tax_id = ? AND deleted = 0"  # noqa: S608
        f" ORDER BY {_BEST_FIRST} LIMIT 1",
        (db.company, tax_id),
    )
    return record_from_row(row) if row else None


async def find_contacts_by_name_key(db: Database, key: str) -> list[ContactRecord]:
    """Live contacts whose normalised name equals `key`, best candidate first. An empty key
    (a name of only symbols or emoji) matches nothing."""
    if not key:
        return []
    rows = await db.fetchall(
        "SELECT * FROM contacts WHERE company_id = ? AND name_key = ? AND deleted = 0"  # noqa: S608
        f" ORDER BY {_BEST_FIRST}",
        (db.company, key),
    )
    return [record_from_row(r) for r in rows]


async def get_cached_contact(db: Database, alegra_id: str) -> Row | None:
    """The whole cached row (with source, confirmed_at, deleted) for inspection and tests."""
    return await db.fetchone(
        "SELECT * FROM contacts WHERE company_id = ? AND alegra_id = ?", (db.company, alegra_id)
    )


async def live_contacts(db: Database) -> list[ContactRecord]:
    rows = await db.fetchall(
        "SELECT * FROM contacts WHERE company_id = ? AND deleted = 0 ORDER BY alegra_id",
        (db.company,),
    )
    return [record_from_row(r) for r in rows]
