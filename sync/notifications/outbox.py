"""Events as rows, written inside the transaction of the change they report.

A receipt's state change (`sync/store/receipt_work.py`, `sync/store/bill_index.py`) or its bill's
fate (`sync/store/bill_status.py`, `sync/store/jobs.py`) calls in here with the caller's
connection, so the event commits with the change or not at all. An event is written only for a
receipt whose partner has an enabled endpoint that wants its type, and whose company the partner
is still granted: one `notification_events` row (its id is the `webhook-id`) and one
`notification_deliveries` row per endpoint, due now. With no endpoint, it costs one indexed read.

The data never names another partner's receipt or the bill another partner's receipt made
(the same rules as `receiver/receipt_view.py`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sync import money
from sync.alegra.payloads import marked_receipt_id
from sync.notifications.records import DeliveryState, EndpointState, EventType, event_body
from sync.states import ReceiptStatus
from sync.store.db import Connection, Row, utcnow
from sync.store.sql_lists import marks

Conn = Connection
ANOTHER_PARTNER = "another_partner"
# Errors that leave a receipt waiting rather than failing, and what the event calls them.
WAITING_CODES = {"ncf_in_flight": "ncf_held", "ncf_held_by_failed_receipt": "ncf_held"}
WAITING_KINDS = {"AuthFailed": "company_needs_attention"}
# Failures a retry of the receipt as it is may get past (the rest need a fix first).
TRANSIENT_KINDS = frozenset({"RateLimited", "Unavailable", "TransportFailed", "OutcomeUnknown",
                             "InternalError"})
TRANSIENT_CODES = frozenset({"ncf_held_by_failed_receipt", "ncf_in_flight"})


def new_event_id() -> str:
    return "msg_" + secrets.token_hex(12)


def new_delivery_id() -> str:
    return "dlv_" + secrets.token_hex(12)


def waiting_reason(error: dict[str, Any]) -> str | None:
    """Why a rescheduled receipt waits, when it waits on something other than Alegra's answer:
    another receipt holding its NCF, or its company's credentials (None: an ordinary retry)."""
    return WAITING_CODES.get(str(error.get("code"))) or WAITING_KINDS.get(str(error.get("kind")))


def retry_may_help(error: dict[str, Any]) -> bool:
    """Whether `receipts retry` of the receipt as it is may succeed (Alegra was unreachable, the
    outcome is unknown, another receipt held its NCF); False: something must be fixed first."""
    return ("gave_up_after_s" in error or str(error.get("kind")) in TRANSIENT_KINDS
            or str(error.get("code")) in TRANSIENT_CODES)


async def _rows(conn: Conn, sql: str, params: Iterable[Any]) -> list[Row]:
    cursor = await conn.execute(sql, tuple(params))
    return list(await cursor.fetchall())


async def _one(conn: Conn, sql: str, params: Iterable[Any]) -> Row | None:
    cursor = await conn.execute(sql, tuple(params))
    row: Row | None = await cursor.fetchone()
    return row


# --- writing --------------------------------------------------------------------------------


async def _listeners(conn: Conn, partner_id: str, company: str, event_type: str) -> list[str]:
    """The partner's enabled endpoints that want `event_type`, while the partner is active and
    reaches `company`."""
    rows = await _rows(
        conn,
        "SELECT e.id, e.events FROM webhook_endpoints AS e JOIN partners AS p"
        " ON p.id = e.partner_id WHERE e.partner_id = ? AND e.state = ? AND p.revoked_at IS NULL"
        " AND (p.is_admin = 1 OR EXISTS (SELECT 1 FROM partner_grants AS g"
        "      WHERE g.partner_id = p.id AND g.company_id = ?))",
        (partner_id, EndpointState.ENABLED, company),
    )
    return [str(r[0]) for r in rows if not json.loads(r[1]) or event_type in json.loads(r[1])]


async def write_event(
    conn: Conn, *, partner_id: str, endpoint_ids: list[str], event_type: EventType,
    data: dict[str, Any], company: str | None = None, receipt_id: str | None = None,
) -> str:
    """One event and its deliveries, due now (inside the caller's transaction); its id."""
    event_id, now = new_event_id(), utcnow()
    seq = 0
    if receipt_id is not None:
        row = await _one(conn, "SELECT COALESCE(MAX(seq), 0) FROM notification_events"
                         " WHERE receipt_id = ?", (receipt_id,))
        seq = int(row[0]) + 1 if row is not None else 1
    await conn.execute(
        "INSERT INTO notification_events(id, partner_id, company_id, receipt_id, seq, type, body,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (event_id, partner_id, company, receipt_id, seq, event_type,
         event_body(event_type, now, data), now),
    )
    await conn.executemany(
        "INSERT INTO notification_deliveries(id, event_id, endpoint_id, company_id, receipt_id,"
        " seq, state, next_attempt_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(new_delivery_id(), event_id, endpoint_id, company, receipt_id, seq,
          DeliveryState.PENDING, now, now, now) for endpoint_id in endpoint_ids],
    )
    return event_id


