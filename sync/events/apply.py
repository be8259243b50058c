"""Inbox rows → Alegra's current version of the resource → the cache.

A delivery is only a hint: Alegra signs nothing, events carry no id or time of their own, and they
arrive duplicated and out of order. So an event never writes what it says; it makes the worker
fetch the resource by id (priority EVENT in the shared budget) and store Alegra's answer, newer-wins
by fetch time. Applying twice, or in any order, ends in the same cache: Alegra's.
Every pending delivery about one resource is settled by ONE fetch (`Group`).

Event names are strings dispatched through `HANDLERS`; an event not in it (items, invoices, or
one Alegra adds later) is recorded as skipped, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sync import metrics
from sync.alegra import resources
from sync.alegra.budget import Priority
from sync.alegra.client import AlegraClient
from sync.alegra.errors import AlegraError, Stopping
from sync.alegra.records import bill_as_shown, contact_from_alegra
from sync.backoff import Backoff
from sync.inbox_records import Group, PendingDelivery
from sync.logs import get_logger
from sync.states import InboxState
from sync.store import bill_status, inbox
from sync.store.bills import with_provider_tax_id
from sync.store.contacts import mark_contact_deleted, upsert_contacts
from sync.store.db import Database, utcnow

SOURCE = "webhook"

Confirm = Callable[[AlegraClient, Database, str], Awaitable[str]]


async def confirm_contact(alegra: AlegraClient, db: Database, contact_id: str) -> str:
    """Store the contact as Alegra has it now; gone from Alegra (404) → marked deleted."""
    raw = await resources.get_contact(alegra, contact_id, priority=Priority.EVENT)
    at = utcnow()
    if raw is None:
        await mark_contact_deleted(db, contact_id, source=SOURCE, confirmed_at=at)
        return "deleted"
    await upsert_contacts(db, [contact_from_alegra(raw)], source=SOURCE, confirmed_at=at)
    return "upserted"


async def confirm_bill(
    alegra: AlegraClient, db: Database, bill_id: str, *,
    priority: Priority = Priority.EVENT, source: str = SOURCE,
) -> str:
    """Store the bill as Alegra has it now (void frees its NCF); gone → marked deleted. The
    receipt that made it, if ours, is flagged. (Also the bills job's check of an unlisted bill,
    at BACKGROUND priority.)"""
    raw = await resources.get_bill(alegra, bill_id, priority=priority)
    at = utcnow()
    if raw is None:
        await bill_status.record_bill_gone(db, bill_id, confirmed_at=at, source=source)
        return "deleted"
    bill = await with_provider_tax_id(db, bill_as_shown(raw))
    await bill_status.record_confirmed_bill(db, bill, confirmed_at=at, source=source)
    return "void" if (bill.status or "").lower() == "void" else "upserted"


HANDLERS: dict[str, Confirm] = {
    "new-client": confirm_contact,
    "edit-client": confirm_contact,
    "delete-client": confirm_contact,
    "new-bill": confirm_bill,
    "edit-bill": confirm_bill,
    "delete-bill": confirm_bill,
}


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for a failed confirmation, then parking. The defaults ride out an Alegra outage of
    about an hour and a half before a row is parked (an operator can replay a parked row)."""

    max_attempts: int = 12
    base_s: float = 5.0
    cap_s: float = 1800.0

    def next_state(self, attempts_before: int, now: datetime) -> tuple[InboxState, str | None]:
        """(failed, when to try again) or (parked, None) once attempts are used up."""
        attempts = attempts_before + 1
        if attempts >= self.max_attempts:
            return InboxState.PARKED, None
        delay = Backoff(self.base_s, self.cap_s).delay(attempts)
        at = now + timedelta(seconds=delay)
        return InboxState.FAILED, at.isoformat(timespec="microseconds")


async def apply_group(
    alegra: AlegraClient, db: Database, group: Group, policy: RetryPolicy
) -> int:
    """Settle every row of the group: skipped, applied after one fetch, or failed/parked.
    Returns the number of Alegra fetches made (0 or 1). Raises `Stopping` (the rows untouched,
    no attempt counted) when the worker stops before the fetch could be sent."""
    handled = [r for r in group.rows if r.subject in HANDLERS]
    ignored = [r for r in group.rows if r.subject not in HANDLERS]
    if ignored:
        await _skip(db, ignored)
    if not handled:
        return 0
    subject = handled[0].subject  # parse ensured the subjects agree on the resource
    assert subject is not None  # it is one of HANDLERS
    confirm = HANDLERS[subject]
    try:
        outcome = await confirm(alegra, db, group.resource_id)
    except Stopping:
        raise
    except Exception as exc:
        await _fail(db, handled, group, exc, policy)
        return 1
    await inbox.mark_done(db, [r.id for r in handled], state=InboxState.APPLIED, note=None)
    metrics.count_settled(InboxState.APPLIED, len(handled), db.company)
    for row in handled:
        get_logger(inbox_id=row.id).info(
            "event.applied", subject=row.subject, resource=group.resource,
            resource_id=group.resource_id, outcome=outcome, coalesced=len(handled),
        )
    return 1


async def _skip(db: Database, rows: Sequence[PendingDelivery]) -> None:
    ids = [r.id for r in rows]
    await inbox.mark_done(db, ids, state=InboxState.SKIPPED, note="event not used")
    metrics.count_settled(InboxState.SKIPPED, len(rows), db.company)
    for row in rows:
        get_logger(inbox_id=row.id).info("event.skipped", subject=row.subject)


async def _fail(
    db: Database, rows: Sequence[PendingDelivery], group: Group, exc: Exception,
    policy: RetryPolicy,
) -> None:
    error = _evidence(exc)
    now = datetime.now(UTC)
    outcomes = [(r.id, *policy.next_state(r.attempts, now)) for r in rows]
    await inbox.mark_retry(db, outcomes, error=json.dumps(error))
    for inbox_id, state, next_at in outcomes:
        log = get_logger(inbox_id=inbox_id, resource=group.resource, resource_id=group.resource_id)
        if state == InboxState.PARKED:
            log.error("event.parked", error=error)
        else:
            log.warning("event.failed", error=error, next_attempt_at=next_at)
    if not isinstance(exc, AlegraError | ValueError):
        get_logger(resource=group.resource).error("event.unexpected_error", exc_info=exc)


def _evidence(exc: Exception) -> dict[str, object]:
    if isinstance(exc, AlegraError):
        return exc.as_record()
    return {"kind": type(exc).__name__, "message": str(exc)[:500]}
