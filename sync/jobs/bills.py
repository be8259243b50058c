"""Bills: learn the recent bills Alegra has, for the duplicate check (`flow/duplicates.py`).
Every `BILLS_REFRESH_S`, and after a subscription was re-created, the last `BILL_BACKFILL_DAYS`
are read again; a cached bill the list no longer shows is asked for by id, and only a 404
deletes it. Design: docs/sync.md ("Bills refresh").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.alegra import resources
from sync.alegra.budget import Priority
from sync.alegra.records import bill_as_shown
from sync.events.apply import confirm_bill
from sync.jobs.paged import store_pages
from sync.jobs.prefetch import fetcher
from sync.jobs.runner import JobResult, JobRun
from sync.states import JobOutcome
from sync.store import jobs as job_store
from sync.store.bills import live_bill_ids, with_provider_tax_id

SOURCE = "refresh"
MAX_CONFIRMATIONS = 200  # by-id checks of unlisted bills per pass (a GET each, BACKGROUND)


def bills_date_from(days: int, today: datetime | None = None) -> str:
    """The first date of the bills window, `days` before today (UTC)."""
    return ((today or datetime.now(UTC)) - timedelta(days=days)).date().isoformat()


async def store_bills(
    job: JobRun,
    *,
    start: int,
    date_from: str,
    source: str,
    checkpoint_at: Callable[[int], dict[str, Any] | None],
    detail: dict[str, Any],
    seen: set[str] | None = None,
) -> bool:
    """Page through the bills dated from `date_from`, from offset `start`, storing each batch
    with `checkpoint_at(next offset)` and adding the ids to `seen`. False when stopped between
    pages."""
    fetch = fetcher(lambda offset: resources.iter_bills(
        job.alegra, start=offset, date_from=date_from, priority=Priority.BACKGROUND))

    async def save(rows: list[dict[str, Any]], following: int, confirmed_at: str) -> None:
        known = [await with_provider_tax_id(job.db, bill_as_shown(row))
                 for row in rows if row.get("id") not in (None, "")]
        if seen is not None:
            seen.update(bill.alegra_id for bill in known)
        await job_store.save_bills_page(
            job.db, job.name, known, source=source, confirmed_at=confirmed_at,
            checkpoint=checkpoint_at(following),
        )

    return await store_pages(job, "bills", fetch, start=start, save=save, detail=detail)


async def run(job: JobRun) -> JobResult:
    """The `bills` job: one pass over the window, then the by-id checks of unlisted bills."""
    date_from = bills_date_from(job.settings.bill_backfill_days)
    detail: dict[str, Any] = {"date_from": date_from}
    seen: set[str] = set()
    listed = await store_bills(
        job, start=0, date_from=date_from, source=SOURCE, detail=detail, seen=seen,
        checkpoint_at=lambda _: None,
    )
    if not listed or not await _confirm_unlisted(job, date_from, seen, detail):
        return JobResult(JobOutcome.INCOMPLETE, detail, error="stopped", interrupted=True)
    return JobResult(JobOutcome.SUCCESS, detail)


async def _confirm_unlisted(
    job: JobRun, date_from: str, seen: set[str], detail: dict[str, Any]
) -> bool:
    """Ask Alegra for each live cached bill of the window the list did not show. False when
    stopped between requests."""
    unlisted = [i for i in await live_bill_ids(job.db, date_from) if i not in seen]
    detail["unlisted"], detail["gone"] = len(unlisted), 0
    for bill_id in unlisted[:MAX_CONFIRMATIONS]:
        if job.stopping:
            return False
        outcome = await confirm_bill(
            job.alegra, job.db, bill_id, priority=Priority.BACKGROUND, source=SOURCE)
        detail["gone"] += outcome == "deleted"
    return True
