"""Receipts as rows: stored by the web process, worked by the worker, read back by partners.

`insert_receipt` commits the receipt and its attachment in one transaction and leans on
`UNIQUE(partner_id, company_id, idempotency_key)`: concurrent identical requests make one row, a
repeated key with another body raises `IdempotencyConflict`. Reads return typed records
(`ReceiptRecord`, `StepRecord`); `sync/receipt_resource.py` renders them as the JSON a partner
reads. Every function reads and writes `db.company`'s receipts only, but
`get_receipt_any_company`: receipt ids are unique across companies, and the record it returns
names the receipt's company.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sync.receipt_model import Submission
from sync.receipt_records import ReceiptRecord, StepRecord
from sync.states import ReceiptStatus
from sync.store.db import Connection, Database, Row, utcnow
from sync.store.receipt_work import load_steps
from sync.store.sql_lists import chunks, marks


class IdempotencyConflict(Exception):
    """The partner used this idempotency key for a different receipt (`receipt_id`)."""

    def __init__(self, receipt_id: str) -> None:
        super().__init__(f"idempotency key already used for receipt {receipt_id}")
        self.receipt_id = receipt_id


@dataclass(frozen=True)
class StoredAttachment:
    filename: str
    content_type: str
    data: bytes


def _record(row: Row) -> ReceiptRecord:
    return ReceiptRecord(
        id=row["id"],
        partner_id=row["partner_id"],
        company_id=row["company_id"],
        idempotency_key=row["idempotency_key"],
        status=ReceiptStatus(row["status"]),
        payload=json.loads(row["payload"]),
        attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        error=json.loads(row["error"]) if row["error"] else None,
        flags=tuple(json.loads(row["flags"] or "[]")),
        bill_id=row["bill_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )


def new_receipt_id() -> str:
    return "rcp_" + secrets.token_hex(12)


async def insert_receipt(
    db: Database, *, partner_id: str, idempotency_key: str, submission: Submission
) -> tuple[str, bool]:
    """Store a validated receipt in `db.company`. Returns (id, created); a replay (same partner,
    company and key) returns the existing id with created False. Raises IdempotencyConflict when
    the key holds a different receipt."""
    body_hash = submission.receipt.fingerprint()
    receipt_id = new_receipt_id()
    async with db.transaction() as conn:
        if await _insert_row(
            conn, receipt_id=receipt_id, partner_id=partner_id, company_id=db.company,
            idempotency_key=idempotency_key, body_hash=body_hash, submission=submission,
        ):
            await _insert_attachment(conn, receipt_id, submission)
            return receipt_id, True
        cursor = await conn.execute(
            "SELECT id, body_hash FROM receipts"
            " WHERE partner_id = ? AND company_id = ? AND idempotency_key = ?",
            (partner_id, db.company, idempotency_key),
        )
        existing = await cursor.fetchone()
    assert existing is not None  # the conflict that skipped the insert is this row
    if existing["body_hash"] != body_hash:
        raise IdempotencyConflict(existing["id"])
    return existing["id"], False


async def _insert_row(
    conn: Connection,
    *,
    receipt_id: str,
    partner_id: str,
    company_id: str,
    idempotency_key: str,
    body_hash: str,
    submission: Submission,
) -> bool:
    """INSERT unless the (partner, company, key) triple exists; True if this call made the
    row."""
    payload, now = submission.receipt.to_payload(), utcnow()
    cursor = await conn.execute(
        "INSERT INTO receipts(id, partner_id, company_id, idempotency_key, body_hash, payload,"
        " status, supplier_tax_id, supplier_name, ncf, ncf_type, receipt_date, total, currency,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(partner_id, company_id, idempotency_key) DO NOTHING",
        (receipt_id, partner_id, company_id, idempotency_key, body_hash, json.dumps(payload),
         ReceiptStatus.QUEUED, payload["supplier"]["tax_id"], payload["supplier"]["name"],
         payload["ncf"], payload["ncf_type"], payload["date"], payload["total"],
         payload["currency"], now, now),
    )
    return bool(cursor.rowcount == 1)


async def _insert_attachment(conn: Connection, receipt_id: str, submission: Submission) -> None:
    info, data = submission.receipt.attachment, submission.attachment_data
    if info is None or data is None:
        return
    await conn.execute(
        "INSERT INTO receipt_attachments(receipt_id, filename, content_type, size, data)"
        " VALUES (?, ?, ?, ?, ?)",
        (receipt_id, info.filename, info.content_type, info.size, data),
    )


async def get_receipt(
    db: Database, receipt_id: str, partner_id: str | None
) -> ReceiptRecord | None:
    """`db.company`'s receipt; with a partner id, only if it belongs to that partner (None =
    any partner's)."""
    if partner_id is None:
        row = await db.fetchone(
            "SELECT * FROM receipts WHERE id = ? AND company_id = ?", (receipt_id, db.company)
        )
    else:
        row = await db.fetchone(
            "SELECT * FROM receipts WHERE id = ? AND company_id = ? AND partner_id = ?",
            (receipt_id, db.company, partner_id),
        )
    return None if row is None else _record(row)


