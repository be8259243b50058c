"""Step `duplicate_check`: one bill per (supplier, NCF), decided from the cache before any
Alegra call of the receipt: end `duplicate`, wait for the receipt holding the NCF, or claim it
and run the steps. Receipts without an NCF are only flagged `likely_duplicate`.
Design: docs/receipts.md ("One bill per fiscal document").
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sync import metrics
from sync.alegra import resources
from sync.alegra.errors import Retryable
from sync.alegra.records import bill_from_alegra
from sync.duplicate_rules import (
    CHECK_STEP,
    LIKELY,
    NCF_HELD_BY_FAILED,
    NCF_IN_FLIGHT,
    Facts,
    Verdict,
    likely_duplicates,
    ncf_held_message,
    ncf_verdict,
)
from sync.flow.context import PRIORITY, FlowEnv
from sync.logs import get_logger
from sync.receipt_model import Receipt
from sync.receipt_records import StepRecord
from sync.states import ReceiptStatus, StepState
from sync.store import bill_index
from sync.store.contacts import find_contacts_by_name_key, find_supplier_by_tax_id

STEP = CHECK_STEP
SOURCE = "strict_check"  # the `source` of bills stored from the strict mode's look-up
_STARTED = frozenset({StepState.ATTEMPTING, StepState.DONE})


class Duplicate(Exception):
    """The receipt was settled as `duplicate` of `bill_id`; its flow stops here."""

    def __init__(self, bill_id: str) -> None:
        super().__init__(f"duplicate of bill {bill_id}")
        self.bill_id = bill_id


class NcfInFlight(Retryable):
    """Another receipt of ours (`holder`) claimed this supplier's NCF and may still bill it: try
    later. If the holder failed after sending its bill (outcome never learned), only a retry of
    the holder settles it; the error says so, and names the holder."""

    def __init__(self, holder: str, *, holder_failed: bool = False) -> None:
        code = NCF_HELD_BY_FAILED if holder_failed else NCF_IN_FLIGHT
        super().__init__(ncf_held_message(holder, holder_failed=holder_failed), code=code)
        self.holder = holder

    def as_record(self) -> dict[str, Any]:
        return {**super().as_record(), "holder": self.holder}


@asynccontextmanager
async def guard(
    env: FlowEnv, receipt: Receipt, receipt_id: str, owner: str, steps: Mapping[str, StepRecord]
) -> AsyncIterator[None]:
    """Check before the steps run, and keep the NCF's lock while they do. Raises Duplicate,
    NcfInFlight, or an AlegraError from the strict mode's look-up."""
    bill = steps.get("bill")
    if bill is not None and bill.state in _STARTED:  # the bill step resolves its own retries
        yield
        return
    facts = Facts.of(receipt_id, receipt)
    async with _lock(env, facts):
        await check(env, facts, owner)
        yield


def _lock(env: FlowEnv, facts: Facts) -> AbstractAsyncContextManager[Any]:
    key = facts.claim_key
    return contextlib.nullcontext() if key is None else env.locks.hold(f"ncf:{key}")


async def check(env: FlowEnv, facts: Facts, owner: str) -> None:
    """Raises Duplicate or NcfInFlight; otherwise the receipt may be billed (and is claimed)."""
    if env.settings.strict_duplicate_check:
        await ask_alegra(env, facts)
    if facts.ncf is None or facts.claim_key is None:
        await _flag_likely(env, facts)
        return
    verdict = await _decide(env, facts, owner, ncf=facts.ncf, claim_key=facts.claim_key)
    if verdict.outcome == "wait" and verdict.holder is not None:
        get_logger(receipt_id=facts.receipt_id).info(
            "receipt.ncf_in_flight", ncf=facts.ncf, holder=verdict.holder,
            holder_status=verdict.holder_status)
        failed = verdict.holder_status == ReceiptStatus.FAILED
        raise NcfInFlight(verdict.holder, holder_failed=failed)
    if verdict.outcome == "duplicate" and verdict.bill is not None:
        get_logger(receipt_id=facts.receipt_id).info(
            "receipt.duplicate", bill_id=verdict.bill.alegra_id, ncf=facts.ncf,
            known_from=verdict.bill.source,
        )
        raise Duplicate(verdict.bill.alegra_id)


async def _decide(
    env: FlowEnv, facts: Facts, owner: str, *, ncf: str, claim_key: str
) -> Verdict:
    """Look, decide and claim (or settle) in one transaction."""
    company = env.db.company
    async with env.db.transaction() as conn:
        ids = await bill_index.provider_ids(conn, facts.tax_id, facts.name_key, company=company)
        bills = await bill_index.bills_with_ncf(conn, ncf, company=company)
        holder = await bill_index.claim_holder(conn, claim_key, company=company)
        verdict = ncf_verdict(facts, bills, ids, holder)
        if verdict.outcome == "clear":
            await bill_index.take_claim(conn, claim_key, facts.receipt_id, company=company)
        elif verdict.outcome == "duplicate" and verdict.bill is not None:
            await bill_index.settle_duplicate(
                conn, facts.receipt_id, owner=owner, bill_id=verdict.bill.alegra_id,
                detail=_evidence(facts, verdict), company=company,
            )
    return verdict


def _evidence(facts: Facts, verdict: Verdict) -> dict[str, Any]:
    assert verdict.bill is not None
    return {
        "reason": "same_ncf", "ncf": facts.ncf, "bill_id": verdict.bill.alegra_id,
        "bill_status": verdict.bill.status, "known_from": verdict.bill.source,
    }


async def _flag_likely(env: FlowEnv, facts: Facts) -> None:
    """Flag the receipt for every known bill or receipt with its supplier, date and total."""
    company = env.db.company
    async with env.db.transaction() as conn:
        ids = await bill_index.provider_ids(conn, facts.tax_id, facts.name_key, company=company)
        bills = await bill_index.bills_on_date(conn, facts.date, company=company)
        others = await bill_index.receipts_on_date(
            conn, facts.date, besides=facts.receipt_id, company=company
        )
        added = await bill_index.add_flags(
            conn, facts.receipt_id, likely_duplicates(facts, bills, others, ids), company=company
        )
    if added:
        metrics.count_flag(LIKELY, env.db.company)
        get_logger(receipt_id=facts.receipt_id).warning(
            "receipt.likely_duplicate", matches=[flag.split(":", 1)[1] for flag in added]
        )


async def ask_alegra(env: FlowEnv, facts: Facts) -> None:
    """Strict mode: store the cached supplier's bills on the receipt's date as Alegra lists them
    now (one GET). Skipped when the supplier is not cached: it is then new, or found in Alegra
    by the supplier step, and only the cache (webhooks, backfill) can tell about its bills."""
    provider_id = await _cached_supplier_id(env, facts)
    if provider_id is None:
        get_logger(receipt_id=facts.receipt_id).info("receipt.strict_check_skipped",
                                                     reason="supplier_not_cached")
        return
    rows = await resources.find_bills(env.alegra, provider_id, facts.date, priority=PRIORITY)
    seen = [bill_from_alegra(row, provider_tax_id=facts.tax_id)
            for row in rows if row.get("id") not in (None, "")]
    await bill_index.record_looked_up_bills(env.db, seen, source=SOURCE)


async def _cached_supplier_id(env: FlowEnv, facts: Facts) -> str | None:
    if facts.tax_id is not None:
        found = await find_supplier_by_tax_id(env.db, facts.tax_id)
        return None if found is None else found.alegra_id
    named = await find_contacts_by_name_key(env.db, facts.name_key)
    return named[0].alegra_id if named else None