async def _emit(conn: Conn, company: str, receipt: Row, event_type: EventType,
                data: dict[str, Any]) -> bool:
    partner_id = str(receipt["partner_id"])
    endpoints = await _listeners(conn, partner_id, company, event_type)
    if not endpoints:
        return False
    body = {"receipt_id": receipt["id"], "company": company,
            "idempotency_key": receipt["idempotency_key"], "status": receipt["status"], **data}
    await write_event(conn, partner_id=partner_id, endpoint_ids=endpoints, event_type=event_type,
                      data=body, company=company, receipt_id=str(receipt["id"]))
    return True


async def _receipt(conn: Conn, company: str, receipt_id: str) -> Row | None:
    return await _one(
        conn, "SELECT id, partner_id, idempotency_key, status, bill_id, error, next_attempt_at,"
        " payload FROM receipts WHERE id = ? AND company_id = ?", (receipt_id, company))


async def _steps(conn: Conn, receipt_id: str) -> dict[str, Row]:
    rows = await _rows(conn, "SELECT step, state, outcome, alegra_id, detail FROM receipt_steps"
                       " WHERE receipt_id = ?", (receipt_id,))
    return {str(r["step"]): r for r in rows}


async def receipt_settled(
    conn: Conn, company: str, receipt_id: str, event_type: EventType
) -> bool:
    """After the receipt's state changed (inside that transaction): its event, if anyone
    listens. `receipt.waiting` only when it waits on something new (not on every retry)."""
    receipt = await _receipt(conn, company, receipt_id)
    if receipt is None:
        return False
    if event_type is EventType.RECEIPT_COMPLETED:
        return await _emit(conn, company, receipt, event_type, await _completed(conn, receipt))
    if event_type is EventType.RECEIPT_DUPLICATE:
        data = await _duplicate(conn, company, receipt)
        return await _emit(conn, company, receipt, event_type, data)
    error = json.loads(receipt["error"] or "{}")
    error = await _error_view(conn, company, receipt, error)
    if event_type is EventType.RECEIPT_FAILED:
        data = {"error": {**error, "retry_may_help": retry_may_help(error)}}
        return await _emit(conn, company, receipt, event_type, data)
    reason = waiting_reason(error)
    if reason is None or await _last_waiting(conn, receipt_id) == reason:
        return False
    data = {"reason": reason, "holder": error.get("holder"),
            "next_attempt_at": receipt["next_attempt_at"], "message": error.get("message")}
    return await _emit(conn, company, receipt, EventType.RECEIPT_WAITING, data)


async def _last_waiting(conn: Conn, receipt_id: str) -> str | None:
    """The reason of the receipt's latest event if that is a `receipt.waiting`."""
    row = await _one(conn, "SELECT type, body FROM notification_events WHERE receipt_id = ?"
                     " ORDER BY seq DESC LIMIT 1", (receipt_id,))
    if row is None or row["type"] != EventType.RECEIPT_WAITING:
        return None
    return str(json.loads(row["body"])["data"].get("reason"))


async def _completed(conn: Conn, receipt: Row) -> dict[str, Any]:
    steps = await _steps(conn, str(receipt["id"]))
    payload = json.loads(receipt["payload"])
    bill = steps.get("bill")
    detail = json.loads(bill["detail"] or "{}") if bill is not None else {}
    found = {name: str(row["outcome"]) for name, row in steps.items()
             if row["outcome"] in ("found", "created") and name != "duplicate_check"}
    return {
        "bill": {"id": receipt["bill_id"], "number": payload.get("ncf"),
                 "total": detail.get("alegra_total", detail.get("total", payload.get("total"))),
                 "currency": payload.get("currency"), "status": detail.get("status"),
                 "outcome": None if bill is None else bill["outcome"]},
        "steps": found,
    }


async def _duplicate(conn: Conn, company: str, receipt: Row) -> dict[str, Any]:
    steps = await _steps(conn, str(receipt["id"]))
    check = steps.get("duplicate_check")
    detail = json.loads(check["detail"] or "{}") if check is not None else {}
    bill_id = receipt["bill_id"]
    shown = bill_id is not None and await may_name_bill(
        conn, company, str(receipt["partner_id"]), str(bill_id))
    return {"bill": {"id": bill_id if shown else None,
                     "billed_by": None if shown else ANOTHER_PARTNER,
                     "number": detail.get("ncf"), "status": detail.get("bill_status")}}


