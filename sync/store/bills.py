"""Bills this service knows exist in Alegra: the ones it created, later also ones made elsewhere.

Keyed by company and Alegra id, newer-wins like every cached table; every query reads and writes
one company's rows only (`db.company`, or the `company` a function taking `conn` is given).
`ncf_key` is the normalised NCF (or the bill's number), so "is there already a live bill for
this supplier's document?" is one lookup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sync.alegra.records import BillRecord
from sync.store import cache, contacts
from sync.store.db import Connection, Database, Row

TABLE = "bills"
COLUMNS = (
    "alegra_id", "provider_id", "provider_tax_id", "ncf_key", "bill_date", "total", "status",
    "receipt_id",
)


def _row(bill: BillRecord) -> dict[str, Any]:
    return dict(bill.__dict__)


def _from_row(row: Row) -> BillRecord:
    return BillRecord(
        **{name: row[name] for name in COLUMNS}, raw=json.loads(row["raw"])
    )


async def record_bill(
    db: Database, bill: BillRecord, *, source: str, confirmed_at: str | None = None
) -> None:
    """Remember a bill (newer-wins: an older answer never overwrites a newer one)."""
    async with db.transaction() as conn:
        await record_bill_in(
            conn, bill, company=db.company, source=source, confirmed_at=confirmed_at
        )


async def record_bill_in(
    conn: Connection,
    bill: BillRecord,
    *,
    company: str,
    source: str,
    confirmed_at: str | None = None,
) -> int:
    """`record_bill` for `company` inside the caller's transaction."""
    return await cache.upsert(
        conn, TABLE, COLUMNS, [_row(bill)],
        company=company, source=source, confirmed_at=confirmed_at,
    )


# A bill Alegra showed us (webhook confirmation, a lookup): newer-wins like every cached row, but
# the receipt a bill came from is never overwritten (an outside answer does not know it), and a
# known supplier tax id is kept when the answer lacks one.
_UPSERT_SEEN = (
    "INSERT INTO bills(company_id, alegra_id, provider_id, provider_tax_id, ncf_key, bill_date,"
    " total, status, receipt_id, raw, source, deleted, confirmed_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, 0, ?, ?)"
    " ON CONFLICT(company_id, alegra_id) DO UPDATE SET provider_id = excluded.provider_id,"
    " provider_tax_id = COALESCE(excluded.provider_tax_id, bills.provider_tax_id),"
    " ncf_key = excluded.ncf_key, bill_date = excluded.bill_date, total = excluded.total,"
    " status = excluded.status, raw = excluded.raw, source = excluded.source, deleted = 0,"
    " confirmed_at = excluded.confirmed_at, updated_at = excluded.updated_at"
    " WHERE excluded.confirmed_at >= bills.confirmed_at"
)


async def record_seen_bills_in(
    conn: Connection,
    bills: Iterable[BillRecord],
    *,
    company: str,
    source: str,
    confirmed_at: str,
) -> int:
    """Store `company`'s bills as Alegra answered (inside the caller's transaction); returns rows
    changed (0 for a bill whose stored answer is newer)."""
    params = [
        (company, b.alegra_id, b.provider_id, b.provider_tax_id, b.ncf_key, b.bill_date, b.total,
         b.status, json.dumps(b.raw, ensure_ascii=False), source, confirmed_at, confirmed_at)
        for b in bills
    ]
    if not params:
        return 0
    cursor = await conn.executemany(_UPSERT_SEEN, params)
    return int(cursor.rowcount)


async def find_live_bill(db: Database, provider_tax_id: str, ncf_key: str) -> BillRecord | None:
    """The live (not deleted, not void) bill for this supplier's fiscal document, if known."""
    row = await db.fetchone(
        "SELECT * FROM bills"
        " WHERE company_id = ? AND provider_tax_id = ? AND ncf_key = ? AND deleted = 0"
        " AND (status IS NULL OR status != 'void') ORDER BY confirmed_at DESC LIMIT 1",
        (db.company, provider_tax_id, ncf_key),
    )
    return _from_row(row) if row else None


async def get_bill(db: Database, alegra_id: str) -> BillRecord | None:
    row = await db.fetchone(
        "SELECT * FROM bills WHERE company_id = ? AND alegra_id = ?", (db.company, alegra_id)
    )
    return _from_row(row) if row else None


async def live_bill_ids(db: Database, date_from: str) -> list[str]:
    """Ids of the cached bills not deleted, dated `date_from` or later."""
    rows = await db.fetchall(
        "SELECT alegra_id FROM bills WHERE company_id = ? AND deleted = 0 AND bill_date >= ?"
        " ORDER BY bill_date",
        (db.company, date_from),
    )
    return [str(r[0]) for r in rows]


async def with_provider_tax_id(db: Database, bill: BillRecord) -> BillRecord:
    """The bill with its provider's tax id: its own, else the cached contact's (the duplicate
    check matches bills on it, and a bill webhook or list may name the provider by id only)."""
    if bill.provider_tax_id is not None or bill.provider_id is None:
        return bill
    cached = await contacts.get_cached_contact(db, bill.provider_id)
    return replace(bill, provider_tax_id=cached["tax_id"] if cached is not None else None)
