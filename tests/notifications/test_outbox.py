"""Events are written in the transaction of the change they report: a receipt billed, a
duplicate, a failure, a wait, a bill voided or deleted in Alegra; only for partners with an
endpoint that wants them, and only about their own receipts."""

from __future__ import annotations

from typing import Any

import pytest

from sync.events.apply import confirm_bill
from sync.notifications import endpoints
from sync.notifications.records import EventType
from sync.store import receipt_work
from sync.store.companies import revoke_grant
from sync.store.partners import create_partner
from tests.flow.conftest import Flow, flow, receipt_body
from tests.notifications.conftest import events_of, notify_settings

__all__ = ["flow"]
pytestmark = pytest.mark.anyio


async def _endpoint(f: Flow, partner_id: str | None = None, events: list[str] | None = None
                    ) -> str:
    settings = notify_settings(f.env.settings.database_target)
    made = await endpoints.create_endpoint(
        f.db, settings, partner_id=partner_id or f.partner_id, url="http://127.0.0.1:9/hook",
        events=events or [])
    return made.endpoint.id


async def _deliveries(f: Flow, endpoint_id: str) -> list[Any]:
    return await f.db.fetchall("SELECT * FROM notification_deliveries WHERE endpoint_id = ?",
                               (endpoint_id,))


async def test_no_endpoint_no_event(flow: Flow) -> None:
    """No endpoint no event."""
    await flow.process(receipt_body())
    assert await events_of(flow.db) == []


async def test_a_billed_receipt_writes_receipt_completed_with_its_bill(flow: Flow) -> None:
    """A billed receipt writes receipt completed with its bill."""
    endpoint = await _endpoint(flow)
    receipt_id = await flow.process(receipt_body())
    resource = await flow.resource(receipt_id)
    [event] = await events_of(flow.db, receipt_id)
    assert event["type"] == EventType.RECEIPT_COMPLETED
    data = event["data"]
    assert data["receipt_id"] == receipt_id
    assert data["status"] == "completed"
    assert data["bill"]["id"] == resource["alegra"]["bill_id"]
    assert data["bill"]["number"] == "B0100000001"
    assert data["bill"]["total"] == "236.00"
    assert data["bill"]["outcome"] == "created"
    assert data["steps"]["supplier"] == "created"
    [delivery] = await _deliveries(flow, endpoint)
    assert delivery["state"] == "pending"
    assert delivery["event_id"] == event["id"]


async def test_a_duplicate_writes_receipt_duplicate_naming_the_partners_own_bill(
    flow: Flow,
) -> None:
    """A duplicate writes receipt duplicate naming the partners own bill."""
    await _endpoint(flow)
    first = await flow.process(receipt_body())
    second = await flow.process(receipt_body())
    bill_id = (await flow.resource(first))["alegra"]["bill_id"]
    [event] = await events_of(flow.db, second)
    assert event["type"] == EventType.RECEIPT_DUPLICATE
    assert event["data"]["bill"]["id"] == bill_id
    assert event["data"]["bill"]["billed_by"] is None


async def test_a_duplicate_of_another_partners_bill_does_not_name_it(flow: Flow) -> None:
    """A duplicate of another partners bill does not name it."""
    other, _ = await create_partner(flow.db, "other")
    await _endpoint(flow, other.id)
    await flow.process(receipt_body())  # acme's receipt makes the bill
    flow.partner_id = other.id
    theirs = await flow.process(receipt_body())
    [event] = await events_of(flow.db, theirs)
    assert event["data"]["bill"] == {"id": None, "billed_by": "another_partner",
                                     "number": "B0100000001", "status": "open"}


async def test_a_failed_receipt_writes_receipt_failed_with_alegras_error(flow: Flow) -> None:
    """A failed receipt writes receipt failed with alegras error."""
    await flow.process(receipt_body())
    [contact_id] = flow.sim.state.contacts
    flow.sim.state.person_edit_contact(contact_id, status="inactive")
    await _endpoint(flow)
    receipt_id = await flow.process(receipt_body(ncf="B0100000002"))
    [event] = await events_of(flow.db, receipt_id)
    assert event["type"] == EventType.RECEIPT_FAILED
    error = event["data"]["error"]
    assert (error["step"], error["status"], error["code"]) == ("bill", 400, 2094)
    assert "desactivado" in error["message"]
    assert error["retry_may_help"] is False