async def _error_view(
    conn: Conn, company: str, receipt: Row, error: dict[str, Any]
) -> dict[str, Any]:
    """The error as the receipt's partner may read it: another partner's holder hidden."""
    holder = error.get("holder")
    if not holder:
        return error
    row = await _one(conn, "SELECT partner_id FROM receipts WHERE id = ? AND company_id = ?",
                     (holder, company))
    if row is not None and row[0] == receipt["partner_id"]:
        return error
    return {**error, "holder": None, "message": "another partner's receipt holds this NCF"}


async def may_name_bill(conn: Conn, company: str, partner_id: str, bill_id: str) -> bool:
    """Whether the partner may see the bill's id: not made from another partner's receipt."""
    makers = {str(r[0]) for r in await _rows(
        conn, "SELECT id FROM receipts WHERE company_id = ? AND bill_id = ? AND status != ?",
        (company, bill_id, ReceiptStatus.DUPLICATE))}
    row = await _one(conn, "SELECT receipt_id, raw FROM bills WHERE company_id = ?"
                     " AND alegra_id = ?", (company, bill_id))
    if row is not None:
        makers |= {r for r in (row["receipt_id"], marked_receipt_id(json.loads(row["raw"])))
                   if r}
    if not makers:
        return True
    sql = ("SELECT DISTINCT partner_id FROM receipts WHERE company_id = ?"  # noqa: S608 -- placeholders only
           f" AND id IN ({marks(len(makers))})")
    owners = {str(r[0]) for r in await _rows(conn, sql, (company, *sorted(makers)))}
    return not owners or partner_id in owners


# --- bills ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BillFacts:
    """What a partner hears about when it changes."""

    deleted: bool
    status: str | None
    total: str | None
    number: str | None
    date: str | None
    provider_id: str | None

    @property
    def void(self) -> bool:
        return (self.status or "").lower() == "void"

    def shown(self, bill_id: str) -> dict[str, Any]:
        return {"id": bill_id, "number": self.number, "date": self.date, "total": self.total,
                "status": self.status, "deleted": self.deleted}


async def bill_snapshot(conn: Conn, company: str, bill_ids: Iterable[str]) -> dict[str, BillFacts]:
    """The stored facts of these bills (the ones stored: others are left out)."""
    ids = sorted(set(bill_ids))
    if not ids:
        return {}
    sql = ("SELECT alegra_id, deleted, status, total, ncf_key, bill_date, provider_id"  # noqa: S608 -- placeholders only
           f" FROM bills WHERE company_id = ? AND alegra_id IN ({marks(len(ids))})")
    rows = await _rows(conn, sql, (company, *ids))
    return {str(r["alegra_id"]): BillFacts(bool(r["deleted"]), r["status"], _amount(r["total"]),
                                           r["ncf_key"], r["bill_date"], r["provider_id"])
            for r in rows}


def _amount(total: Any) -> str | None:
    """A total as one spelling (`2360`, `2360.0` and `"2360.00"` are the same amount)."""
    if total is None:
        return None
    try:
        return money.decimal_text(money.round_money(Decimal(str(total))))
    except (InvalidOperation, ValueError):
        return str(total)


def bill_change(before: BillFacts | None, after: BillFacts) -> EventType | None:
    """What a partner hears when its receipt's bill went from `before` to `after` (pure)."""
    if after.deleted:
        return None if before is not None and before.deleted else EventType.BILL_DELETED
    if after.void:
        return None if before is not None and before.void else EventType.BILL_VOIDED
    if before is None or before == after:
        return None
    return EventType.BILL_UPDATED


async def bills_changed(conn: Conn, company: str, before: dict[str, BillFacts],
                        bill_ids: Iterable[str]) -> int:
    """After bills were stored (inside that transaction): an event for each bill of one of our
    receipts that changed from `before` (`bill_snapshot` taken first). How many written."""
    after = await bill_snapshot(conn, company, bill_ids)
    written = 0
    for bill_id, facts in after.items():
        event_type = bill_change(before.get(bill_id), facts)
        if event_type is None:
            continue
        for receipt in await _bill_receipts(conn, company, bill_id):
            data = {"bill": facts.shown(bill_id)}
            if before.get(bill_id) is not None and event_type is EventType.BILL_UPDATED:
                data["previous"] = before[bill_id].shown(bill_id)
            written += await _emit(conn, company, receipt, event_type, data)
    return written


async def _bill_receipts(conn: Conn, company: str, bill_id: str) -> list[Row]:
    """Our receipts that made this bill (a `duplicate` only points at it)."""
    return await _rows(
        conn, "SELECT id, partner_id, idempotency_key, status, bill_id, error, next_attempt_at,"
        " payload FROM receipts WHERE company_id = ? AND status != ? AND (bill_id = ?"
        "  OR id IN (SELECT receipt_id FROM bills WHERE company_id = ? AND alegra_id = ?))",
        (company, ReceiptStatus.DUPLICATE, bill_id, company, bill_id))