async def get_receipt_any_company(db: Database, receipt_id: str) -> ReceiptRecord | None:
    """The receipt with this id in whichever company holds it (ids are unique across
    companies): its `company_id` says which, for the caller to check a grant and then read on
    `db.for_company(record.company_id)`."""
    row = await db.fetchone("SELECT * FROM receipts WHERE id = ?", (receipt_id,))
    return None if row is None else _record(row)


async def get_status(db: Database, receipt_id: str) -> str | None:
    """The receipt's status alone: the cheap read behind `Prefer: wait`."""
    status = await db.scalar(
        "SELECT status FROM receipts WHERE id = ? AND company_id = ?", (receipt_id, db.company)
    )
    return None if status is None else str(status)


async def get_steps(db: Database, receipt_id: str) -> list[StepRecord]:
    return list((await load_steps(db, receipt_id)).values())


async def partners_of(db: Database, receipt_ids: Sequence[str]) -> set[str]:
    """The partners the given receipts of `db.company` belong to."""
    if not receipt_ids:
        return set()
    found: set[str] = set()
    for some in chunks(list(receipt_ids)):
        rows = await db.fetchall(
            f"SELECT DISTINCT partner_id FROM receipts WHERE id IN ({marks(len(some))})"  # noqa: S608
            " AND company_id = ?",
            (*some, db.company),
        )
        found.update(str(r["partner_id"]) for r in rows)
    return found


async def receipts_that_made(db: Database, bill_id: str) -> list[str]:
    """The receipts of `db.company` that say they made this bill (Alegra's bill ids are unique
    only within one account; a `duplicate` only points at one)."""
    rows = await db.fetchall(
        "SELECT id FROM receipts WHERE bill_id = ? AND company_id = ? AND status != ?",
        (bill_id, db.company, ReceiptStatus.DUPLICATE),
    )
    return [str(r["id"]) for r in rows]


async def get_attachment(db: Database, receipt_id: str) -> StoredAttachment | None:
    """The attachment's bytes as the partner sent them (for the worker's attach step)."""
    row = await db.fetchone(
        "SELECT a.filename, a.content_type, a.data FROM receipt_attachments AS a"
        " JOIN receipts AS r ON r.id = a.receipt_id WHERE a.receipt_id = ? AND r.company_id = ?",
        (receipt_id, db.company),
    )
    if row is None:
        return None
    return StoredAttachment(row["filename"], row["content_type"], bytes(row["data"]))


async def list_receipts(
    db: Database,
    *,
    partner_id: str | None = None,
    status: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    limit: int = 50,
    after: tuple[str, str] | None = None,
) -> list[ReceiptRecord]:
    """`db.company`'s receipts, newest first, filtered (dates are the receipt's own date,
    inclusive), at most `limit`, after the row whose (created_at, id) is `after`."""
    clauses, params = _list_filters(db.company, partner_id, status, date_from, date_to)
    if after is not None:
        created_at, last_id = after
        clauses.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [created_at, created_at, last_id]
    where = " WHERE " + " AND ".join(clauses)
    rows = await db.fetchall(
        f"SELECT * FROM receipts{where} ORDER BY created_at DESC, id DESC LIMIT ?",  # noqa: S608 -- clauses are constants; values are bound
        [*params, limit],
    )
    return [_record(row) for row in rows]


def _list_filters(
    company: str, partner_id: str | None, status: str | None, date_from: str | None,
    date_to: str | None,
) -> tuple[list[str], list[Any]]:
    wanted = {
        "company_id = ?": company,
        "partner_id = ?": partner_id,
        "status = ?": status,
        "receipt_date >= ?": date_from,
        "receipt_date <= ?": date_to,
    }
    clauses = [clause for clause, value in wanted.items() if value is not None]
    return clauses, [value for value in wanted.values() if value is not None]
