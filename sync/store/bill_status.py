"""What a bill event confirmed (the bill as Alegra has it now, or gone) → the bills row and the
receipt that made the bill, in one transaction.

A webhook confirmation knows less than the flow that created the bill: it never overwrites the
row's `receipt_id`, nor a known `provider_tax_id` with nothing. Newer-wins by `confirmed_at`, as
every cached table. The receipt shows the bill's fate as a flag (`bill_voided`, `bill_deleted`);
a bill restored in Alegra clears it. Per company: a bill id names a bill of `db.company` (or of
the `company` a function taking `conn` is given), and only that company's receipts are flagged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sync.alegra.records import BillRecord
from sync.notifications import outbox
from sync.store.bills import record_seen_bills_in
from sync.store.db import Connection, Database

SOURCE = "webhook"
BILL_FLAGS = ("bill_voided", "bill_deleted")

async def record_confirmed_bill(
    db: Database, bill: BillRecord, *, confirmed_at: str, source: str = SOURCE
) -> str | None:
    """Store the bill as Alegra returned it and flag its receipt if it is void (or unflag it).
    Returns the receipt id the bill came from, if one of ours did."""
    async with db.transaction() as conn:
        before = await outbox.bill_snapshot(conn, db.company, [bill.alegra_id])
        changed = await record_seen_bills_in(
            conn, [bill], company=db.company, source=source, confirmed_at=confirmed_at
        )
        receipt_id = await _receipt_of(conn, bill.alegra_id, db.company)
        if receipt_id is not None and changed > 0:  # 0: a newer answer is stored
            await _set_bill_flag(conn, receipt_id, _flag(bill), confirmed_at, db.company)
            await outbox.bills_changed(conn, db.company, before, [bill.alegra_id])
    return receipt_id


async def flag_receipts_in(
    conn: Connection, bills: Iterable[BillRecord], *, company: str, confirmed_at: str
) -> None:
    """After a page of bills was stored (inside its transaction): flag or unflag the receipts
    they came from, for each bill whose stored answer is this one (not a newer one)."""
    for bill in bills:
        cursor = await conn.execute(
            "SELECT receipt_id FROM bills WHERE company_id = ? AND alegra_id = ?"
            " AND confirmed_at = ? AND receipt_id IS NOT NULL",
            (company, bill.alegra_id, confirmed_at))
        row = await cursor.fetchone()
        if row is not None:
            await _set_bill_flag(conn, str(row[0]), _flag(bill), confirmed_at, company)


def _flag(bill: BillRecord) -> str | None:
    return "bill_voided" if (bill.status or "").lower() == "void" else None


async def record_bill_gone(
    db: Database, bill_id: str, *, confirmed_at: str, source: str = SOURCE
) -> str | None:
    """Alegra no longer has the bill: soft-delete its row and flag its receipt. Returns the
    receipt id the bill came from, if one of ours did."""
    async with db.transaction() as conn:
        before = await outbox.bill_snapshot(conn, db.company, [bill_id])
        await conn.execute(
            "UPDATE bills SET deleted = 1, source = ?, confirmed_at = ?, updated_at = ?"
            " WHERE company_id = ? AND alegra_id = ? AND confirmed_at <= ?",
            (source, confirmed_at, confirmed_at, db.company, bill_id, confirmed_at),
        )
        cursor = await conn.execute(
            "SELECT 1 FROM bills WHERE company_id = ? AND alegra_id = ? AND confirmed_at > ?",
            (db.company, bill_id, confirmed_at),
        )
        newer = await cursor.fetchone()
        receipt_id = await _receipt_of(conn, bill_id, db.company)
        if receipt_id is not None and newer is None:
            await _set_bill_flag(conn, receipt_id, "bill_deleted", confirmed_at, db.company)
            await outbox.bills_changed(conn, db.company, before, [bill_id])
    return receipt_id


async def _receipt_of(conn: Connection, bill_id: str, company: str) -> str | None:
    """The receipt that made this bill: the bills row says so, or the receipt names the bill."""
    cursor = await conn.execute(
        "SELECT receipt_id FROM bills"
        " WHERE company_id = ? AND alegra_id = ? AND receipt_id IS NOT NULL"
        " UNION ALL SELECT id FROM receipts WHERE company_id = ? AND bill_id = ? LIMIT 1",
        (company, bill_id, company, bill_id),
    )
    row = await cursor.fetchone()
    return None if row is None else str(row[0])


async def _set_bill_flag(
    conn: Connection, receipt_id: str, flag: str | None, at: str, company: str
) -> None:
    """Replace the receipt's bill-fate flag with `flag` (None clears it); other flags stay."""
    cursor = await conn.execute(
        "SELECT flags FROM receipts WHERE company_id = ? AND id = ?", (company, receipt_id)
    )
    row = await cursor.fetchone()
    if row is None:
        return
    flags = json.loads(row[0] or "[]")
    kept = [f for f in flags if f not in BILL_FLAGS]
    wanted = [*kept, flag] if flag else kept
    if wanted != flags:
        await conn.execute(
            "UPDATE receipts SET flags = ?, updated_at = ? WHERE company_id = ? AND id = ?",
            (json.dumps(wanted), at, company, receipt_id),
        )
