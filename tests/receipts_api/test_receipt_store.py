"""sync.store.receipts: one row per (partner, key) under concurrency, and paged listings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sync.receipt_model import Submission, Upload, parse_submission
from sync.receipt_records import ReceiptRecord
from sync.receipt_resource import receipt_resource
from sync.states import ReceiptStatus, StepState
from sync.store import receipt_work
from sync.store.db import Database
from sync.store.partners import create_partner
from sync.store.receipts import (
    IdempotencyConflict,
    get_attachment,
    get_receipt,
    get_steps,
    insert_receipt,
    list_receipts,
)
from tests.receipts_api.conftest import PDF, receipt_body

pytestmark = pytest.mark.anyio


def _submission(**changes: object) -> Submission:
    return parse_submission(receipt_body(**changes), max_attachment_bytes=4096)


async def test_concurrent_identical_requests_make_one_row(tmp_path: Path) -> None:
    """Two processes storing the same (partner, key) at once create exactly one receipt."""
    first = await Database.open(tmp_path / "t.db")
    second = await Database.open(tmp_path / "t.db")
    partner, _ = await create_partner(first, "acme")
    try:
        results = await asyncio.gather(*(
            insert_receipt(db, partner_id=partner.id, idempotency_key="k", submission=_submission())
            for db in (first, second, first, second)
        ))
        assert len({receipt_id for receipt_id, _ in results}) == 1
        assert sorted(created for _, created in results) == [False, False, False, True]
        assert await first.scalar("SELECT count(*) FROM receipts") == 1
    finally:
        await first.close()
        await second.close()


async def test_conflict_names_the_existing_receipt(tmp_path: Path) -> None:
    """The same key with another receipt raises IdempotencyConflict carrying the first id."""
    db = await Database.open(tmp_path / "t.db")
    try:
        partner, _ = await create_partner(db, "acme")
        receipt_id, _ = await insert_receipt(
            db, partner_id=partner.id, idempotency_key="k", submission=_submission()
        )
        with pytest.raises(IdempotencyConflict) as caught:
            await insert_receipt(
                db, partner_id=partner.id, idempotency_key="k", submission=_submission(ncf=None)
            )
        assert caught.value.receipt_id == receipt_id
    finally:
        await db.close()


async def test_partner_filter_and_attachment_bytes(tmp_path: Path) -> None:
    """get_receipt honours the partner; get_attachment returns the bytes as sent."""
    db = await Database.open(tmp_path / "t.db")
    try:
        acme, _ = await create_partner(db, "acme")
        globex, _ = await create_partner(db, "globex")
        submission = parse_submission(
            receipt_body(), max_attachment_bytes=4096, upload=Upload("f.pdf", None, PDF)
        )
        receipt_id, _ = await insert_receipt(
            db, partner_id=acme.id, idempotency_key="k", submission=submission
        )
        assert await get_receipt(db, receipt_id, acme.id) is not None
        assert await get_receipt(db, receipt_id, globex.id) is None
        assert await get_receipt(db, receipt_id, None) is not None
        stored = await get_attachment(db, receipt_id)
        assert stored is not None
        assert (stored.filename, stored.content_type) == ("f.pdf", "application/pdf")
        assert stored.data == PDF
    finally:
        await db.close()


async def test_listing_pages_newest_first_with_filters(tmp_path: Path) -> None:
    """Five receipts page 2 + 2 + 1 newest first; filters narrow by partner, status and date."""
    db = await Database.open(tmp_path / "t.db")
    try:
        acme, _ = await create_partner(db, "acme")
        globex, _ = await create_partner(db, "globex")
        ids = []
        for day in range(1, 6):
            receipt_id, _ = await insert_receipt(
                db, partner_id=acme.id, idempotency_key=f"k{day}",
                submission=_submission(date=f"2024-05-0{day}"),
            )
            ids.append(receipt_id)
        await insert_receipt(
            db, partner_id=globex.id, idempotency_key="g", submission=_submission()
        )
        seen: list[str] = []
        after = None
        while page := await list_receipts(db, partner_id=acme.id, limit=2, after=after):
            seen += [row.id for row in page]
            after = (page[-1].created_at, page[-1].id)
        assert seen == ids[::-1]
        dated = await list_receipts(db, date_from="2024-05-02", date_to="2024-05-03")
        assert {row.id for row in dated} == set(ids[1:3])
        assert await list_receipts(db, status="completed") == []
    finally:
        await db.close()


async def test_reads_are_typed_records_the_renderer_turns_into_the_resource(
    tmp_path: Path,
) -> None:
    """get_receipt and get_steps return records (payload and details decoded, states as enums);
    the pure renderer orders the steps and names the Alegra ids from them alone."""
    db = await Database.open(tmp_path / "t.db")
    try:
        acme, _ = await create_partner(db, "acme")
        receipt_id, _ = await insert_receipt(
            db, partner_id=acme.id, idempotency_key="k", submission=_submission()
        )
        claimed = await receipt_work.claim_next(db, owner="w1", lease_s=30)
        assert claimed is not None
        log = receipt_work.StepLog(db, receipt_id, "w1")
        log.done("bill", outcome="created", alegra_id="9", detail=None)
        log.done("supplier", outcome="found", alegra_id="77", detail={"via": "tax_id"})
        await log.attempting("attachment")
        receipt = await get_receipt(db, receipt_id, None)
        steps = await get_steps(db, receipt_id)
    finally:
        await db.close()
    assert isinstance(receipt, ReceiptRecord)
    assert (receipt.status, receipt.partner_id, receipt.flags) == (
        ReceiptStatus.PROCESSING, acme.id, ())
    assert {s.step: s.state for s in steps}["supplier"] is StepState.DONE
    resource = receipt_resource(receipt, steps)
    assert [s["step"] for s in resource["steps"]] == ["supplier", "bill", "attachment"]
    assert resource["steps"][0]["detail"] == {"via": "tax_id"}
    assert resource["alegra"] == {"contact_id": "77", "account_ids": {}, "bill_id": "9",
                                  "attachment": None}
    assert (resource["status"], resource["error"]) == ("processing", None)
