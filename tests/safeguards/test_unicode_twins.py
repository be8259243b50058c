"""One bill per fiscal document whatever digits the tax id and NCF are written in, and no match
through an empty name key: the real flow on a SQLite file, the simulator on loopback."""

from __future__ import annotations

import pytest

from sync.alegra.records import account_from_alegra, contact_from_alegra
from sync.names import name_key
from sync.receipt_model import ReceiptInvalid, parse_submission
from sync.store import bill_index
from sync.store.accounts import find_expense_account, upsert_accounts
from sync.store.contacts import find_contacts_by_name_key, upsert_contacts
from tests.flow.conftest import RNC, Flow, receipt_body

pytestmark = pytest.mark.anyio


def written_in(zero: int, text: str) -> str:
    """`text` with its ASCII digits written in the digit set whose zero is code point `zero`."""
    return "".join(chr(zero + int(ch)) if ch.isdigit() else ch for ch in text)


READ_AS_ASCII = {"fullwidth": 0xFF10, "math-bold": 0x1D7CE, "double-struck": 0x1D7D8}
NOT_DIGITS_WE_READ = {"arabic-indic": 0x0660, "devanagari": 0x0966}


async def test_twins_in_other_digit_sets_end_duplicate_of_the_one_bill(flow: Flow) -> None:
    """The receipt again with its RNC and NCF in fullwidth, mathematical bold or double-struck
    digits is `duplicate` of the first bill: no second contact, no second bill."""
    first = await flow.process(receipt_body())
    bill_id = (await flow.resource(first))["alegra"]["bill_id"]
    assert bill_id is not None

    for zero in READ_AS_ASCII.values():
        supplier = {"name": "Ferretería Ochoa, S.R.L.", "tax_id": written_in(zero, "1-31-24679-6")}
        twin = receipt_body(supplier=supplier, ncf=written_in(zero, "B0100000001"))
        resource = await flow.resource(await flow.process(twin))
        assert (resource["status"], resource["alegra"]["bill_id"]) == ("duplicate", bill_id)
        assert resource["supplier"]["tax_id"] == RNC

    assert len(flow.sim.state.bills) == 1
    assert [c["identification"] for c in flow.sim.state.contacts.values()] == [RNC]


@pytest.mark.parametrize("zero", NOT_DIGITS_WE_READ.values(), ids=NOT_DIGITS_WE_READ.keys())
def test_digit_sets_nfkc_does_not_read_never_reach_the_flow(zero: int) -> None:
    """An RNC in Arabic-Indic or Devanagari digits is refused before anything is stored."""
    twin = receipt_body(supplier={"name": "Ochoa", "tax_id": written_in(zero, RNC)})
    with pytest.raises(ReceiptInvalid) as refused:
        parse_submission(twin, max_attachment_bytes=1024)
    assert (refused.value.status, refused.value.field) == (422, "supplier.tax_id")


async def test_an_empty_name_key_matches_no_cached_contact_or_account(flow: Flow) -> None:
    """Contacts and accounts named only with emoji (typed in Alegra) are never matched by the
    empty key such names share, whichever receipt asks."""
    await upsert_contacts(flow.db, [contact_from_alegra(
        {"id": "70", "name": "☕", "type": ["provider"], "status": "active"})], source="backfill")
    await upsert_accounts(flow.db, [account_from_alegra(
        {"id": "80", "name": "📦", "type": "expense", "status": "active"})], source="poll")
    async with flow.db.transaction() as conn:
        providers = await bill_index.provider_ids(
            conn, None, name_key("🍕"), company=flow.db.company
        )

    assert await find_contacts_by_name_key(flow.db, name_key("🍕")) == []
    assert await find_expense_account(flow.db, name_key("🚚")) is None
    assert providers == set()


@pytest.mark.parametrize("invisible", ["\u200b", "\u00ad", "\u2060", "\u200d", "\ufeff"],
                         ids=["zero-width-space", "soft-hyphen", "word-joiner", "zwj", "bom"])
async def test_invisible_characters_inside_a_name_make_no_second_supplier(
    flow: Flow, invisible: str
) -> None:
    """A supplier without a tax id is keyed on its name: the same name with a zero-width
    character inside is the same supplier, so the same NCF ends `duplicate` of the one bill
    (it was a second contact and a second bill)."""
    first = await flow.process(receipt_body(supplier={"name": "Papelería del Sol"}))
    bill_id = (await flow.resource(first))["alegra"]["bill_id"]
    assert bill_id is not None

    twin = receipt_body(supplier={"name": f"Papele{invisible}ría del Sol"})
    resource = await flow.resource(await flow.process(twin))

    assert (resource["status"], resource["alegra"]["bill_id"]) == ("duplicate", bill_id)
    assert len(flow.sim.state.bills) == 1
    assert len(flow.sim.state.contacts) == 1
