"""Is this receipt's fiscal document already billed? The pure rules behind `flow/duplicates.py`.

A supplier's NCF identifies one fiscal document: a receipt whose supplier and normalised NCF
already have a live bill (not void, not deleted) is a `duplicate` and must not be billed again.
While another receipt of ours holds the document and may still bill it, the receipt waits.
Receipts without an NCF can only be compared on supplier + date + total: a match is a *likely*
duplicate, flagged on the receipt (`likely_duplicate:<bill or receipt id>`) but billed all the same.

The supplier is the same when the tax ids agree, or when the bill's provider is one of the cached
contacts holding the receipt's tax id (or, for a receipt without one, its normalised name): a bill
learned through a webhook before its contact was cached has a provider id but no tax id.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sync import money
from sync.names import name_key
from sync.receipt_model import Receipt
from sync.states import ReceiptStatus

CHECK_STEP = "duplicate_check"  # the receipt step that records the check's verdict
VOID = "void"
NCF_IN_FLIGHT = "ncf_in_flight"  # error codes of a receipt waiting for the NCF's holder
NCF_HELD_BY_FAILED = "ncf_held_by_failed_receipt"
# A receipt in these may still create its bill; one in these made none (but see may_bill).
IN_FLIGHT = frozenset({ReceiptStatus.QUEUED, ReceiptStatus.PROCESSING})
NOT_BILLING = frozenset({ReceiptStatus.FAILED, ReceiptStatus.DUPLICATE})
LIKELY = "likely_duplicate"


@dataclass(frozen=True)
class Facts:
    """What the check compares of one receipt."""

    receipt_id: str
    tax_id: str | None
    name_key: str
    ncf: str | None
    date: str
    total: Decimal

    @classmethod
    def of(cls, receipt_id: str, receipt: Receipt) -> Facts:
        tax_id = receipt.supplier.tax_id
        return cls(
            receipt_id=receipt_id,
            tax_id=None if tax_id is None else tax_id.number,
            name_key=name_key(receipt.supplier.name),
            ncf=None if receipt.ncf is None else receipt.ncf.number,
            date=receipt.date.isoformat(),
            total=receipt.total,
        )

    @property
    def supplier_key(self) -> str:
        return self.tax_id or f"name:{self.name_key}"

    @property
    def claim_key(self) -> str | None:
        """The fiscal document's key (`<supplier>|<NCF>`), None without an NCF."""
        return None if self.ncf is None else f"{self.supplier_key}|{self.ncf}"


@dataclass(frozen=True)
class BillSeen:
    """A bill the cache knows (not deleted): where it came from and what it says."""

    alegra_id: str
    provider_id: str | None
    provider_tax_id: str | None
    ncf_key: str | None
    bill_date: str | None
    total: str | None
    status: str | None
    receipt_id: str | None
    source: str


@dataclass(frozen=True)
class OtherReceipt:
    """Another receipt of ours, as far as likely-duplicate matching needs it."""

    receipt_id: str
    tax_id: str | None
    name_key: str
    date: str
    total: str | None
    status: str
    bill_id: str | None
    bill_unknown: bool = False  # its bill step is `attempting`: a bill may exist we never saw

    @property
    def may_bill(self) -> bool:
        """In flight, or failed after a bill write whose outcome was never learned (an
        operator's retry looks it up first)."""
        return self.status in IN_FLIGHT or (
            self.status == ReceiptStatus.FAILED and self.bill_unknown)


@dataclass(frozen=True)
class Verdict:
    """`clear` (bill it), `duplicate` of `bill`, or `wait` for receipt `holder` to finish."""

    outcome: str
    bill: BillSeen | None = None
    holder: str | None = None
    holder_status: str | None = None


CLEAR = Verdict("clear")


def is_live(bill: BillSeen) -> bool:
    return (bill.status or "").lower() != VOID


def same_total(total: Decimal, text: str | None) -> bool:
    """`text` (as Alegra or the store wrote it) is the same amount to the cent."""
    try:
        return text is not None and money.round_money(Decimal(str(text))) == total
    except (InvalidOperation, ValueError):
        return False


def bill_of_supplier(facts: Facts, bill: BillSeen, provider_ids: Set[str]) -> bool:
    if facts.tax_id is not None and bill.provider_tax_id == facts.tax_id:
        return True
    return bill.provider_id is not None and bill.provider_id in provider_ids


def ncf_verdict(
    facts: Facts, bills: Iterable[BillSeen], provider_ids: Set[str], holder: OtherReceipt | None
) -> Verdict:
    """The decision for a receipt with an NCF, from the cached bills carrying that NCF and the
    receipt of ours that claimed the document first (if any)."""
    for bill in bills:
        if (bill.ncf_key == facts.ncf and is_live(bill) and bill.receipt_id != facts.receipt_id
                and bill_of_supplier(facts, bill, provider_ids)):
            return Verdict("duplicate", bill=bill)
    if holder is not None and holder.receipt_id != facts.receipt_id and holder.may_bill:
        return Verdict("wait", holder=holder.receipt_id, holder_status=holder.status)
    return CLEAR


def ncf_held_message(holder: str | None, *, holder_failed: bool) -> str:
    """The waiting receipt's error message; `holder` None: a receipt its reader may not see
    (another partner's), named by what it is, not by its id."""
    who = f"receipt {holder}" if holder is not None else "another partner's receipt"
    if not holder_failed:
        return f"{who} holds this supplier's NCF and may still bill it"
    retry = (f"retry {holder} (it looks its bill up first)" if holder is not None
             else "an operator's retry of it settles it (it looks its bill up first)")
    return (f"{who} holds this supplier's NCF: it failed after sending its bill, whose outcome"
            f" was never learned; {retry}, and this receipt follows")


def likely_flag(target_id: str) -> str:
    return f"{LIKELY}:{target_id}"


def likely_duplicates(
    facts: Facts,
    bills: Iterable[BillSeen],
    receipts: Iterable[OtherReceipt],
    provider_ids: Set[str],
) -> list[str]:
    """Flags for the live bills and the receipts of ours (that bill or will) with the same
    supplier, date and total. A receipt whose bill is flagged already is not flagged again."""
    matched_bills = {
        b.alegra_id for b in bills
        if is_live(b) and b.bill_date == facts.date and b.receipt_id != facts.receipt_id
        and same_total(facts.total, b.total) and bill_of_supplier(facts, b, provider_ids)
    }
    matched_receipts = {
        r.receipt_id for r in receipts
        if r.receipt_id != facts.receipt_id and (r.status not in NOT_BILLING or r.may_bill)
        and r.date == facts.date and same_total(facts.total, r.total)
        and _same_receipt_supplier(facts, r) and r.bill_id not in matched_bills
    }
    return sorted(likely_flag(i) for i in matched_bills | matched_receipts)


def _same_receipt_supplier(facts: Facts, other: OtherReceipt) -> bool:
    if facts.tax_id is not None and other.tax_id is not None:
        return facts.tax_id == other.tax_id
    return bool(facts.name_key) and facts.name_key == other.name_key
