"""The outbox's SQL on both engines (SQLite and PostgreSQL): a receipt completed and its bill
deleted each write their event and delivery, in the same transaction as the change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync.alegra.records import bill_from_alegra
from sync.notifications import endpoints
from sync.receipt_model import parse_submission
from sync.store import bill_status, bills, receipt_work, receipts
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.notifications.conftest import events_of, notify_settings

pytestmark = pytest.mark.anyio

BODY: dict[str, Any] = {
    "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
    "date": "2024-05-01", "ncf": "B0100000001", "category": "Gastos",
    "lines": [{"description": "Tornillos", "amount": "100.00", "tax_rate": 18}],
}


async def test_receipt_completed_and_bill_deleted_write_events_on_each_engine(
    database: Database, database_target: Path | str,
) -> None:
    """StepLog.complete and record_bill_gone each leave one event with its delivery, due."""
    partner, _ = await create_partner(database, "acme")
    made = await endpoints.create_endpoint(
        database, notify_settings(database_target), partner_id=partner.id,
        url="https://hooks.example/x", events=[])
    receipt_id, _ = await receipts.insert_receipt(
        database, partner_id=partner.id, idempotency_key="k1",
        submission=parse_submission(BODY, max_attachment_bytes=1024))
    claimed = await receipt_work.claim_next(database, owner="w1", lease_s=60)
    assert claimed is not None
    log = receipt_work.StepLog(database, receipt_id, "w1")
    bill = bill_from_alegra({"id": "77", "date": "2024-05-01", "total": 118, "status": "open"},
                            receipt_id=receipt_id)
    log.done("bill", outcome="created", alegra_id="77", detail={"total": "118.00"})
    log.bill("77")
    log.also(lambda conn: bills.record_bill_in(conn, bill, company="default", source="receipt"))
    assert await log.complete()
    await bill_status.record_bill_gone(database, "77", confirmed_at="2999-01-01T00:00:00+00:00")

    events = await events_of(database, receipt_id)
    assert [e["type"] for e in events] == ["receipt.completed", "bill.deleted"]
    assert events[0]["data"]["bill"]["id"] == "77"
    rows = await database.fetchall(
        "SELECT endpoint_id, seq, state FROM notification_deliveries ORDER BY seq")
    assert [tuple(r) for r in rows] == [(made.endpoint.id, 1, "pending"),
                                       (made.endpoint.id, 2, "pending")]
    assert events[1]["data"]["bill"]["deleted"] is True
