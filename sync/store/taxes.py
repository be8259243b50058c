"""The tax cache: maps a receipt line's ITBIS rate to Alegra's tax id, per company (every query
reads and writes `db.company`'s rows only)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from sync.alegra.records import TaxRecord
from sync.store import cache
from sync.store.db import Database

TABLE = "taxes"
COLUMNS = ("alegra_id", "name", "percentage", "type", "status")


def _row(record: TaxRecord) -> dict[str, Any]:
    return dict(record.__dict__)


async def upsert_taxes(
    db: Database, records: Iterable[TaxRecord], *, source: str, confirmed_at: str | None = None
) -> int:
    async with db.transaction() as conn:
        return await cache.upsert(
            conn, TABLE, COLUMNS, map(_row, records),
            company=db.company, source=source, confirmed_at=confirmed_at,
        )


async def mark_missing_taxes_deleted(
    db: Database, seen_ids: set[str], *, source: str, scan_started_at: str
) -> list[str]:
    return await cache.mark_missing_deleted(
        db, TABLE, seen_ids, source=source, scan_started_at=scan_started_at
    )


def _as_rate(value: str | None) -> Decimal | None:
    try:
        return Decimal(value) if value is not None else None
    except InvalidOperation:
        return None


async def find_tax_id_by_rate(db: Database, rate: Decimal) -> str | None:
    """The active ITBIS-type tax with this percentage (18, 16, 0), or None if none is cached."""
    rows = await db.fetchall(
        "SELECT alegra_id, percentage, type, name FROM taxes WHERE company_id = ? AND deleted = 0"
        " AND (status IS NULL OR status = 'active') ORDER BY alegra_id",
        (db.company,),
    )
    matches = [r for r in rows if _as_rate(r["percentage"]) == rate]
    itbis = [r for r in matches if "ITBIS" in (r["type"] or r["name"] or "").upper()]
    best = itbis or matches
    return str(best[0]["alegra_id"]) if best else None


async def count_taxes(db: Database) -> int:
    return int(await db.scalar(
        "SELECT COUNT(*) FROM taxes WHERE company_id = ? AND deleted = 0", (db.company,)
    ))
