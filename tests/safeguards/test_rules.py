"""The pure duplicate rules: what counts as the same fiscal document, and as a likely duplicate."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from sync.alegra.payloads import bill_number
from sync.duplicate_rules import (
    BillSeen,
    Facts,
    OtherReceipt,
    likely_duplicates,
    ncf_verdict,
)
from sync.receipt_model import parse_submission
from tests.flow.conftest import receipt_body

FACTS = Facts(receipt_id="rcp_me", tax_id="131246796", name_key="ferreteria ochoa srl",
              ncf="B0100000001", date="2024-05-01", total=Decimal("236.00"))
BILL = BillSeen(alegra_id="7", provider_id="3", provider_tax_id="131246796",
                ncf_key="B0100000001", bill_date="2024-05-01", total="236.0", status="open",
                receipt_id=None, source="webhook")
OTHER = OtherReceipt(receipt_id="rcp_other", tax_id="131246796", name_key="ferreteria ochoa srl",
                     date="2024-05-01", total="236.00", status="queued", bill_id=None)


def test_facts_of_a_receipt_use_the_normalised_tax_id_and_ncf() -> None:
    """Dashes and spaces of the tax id and NCF are gone from the document's key."""
    body = receipt_body(ncf="b01-0000 0001")
    receipt = parse_submission(body, max_attachment_bytes=1).receipt

    facts = Facts.of("rcp_1", receipt)

    assert facts.claim_key == "131246796|B0100000001"
    assert (facts.date, facts.total) == ("2024-05-01", Decimal("236.00"))


def test_supplier_without_tax_id_is_keyed_by_its_normalised_name() -> None:
    """Without a tax id the document's key uses the supplier's name key; no NCF, no key."""
    assert replace(FACTS, tax_id=None).claim_key == "name:ferreteria ochoa srl|B0100000001"
    assert replace(FACTS, ncf=None).claim_key is None


def test_live_bill_with_same_supplier_and_ncf_is_a_duplicate() -> None:
    """An open bill for the supplier's NCF makes the receipt a duplicate of it."""
    verdict = ncf_verdict(FACTS, [BILL], set(), None)
    assert (verdict.outcome, verdict.bill) == ("duplicate", BILL)


@pytest.mark.parametrize(("change", "why"), [
    ({"status": "void"}, "a void bill frees its NCF"),
    ({"status": "VOID"}, "whatever the case Alegra writes it in"),
    ({"provider_tax_id": "101010632", "provider_id": "9"}, "another supplier's NCF"),
    ({"ncf_key": "B0100000002"}, "another NCF"),
    ({"receipt_id": "rcp_me"}, "the receipt's own bill, recorded before a crash"),
])
def test_bills_that_do_not_make_a_duplicate(change: dict[str, str], why: str) -> None:
    """Void bills, other suppliers, other NCFs and the receipt's own bill leave it clear."""
    assert ncf_verdict(FACTS, [replace(BILL, **change)], set(), None).outcome == "clear", why


def test_bill_known_only_by_provider_id_matches_through_the_cached_contacts() -> None:
    """A bill stored without a tax id matches when its provider is a contact with the tax id."""
    bill = replace(BILL, provider_tax_id=None)
    assert ncf_verdict(FACTS, [bill], set(), None).outcome == "clear"
    assert ncf_verdict(FACTS, [bill], {"3"}, None).outcome == "duplicate"


@pytest.mark.parametrize(("status", "outcome"), [
    ("queued", "wait"), ("processing", "wait"), ("failed", "clear"), ("duplicate", "clear"),
    ("completed", "clear"),
])
def test_claim_of_another_receipt_blocks_only_while_it_may_still_bill(
    status: str, outcome: str
) -> None:
    """A claim holder in flight makes the receipt wait; one that ended frees the document."""
    holder = replace(OTHER, status=status)
    verdict = ncf_verdict(FACTS, [], set(), holder)
    assert verdict.outcome == outcome
    assert ncf_verdict(FACTS, [], set(), replace(holder, receipt_id="rcp_me")).outcome == "clear"


