"""Bills: learn the recent bills Alegra has, for the duplicate check (`flow/duplicates.py`).

The backfill's last phase stores the bills dated from `BILL_BACKFILL_DAYS` ago; after that, bill
webhooks keep the cache current while they arrive. The `bills` job covers what they miss (a
subscription Alegra deleted after failed deliveries, this service down, a delivery lost): every
`BILLS_REFRESH_S`, and at once after subscription health re-created a subscription, it pages
through the same window again and stores each bill (source `refresh`; newer-wins; a bill keeps
the receipt it came from). It adds and updates, never deletes: a bill deleted in Alegra while no
webhook came stays in the cache, so a later receipt with its NCF is settled `duplicate` with that
bill's id as its evidence, for an operator to check — a bill missed would instead be billed twice.
Its checkpoint `{"start", "date_from"}` lets an interrupted run resume where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.alegra import resources
from sync.alegra.budget import Priority
from sync.alegra.payloads import contact_tax_id
from sync.jobs import schedule
from sync.jobs.paged import store_pages
from sync.jobs.prefetch import fetcher
from sync.jobs.runner import JobResult, JobRun
from sync.store import jobs as job_store
from sync.store.bills import KnownBill, bill_from_alegra, get_bill
from sync.store.contacts import get_cached_contact

SOURCE = "refresh"


def bills_date_from(days: int, today: datetime | None = None) -> str:
    """The first date of the bills window, `days` before today (UTC)."""
    return ((today or datetime.now(UTC)) - timedelta(days=days)).date().isoformat()


async def store_bills(
    job: JobRun,
    *,
    start: int,
    date_from: str,
    source: str,
    checkpoint_at: Callable[[int], dict[str, Any]],
    detail: dict[str, Any],
) -> bool:
    """Page through the bills dated from `date_from`, from offset `start`, storing each batch
    with `checkpoint_at(next offset)`. False when stopped between pages."""
    fetch = fetcher(lambda offset: resources.iter_bills(
        job.alegra, start=offset, date_from=date_from, priority=Priority.BACKGROUND))

    async def save(rows: list[dict[str, Any]], following: int, confirmed_at: str) -> None:
        known = [await known_bill(job, row) for row in rows if row.get("id") not in (None, "")]
        await job_store.save_bills_page(
            job.db, job.name, known, source=source, confirmed_at=confirmed_at,
            checkpoint=checkpoint_at(following),
        )

    return await store_pages(job, "bills", fetch, start=start, save=save, detail=detail)


async def known_bill(job: JobRun, raw: dict[str, Any]) -> KnownBill:
    """A bill with its provider's tax id (from the bill, else the cached contact), keeping the
    receipt a bill this service created came from."""
    provider = raw["provider"] if isinstance(raw.get("provider"), dict) else {}
    tax_id = contact_tax_id(provider)
    if tax_id is None and provider.get("id") is not None:
        cached = await get_cached_contact(job.db, str(provider["id"]))
        tax_id = cached["tax_id"] if cached is not None else None
    known = await get_bill(job.db, str(raw["id"]))
    receipt_id = known.receipt_id if known is not None else None
    return bill_from_alegra(raw, provider_tax_id=tax_id, receipt_id=receipt_id)


async def run(job: JobRun) -> JobResult:
    """The `bills` job: one pass over the window, resumed from its checkpoint if interrupted."""
    state = await job_store.job_state(job.db, job.name)
    checkpoint = (state or {}).get("checkpoint") or {
        "start": 0, "date_from": bills_date_from(job.settings.bill_backfill_days)}
    date_from = str(checkpoint["date_from"])
    detail: dict[str, Any] = {"resumed_from": dict(checkpoint)}
    done = await store_bills(
        job, start=int(checkpoint["start"]), date_from=date_from, source=SOURCE, detail=detail,
        checkpoint_at=lambda following: {"start": following, "date_from": date_from},
    )
    if not done:
        return JobResult(schedule.INCOMPLETE, detail, error="stopped", interrupted=True)
    await job_store.save_checkpoint(job.db, job.name, None)  # the next pass starts afresh
    return JobResult(schedule.SUCCESS, detail)
