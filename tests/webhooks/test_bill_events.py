"""Bill events: the bills this service knows follow Alegra, and a receipt shows its bill's fate."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sync.alegra import records
from sync.alegra.client import AlegraClient
from sync.alegra.records import contact_from_alegra
from sync.receipt_model import parse_submission
from sync.simulator.categories import is_leaf
from sync.store import bills, receipts
from sync.store.contacts import upsert_contacts
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.support.servers import RunningSimulator
from tests.webhooks.test_apply import deliver, settle

pytestmark = pytest.mark.anyio


def make_bill(sim: RunningSimulator) -> dict[str, Any]:
    """A supplier bill typed into the simulated Alegra."""
    state = sim.state
    provider = state.person_create_contact(
        name="Ferretería Ochoa", identification={"type": "RNC", "number": "131246796"},
        type=["provider"])
    account = next(c for c in state.categories.values()
                   if c["type"] == "expense" and is_leaf(state, c["id"]))
    return state.person_create_bill(
        date="2024-05-01", dueDate="2024-05-01", provider={"id": provider["id"]},
        numberTemplate={"number": "B0100000001"},
        purchases={"categories": [{"id": account["id"], "price": 100, "quantity": 1}]})


async def our_receipt_for(db: Database, bill: dict[str, Any]) -> str:
    """A receipt of ours whose bill is `bill` (as the receipts lane leaves it)."""
    partner, _ = await create_partner(db, "acme")
    submission = parse_submission({
        "supplier": {"name": "Ferretería Ochoa", "tax_id": "131246796"}, "date": "2024-05-01",
        "ncf": "B0100000001", "category": "Gastos de oficina",
        "lines": [{"description": "Tornillos", "amount": "100.00", "tax_rate": 0}],
    }, max_attachment_bytes=1024)
    receipt_id, _ = await receipts.insert_receipt(
        db, partner_id=partner.id, idempotency_key="k1", submission=submission)
    await db.execute("UPDATE receipts SET status = 'completed', bill_id = ? WHERE id = ?",
                     (bill["id"], receipt_id))
    known = records.bill_from_alegra(bill, provider_tax_id="131246796", receipt_id=receipt_id)
    await bills.record_bill(db, known, source="receipt")
    return receipt_id


async def receipt_flags(db: Database, receipt_id: str) -> list[str]:
    row = await receipts.get_receipt(db, receipt_id, None)
    assert row is not None
    return list(row.flags)


async def test_voided_bill_frees_its_ncf_and_shows_on_the_receipt(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """A bill voided in Alegra: its row says void, its NCF is free, its receipt is flagged."""
    bill = make_bill(simulator)
    receipt_id = await our_receipt_for(db, bill)
    simulator.state.person_void_bill(bill["id"])
    await deliver(db, "edit-bill", "bill", id=bill["id"], status="void")
    await settle(alegra, db)
    known = await bills.get_bill(db, bill["id"])
    assert known is not None
    assert (known.status, known.receipt_id) == ("void", receipt_id)
    assert await bills.find_live_bill(db, "131246796", "B0100000001") is None
    assert await receipt_flags(db, receipt_id) == ["bill_voided"]


async def test_deleted_bill_is_marked_and_shows_on_the_receipt(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """A bill deleted in Alegra: the row is soft-deleted and the receipt says bill_deleted."""
    bill = make_bill(simulator)
    receipt_id = await our_receipt_for(db, bill)
    simulator.state.person_delete_bill(bill["id"])
    await deliver(db, "delete-bill", "bill", id=bill["id"])
    await settle(alegra, db)
    row = await db.fetchone("SELECT deleted, receipt_id FROM bills WHERE alegra_id = ?",
                            (bill["id"],))
    assert row is not None
    assert (row["deleted"], row["receipt_id"]) == (1, receipt_id)
    assert await receipt_flags(db, receipt_id) == ["bill_deleted"]


async def test_forged_void_does_not_flag_a_live_bill(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """A delivery claiming our bill was deleted, while Alegra still has it open, changes nothing."""
    bill = make_bill(simulator)
    receipt_id = await our_receipt_for(db, bill)
    await deliver(db, "delete-bill", "bill", id=bill["id"])
    await settle(alegra, db)
    known = await bills.get_bill(db, bill["id"])
    assert known is not None
    assert (known.status, known.receipt_id) == ("open", receipt_id)
    assert await bills.find_live_bill(db, "131246796", "B0100000001") is not None
    assert await receipt_flags(db, receipt_id) == []


async def test_bill_made_elsewhere_is_learned_with_its_supplier_tax_id(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """A bill typed by hand in Alegra becomes a known bill (for duplicate checks), not a receipt."""
    bill = make_bill(simulator)
    provider = simulator.state.contacts[bill["provider"]["id"]]
    await upsert_contacts(db, [contact_from_alegra(provider)], source="backfill")
    await deliver(db, "new-bill", "bill", **json.loads(json.dumps(bill)))
    await settle(alegra, db)
    live = await bills.find_live_bill(db, "131246796", "B0100000001")
    assert live is not None
    assert (live.alegra_id, live.receipt_id) == (bill["id"], None)


@pytest.mark.parametrize("provider", [
    {"id": "77", "identification": "131246796"},
    {"id": "77", "identification": {"type": "RNC", "number": "1-31-24679-6"}},
    {"id": "77", "identification": None,
     "identificationObject": {"type": "RNC", "number": "131246796"}},
])
def test_a_bills_provider_tax_id_is_read_wherever_alegra_puts_it(provider: dict[str, Any]) -> None:
    """A bill's provider gives its tax id as a string, an object or `identificationObject`
    alone: each is read the way a contact's is, so the duplicate check can match the bill."""
    assert records.bill_as_shown({"id": "9", "provider": provider}).provider_tax_id == "131246796"
