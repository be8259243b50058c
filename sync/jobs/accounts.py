"""Chart-of-accounts and taxes poll: Alegra sends no webhooks for either, so they are fetched.

Each is one complete listing (the resources layer follows pages if Alegra pages it), upserted,
and rows missing from that complete listing are marked deleted. A listing cut short raises
before anything is deleted. Accounts the bill flow creates are already written through.
"""

from __future__ import annotations

from sync.alegra import resources
from sync.alegra.budget import Priority
from sync.alegra.records import flatten_accounts, tax_from_alegra
from sync.jobs.runner import JobResult, JobRun
from sync.states import JobOutcome
from sync.store.accounts import mark_missing_accounts_deleted, upsert_accounts
from sync.store.db import utcnow
from sync.store.taxes import mark_missing_taxes_deleted, upsert_taxes

SOURCE = "poll"


async def refresh_accounts(job: JobRun, *, source: str) -> dict[str, int]:
    """Fetch the whole chart, upsert it, mark accounts gone from it deleted. Raises AlegraError."""
    scan_started_at = utcnow()
    nodes = await resources.list_categories(job.alegra, priority=Priority.BACKGROUND)
    confirmed_at = utcnow()
    records = flatten_accounts(nodes)
    await upsert_accounts(job.db, records, source=source, confirmed_at=confirmed_at)
    # A chart is never empty: an empty answer is a glitch, not every account deleted.
    gone = (
        await mark_missing_accounts_deleted(
            job.db, {r.alegra_id for r in records}, source=source, scan_started_at=scan_started_at
        )
        if records
        else []
    )
    await job.page_done("accounts", len(records), len(records), deleted=len(gone))
    return {"accounts": len(records), "accounts_deleted": len(gone)}


async def refresh_taxes(job: JobRun, *, source: str) -> dict[str, int]:
    """Fetch every tax, upsert them, mark taxes gone from the list deleted. Raises AlegraError."""
    scan_started_at = utcnow()
    rows = await resources.list_taxes(job.alegra, priority=Priority.BACKGROUND)
    confirmed_at = utcnow()
    records = [tax_from_alegra(row) for row in rows if row.get("id") not in (None, "")]
    await upsert_taxes(job.db, records, source=source, confirmed_at=confirmed_at)
    gone = (
        await mark_missing_taxes_deleted(
            job.db, {r.alegra_id for r in records}, source=source, scan_started_at=scan_started_at
        )
        if records
        else []
    )
    await job.page_done("taxes", len(records), len(records), deleted=len(gone))
    return {"taxes": len(records), "taxes_deleted": len(gone)}


async def run(job: JobRun) -> JobResult:
    """The `accounts` job: refresh the chart of accounts, then the taxes."""
    detail = await refresh_accounts(job, source=SOURCE)
    detail |= await refresh_taxes(job, source=SOURCE)
    return JobResult(JobOutcome.SUCCESS, detail)
