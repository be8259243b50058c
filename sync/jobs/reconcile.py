"""Reconciliation: compare every cached contact with Alegra's, repair the cache, report drift.

Alegra's contacts are read in pages of 30, a few ahead (`prefetch.py`); what is missing from the
cache or differs from it is written at once (source `reconcile`, newer-wins, so a webhook
confirmed meanwhile is kept). Deletions wait for a COMPLETE scan, and even then each cached
contact the scan did not list is asked for by id first: an offset list shifts when a contact is
deleted mid-scan, so "not listed" alone is no proof. A scan cut short (429s, 5xx, lost
connections after the client's retries, or a shutdown) is `incomplete` and deletes nothing.
Every run stores a drift report.
"""

from __future__ import annotations

from contextlib import aclosing

from sync.alegra import resources
from sync.alegra.budget import Priority
from sync.alegra.errors import Retryable
from sync.alegra.records import contact_from_alegra
from sync.jobs.drift import DriftScan
from sync.jobs.prefetch import batches_ahead, fetcher
from sync.jobs.runner import JobResult, JobRun, describe_error
from sync.states import JobOutcome
from sync.store import jobs as job_store
from sync.store.contacts import live_contacts, mark_contact_deleted, upsert_contacts
from sync.store.db import utcnow

SOURCE = "reconcile"
# Progress phases: the listing, then one request per cached contact the listing did not show.
SCAN_PHASE, CONFIRM_PHASE = "contacts", "confirm unlisted"


async def _scan(job: JobRun, scan: DriftScan) -> bool:
    """Read every page of Alegra's contacts into `scan`, repairing as it goes.

    Returns False when stopped between pages. Raises Retryable when Alegra cut it short.
    """
    fetch = fetcher(lambda offset: resources.iter_contacts(
        job.alegra, start=offset, priority=Priority.BACKGROUND))
    async with aclosing(batches_ahead(fetch, 0, pace=job.pace_s)) as batches:
        while (batch := await job.next_unless_stopping(batches)) is not None:
            confirmed_at = fetch.confirmed_at(batch)
            rows = (row for page in batch for row in page.rows)
            repairs = scan.add_page(job.convert(rows, contact_from_alegra))
            if repairs:
                await upsert_contacts(job.db, repairs, source=SOURCE, confirmed_at=confirmed_at)
            await job.page_done(SCAN_PHASE, len(scan.seen), batch[-1].total,
                                repaired=len(repairs))
            if job.stopping:
                return False
    return not job.stopping


async def _confirm_unseen(job: JobRun, scan: DriftScan) -> list[tuple[str, str]] | None:
    """Ask Alegra for each cached contact the scan did not list.

    Returns the (id, answered_at) of those that are gone, or None when stopped. One that still
    exists was skipped by a shifting offset: it is compared and repaired like a listed one.
    """
    gone: list[tuple[str, str]] = []
    unseen = scan.unseen()
    for done, alegra_id in enumerate(unseen):
        job.progress(CONFIRM_PHASE, done, len(unseen))
        if job.stopping:
            return None
        raw = await resources.get_contact(job.alegra, alegra_id, priority=Priority.BACKGROUND)
        if raw is None:  # 404: Alegra has no such contact (deleted)
            gone.append((alegra_id, utcnow()))
            continue
        confirmed_at = utcnow()
        repairs = scan.add_page([contact_from_alegra(raw)])
        await upsert_contacts(job.db, repairs, source=SOURCE, confirmed_at=confirmed_at)
    if unseen:
        job.progress(CONFIRM_PHASE, len(unseen), len(unseen))
    return gone


async def _delete(job: JobRun, scan: DriftScan, gone: list[tuple[str, str]]) -> None:
    """Mark the confirmed-gone contacts deleted (unless the cache learned something newer)."""
    for alegra_id, answered_at in gone:
        if await mark_contact_deleted(job.db, alegra_id, source=SOURCE, confirmed_at=answered_at):
            scan.extra.append(alegra_id)


async def _reconcile(job: JobRun, scan: DriftScan) -> bool:
    """Scan, confirm, delete. Returns True when complete; False when stopped."""
    if not await _scan(job, scan):
        return False
    gone = await _confirm_unseen(job, scan)
    if gone is None:
        return False
    await _delete(job, scan, gone)
    return True


async def run(job: JobRun) -> JobResult:
    """The `reconcile` job: one full comparison, its repairs, and its drift report."""
    cached = {record.alegra_id: record for record in await live_contacts(job.db)}
    scan = DriftScan(cached)
    error: str | None = None
    try:
        complete = await _reconcile(job, scan)
        interrupted = not complete
        error = None if complete else "stopped"
    except Retryable as exc:
        complete, interrupted, error = False, False, describe_error(exc)
    report = scan.report(complete=complete)
    report_id = await job_store.save_drift_report(job.db, job.run_id, report)
    counts = {k: report[k] for k in ("scanned", "missing", "extra", "different")}
    job.log.info("reconcile.drift", complete=complete, drift_report_id=report_id, **counts)
    outcome = JobOutcome.SUCCESS if complete else JobOutcome.INCOMPLETE
    return JobResult(outcome, {**counts, "drift_report_id": report_id}, error, interrupted)
