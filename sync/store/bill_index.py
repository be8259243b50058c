"""The duplicate check's SQL: bills by NCF or date, claims on fiscal documents, settling a receipt.

Functions taking `conn` run inside the caller's `db.transaction()` (BEGIN IMMEDIATE), which is
what makes "look → decide → claim or settle" one step even across processes on the same file.
`bill_claims` holds, per fiscal document (`<supplier>|<NCF>`), the receipt of ours that may bill
it; a claim whose receipt can no longer bill it (duplicate, billed and then voided, or failed,
unless it failed after sending a bill whose outcome it never learned) is simply taken over.
Everything is per company: each function reads and writes the rows of the `company` it is given
only (one bill per supplier + NCF holds within a company; another company may bill the same).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sync.alegra.records import BillRecord
from sync.duplicate_rules import BillSeen, OtherReceipt
from sync.names import name_key
from sync.notifications import outbox
from sync.notifications.records import EventType
from sync.states import ReceiptStatus, StepState
from sync.store.bills import record_seen_bills_in
from sync.store.db import Connection, Database, Row, utcnow

_BILL_COLUMNS = (
    "alegra_id, provider_id, provider_tax_id, ncf_key, bill_date, total, status, receipt_id, source"
)


def _bill(row: Row) -> BillSeen:
    return BillSeen(**{key: row[key] for key in row.keys()})  # noqa: SIM118 -- sqlite3.Row


async def _rows(conn: Connection, sql: str, params: Sequence[Any]) -> list[Row]:
    cursor = await conn.execute(sql, params)
    return list(await cursor.fetchall())


async def bills_with_ncf(
    conn: Connection, ncf_key: str, *, company: str
) -> list[BillSeen]:
    """Every cached bill, not deleted, carrying this NCF (whatever the supplier or status)."""
    rows = await _rows(
        conn,
        f"SELECT {_BILL_COLUMNS} FROM bills"  # noqa: S608
        " WHERE company_id = ? AND ncf_key = ? AND deleted = 0 ORDER BY confirmed_at",
        (company, ncf_key),
    )
    return [_bill(r) for r in rows]


async def bills_on_date(conn: Connection, date: str, *, company: str) -> list[BillSeen]:
    """Every cached bill, not deleted, dated `date`."""
    rows = await _rows(
        conn,
        f"SELECT {_BILL_COLUMNS} FROM bills"  # noqa: S608
        " WHERE company_id = ? AND bill_date = ? AND deleted = 0 ORDER BY confirmed_at",
        (company, date),
    )
    return [_bill(r) for r in rows]


async def provider_ids(
    conn: Connection, tax_id: str | None, supplier_name_key: str, *, company: str
) -> set[str]:
    """Ids of every cached contact (deleted ones too: their bills remain) with this tax id or,
    without one, this normalised name (an empty one matches nothing)."""
    if tax_id is not None:
        rows = await _rows(
            conn, "SELECT alegra_id FROM contacts WHERE company_id = ? AND tax_id = ?",
            (company, tax_id),
        )
    elif not supplier_name_key:
        return set()
    else:
        rows = await _rows(
            conn, "SELECT alegra_id FROM contacts WHERE company_id = ? AND name_key = ?",
            (company, supplier_name_key),
        )
    return {str(r[0]) for r in rows}


def _other(row: Row) -> OtherReceipt:
    return OtherReceipt(
        receipt_id=row["id"], tax_id=row["supplier_tax_id"],
        name_key=name_key(row["supplier_name"] or ""), date=row["receipt_date"],
        total=row["total"], status=row["status"], bill_id=row["bill_id"],
        bill_unknown=bool(row["bill_unknown"]),
    )


_OTHER = (
    "SELECT id, supplier_tax_id, supplier_name, receipt_date, total, status, bill_id,"  # noqa: S608
    " EXISTS(SELECT 1 FROM receipt_steps s WHERE s.receipt_id = receipts.id"
    f"  AND s.step = 'bill' AND s.state = '{StepState.ATTEMPTING}') AS bill_unknown"
    " FROM receipts"
)


async def receipts_on_date(
    conn: Connection, date: str, *, besides: str, company: str
) -> list[OtherReceipt]:
    """Our receipts dated `date`, except `besides`."""
    rows = await _rows(
        conn, f"{_OTHER} WHERE company_id = ? AND receipt_date = ? AND id != ?",
        (company, date, besides),
    )
    return [_other(r) for r in rows]


async def claim_holder(
    conn: Connection, claim_key: str, *, company: str
) -> OtherReceipt | None:
    """The receipt that claimed this fiscal document, with its current status."""
    rows = await _rows(
        conn,
        f"{_OTHER} WHERE company_id = ? AND id ="  # noqa: S608
        " (SELECT receipt_id FROM bill_claims WHERE company_id = ? AND claim_key = ?)",
        (company, company, claim_key),
    )
    return _other(rows[0]) if rows else None


async def take_claim(
    conn: Connection, claim_key: str, receipt_id: str, *, company: str
) -> None:
    """This receipt may bill the document now (the caller decided the old claim is stale)."""
    await conn.execute(
        "INSERT INTO bill_claims(company_id, claim_key, receipt_id, claimed_at)"
        " VALUES (?, ?, ?, ?)"
        " ON CONFLICT(company_id, claim_key) DO UPDATE SET receipt_id = excluded.receipt_id,"
        " claimed_at = excluded.claimed_at WHERE bill_claims.receipt_id != excluded.receipt_id",
        (company, claim_key, receipt_id, utcnow()),
    )


async def settle_duplicate(
    conn: Connection, receipt_id: str, *, owner: str, bill_id: str,
    detail: dict[str, Any], company: str,
) -> bool:
    """Finish the receipt as `duplicate` of `bill_id`, with the evidence on its
    `duplicate_check` step. False (nothing written) when the lease is no longer `owner`'s."""
    now = utcnow()
    cursor = await conn.execute(
        f"UPDATE receipts SET status = '{ReceiptStatus.DUPLICATE}', bill_id = ?,"  # noqa: S608
        " completed_at = ?, error = NULL,"
        " next_attempt_at = NULL, lease_until = NULL, lease_owner = NULL, updated_at = ?"
        f" WHERE company_id = ? AND id = ? AND status = '{ReceiptStatus.PROCESSING}'"
        " AND lease_owner = ?",
        (bill_id, now, now, company, receipt_id, owner),
    )
    if cursor.rowcount == 0:
        return False
    await conn.execute(
        "INSERT INTO receipt_steps(receipt_id, step, state, outcome, alegra_id, detail, attempts,"  # noqa: S608
        " started_at, updated_at)"
        f" VALUES (?, 'duplicate_check', '{StepState.DONE}', 'found', ?, ?, 1, ?, ?)"
        f" ON CONFLICT(receipt_id, step) DO UPDATE SET state = '{StepState.DONE}',"
        " outcome = 'found',"
        " alegra_id = excluded.alegra_id, detail = excluded.detail,"
        " updated_at = excluded.updated_at",
        (receipt_id, bill_id, json.dumps(detail), now, now),
    )
    await outbox.receipt_settled(conn, company, receipt_id, EventType.RECEIPT_DUPLICATE)
    return True


async def add_flags(
    conn: Connection, receipt_id: str, flags: Iterable[str], *, company: str
) -> list[str]:
    """Add flags the receipt does not carry yet (others stay); returns the ones added."""
    cursor = await conn.execute(
        "SELECT flags FROM receipts WHERE company_id = ? AND id = ?", (company, receipt_id)
    )
    row = await cursor.fetchone()
    if row is None:
        return []
    current = json.loads(row[0] or "[]")
    added = [f for f in dict.fromkeys(flags) if f not in current]
    if added:
        await conn.execute(
            "UPDATE receipts SET flags = ?, updated_at = ? WHERE company_id = ? AND id = ?",
            (json.dumps([*current, *added]), utcnow(), company, receipt_id),
        )
    return added


async def record_looked_up_bills(db: Database, bills: Iterable[BillRecord], *, source: str) -> None:
    """Store bills Alegra just listed (newer-wins), keeping the receipt a bill came from."""
    async with db.transaction() as conn:
        await record_seen_bills_in(
            conn, bills, company=db.company, source=source, confirmed_at=utcnow()
        )