def test_same_supplier_date_and_total_is_a_likely_duplicate() -> None:
    """Without an NCF, a bill and a receipt with the same supplier, date and total are flagged."""
    facts = replace(FACTS, ncf=None)
    flags = likely_duplicates(facts, [BILL], [OTHER], set())
    assert flags == ["likely_duplicate:7", "likely_duplicate:rcp_other"]


@pytest.mark.parametrize(("bill_change", "other_change"), [
    ({"total": "236.01"}, {"total": "235.99"}),
    ({"bill_date": "2024-05-02"}, {"date": "2024-05-02"}),
    ({"provider_tax_id": "101010632"}, {"tax_id": "101010632"}),
    ({"status": "void"}, {"status": "failed"}),
])
def test_different_total_date_supplier_or_a_dead_record_is_not_flagged(
    bill_change: dict[str, str], other_change: dict[str, str]
) -> None:
    """One cent, one day or another supplier apart, or void / failed: no flag."""
    facts = replace(FACTS, ncf=None)
    flags = likely_duplicates(facts, [replace(BILL, **bill_change)],
                              [replace(OTHER, **other_change)], set())
    assert flags == []


def test_receipt_whose_bill_is_flagged_is_not_flagged_twice() -> None:
    """The receipt that made a matching bill is the same document: only the bill is named."""
    facts = replace(FACTS, ncf=None)
    billed = replace(OTHER, status="completed", bill_id="7")
    assert likely_duplicates(facts, [BILL], [billed], set()) == ["likely_duplicate:7"]


def test_receipts_without_tax_id_are_compared_by_name() -> None:
    """Without tax ids, the suppliers' normalised names decide."""
    facts = replace(FACTS, ncf=None, tax_id=None)
    assert likely_duplicates(facts, [], [replace(OTHER, tax_id=None)], set()) == [
        "likely_duplicate:rcp_other"]
    other_name = replace(OTHER, tax_id=None, name_key="papeleria del sol")
    assert likely_duplicates(facts, [], [other_name], set()) == []


@pytest.mark.parametrize(("bill", "key"), [
    ({"numberTemplate": {"number": "B0100000001"}}, "B0100000001"),
    ({"numberTemplate": {"prefix": "B01", "number": "00000001"}}, "B0100000001"),
    ({"numberTemplate": {"prefix": "B01", "number": "B0100000001"}}, "B0100000001"),
    ({"numberTemplate": {"fullNumber": "b01-00000001"}}, "B0100000001"),
    ({"number": "E31 0000000001"}, "E310000000001"),
    ({"numberTemplate": {}}, None),
    ({"numberTemplate": [{"fullNumber": "B01-00000001"}]}, "B0100000001"),
    ({"numberTemplate": [{"id": "3", "prefix": "B01", "number": "00000001"}]}, "B0100000001"),
    ({"numberTemplate": [{"number": "B0100000001"}]}, "B0100000001"),
    ({"numberTemplate": [{}, {"billNumber": "B0100000001"}]}, "B0100000001"),
    ({"numberTemplate": [], "billNumber": "B0100000001"}, "B0100000001"),
    ({"numberTemplate": {"fullNumber": "B0100000001", "number": "17"}}, "B0100000001"),
    ({"billNumber": "B0100000001", "number": "17"}, "B0100000001"),
    ({"numberTemplate": []}, None),
])
def test_ncf_of_a_bill_read_from_alegra_is_found_wherever_it_sits(
    bill: dict[str, object], key: str | None
) -> None:
    """The NCF is read from the template, an object or a list of them (`fullNumber`, then
    `billNumber`, then `number` with its prefix), or from the root (`billNumber`, `number`)."""
    assert bill_number(bill) == key


def test_holder_that_failed_after_an_unanswered_bill_still_holds_the_document() -> None:
    """A claim holder that failed with its bill's outcome never learned may have billed: wait."""
    holder = replace(OTHER, status="failed", bill_unknown=True)
    assert ncf_verdict(FACTS, [], set(), holder).outcome == "wait"
    assert ncf_verdict(FACTS, [], set(), replace(holder, bill_unknown=False)).outcome == "clear"