async def test_endpoints_get_only_the_types_they_asked_for(flow: Flow) -> None:
    """Endpoints get only the types they asked for."""
    wants_failed = await _endpoint(flow, events=["receipt.failed"])
    every = await _endpoint(flow)
    await flow.process(receipt_body())
    assert await _deliveries(flow, wants_failed) == []
    assert len(await _deliveries(flow, every)) == 1


async def test_another_partners_endpoint_hears_nothing(flow: Flow) -> None:
    """Another partners endpoint hears nothing."""
    other, _ = await create_partner(flow.db, "other")
    theirs = await _endpoint(flow, other.id)
    await flow.process(receipt_body())
    assert await _deliveries(flow, theirs) == []


async def test_a_partner_no_longer_granted_the_company_hears_nothing(flow: Flow) -> None:
    """A partner no longer granted the company hears nothing."""
    await _endpoint(flow)
    await revoke_grant(flow.db, flow.partner_id, "default")
    await flow.process(receipt_body())
    assert await events_of(flow.db) == []


async def test_a_change_that_did_not_land_writes_no_event(flow: Flow) -> None:
    """The receipt's hold was taken over: `complete` changes nothing, so no event either."""
    await _endpoint(flow)
    receipt_id = await flow.submit(receipt_body())
    claimed = await receipt_work.claim_next(flow.db, owner="w1", lease_s=60)
    assert claimed is not None
    await flow.db.execute("UPDATE receipts SET lease_owner = 'w2' WHERE id = ?", (receipt_id,))
    assert not await receipt_work.StepLog(flow.db, receipt_id, "w1").complete()
    assert await events_of(flow.db) == []


async def test_a_bill_voided_then_deleted_in_alegra_reaches_its_receipts_partner(
    flow: Flow,
) -> None:
    """A bill voided then deleted in alegra reaches its receipts partner."""
    await _endpoint(flow)
    receipt_id = await flow.process(receipt_body())
    bill_id = (await flow.resource(receipt_id))["alegra"]["bill_id"]
    await confirm_bill(flow.env.alegra, flow.db, bill_id)  # unchanged: nothing to say
    flow.sim.state.person_void_bill(bill_id)
    await confirm_bill(flow.env.alegra, flow.db, bill_id)
    await confirm_bill(flow.env.alegra, flow.db, bill_id)  # still void: said once
    flow.sim.state.person_delete_bill(bill_id)
    await confirm_bill(flow.env.alegra, flow.db, bill_id)
    events = await events_of(flow.db, receipt_id)
    assert [e["type"] for e in events] == [
        "receipt.completed", "bill.voided", "bill.deleted"]
    assert events[1]["data"]["bill"]["id"] == bill_id
    assert events[1]["data"]["bill"]["status"] == "void"


async def test_a_receipt_waiting_on_its_ncfs_holder_says_so_once_then_its_outcome(
    flow: Flow,
) -> None:
    """A twin held behind the first receipt's unknown bill: one `receipt.waiting` (naming its
    own holder), not another on the next retry, then `receipt.duplicate`."""
    await flow.process(receipt_body(ncf="B0100000009"))  # supplier, account and taxes cached
    flow.sim.state.faults.update({"hang_after_commit": 1, "hang_s": 3.0})
    first = await flow.process(receipt_body())  # its bill POST timed out: it holds the NCF
    await _endpoint(flow)
    await flow.db.execute("UPDATE receipts SET next_attempt_at = '2999-01-01T00:00:00+00:00'"
                          " WHERE id = ?", (first,))  # not retried before the twin's two tries
    twin = await flow.process(receipt_body())
    await flow.make_ready(twin)
    assert await flow.run_next() == "queued"  # waits again: nothing new to say
    await flow.make_ready(first)
    assert await flow.run_next() == "completed"
    await flow.make_ready(twin)
    assert await flow.run_next() == "duplicate"
    events = await events_of(flow.db, twin)
    assert [e["type"] for e in events] == ["receipt.waiting", "receipt.duplicate"]
    assert (events[0]["data"]["reason"], events[0]["data"]["holder"]) == ("ncf_held", first)
    assert [e["data"]["status"] for e in events] == ["queued", "duplicate"]
