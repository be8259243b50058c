"""Backfill: fill a new database from Alegra: chart of accounts, taxes, contacts, recent bills.

Phases run in that order, each resuming from the checkpoint `{"phase", "start", ...}` of the
`backfill` job. Paged phases request a few pages ahead (`prefetch.py`) and store each page (30
rows), in order, in one transaction with the checkpoint that follows it, so a crash or kill -9
resumes after the last stored page; a shutdown finishes the page in flight, stores it and
returns. Every row is written with source `backfill`. Contacts deleted in Alegra while a
backfill pages through them can shift a row past the offset; the reconciliation (and webhooks)
catch those.
"""

from __future__ import annotations

import math
from typing import Any

from sync import doctor_reading
from sync.alegra import resources
from sync.alegra.budget import Priority
from sync.alegra.errors import AlegraError
from sync.alegra.pages import MAX_PAGE_SIZE
from sync.alegra.records import contact_from_alegra
from sync.doctor import Verdict
from sync.jobs import accounts, bills, schedule
from sync.jobs.paged import store_pages
from sync.jobs.prefetch import fetcher
from sync.jobs.runner import JobResult, JobRun
from sync.states import JobOutcome
from sync.store import jobs as job_store
from sync.store.db import Database

SOURCE = "backfill"
# The chart and the taxes first: two requests, and a receipt that arrives during a long contacts
# backfill then finds them cached. Bills last: their suppliers' tax ids come from the contacts.
PHASES = ("accounts", "taxes", "contacts", "bills", "done")


def eta_s(
    done: int, total: int | None, *, limit: int, window_s: float, per_request: int = MAX_PAGE_SIZE
) -> float | None:
    """Seconds left at full budget: requests remaining (`per_request` rows each) ÷ (limit per
    window); None without a total."""
    if total is None:
        return None
    pages = math.ceil(max(0, total - done) / per_request)
    return pages * window_s / max(1, limit)


async def _load(job: JobRun) -> dict[str, Any]:
    state = await job_store.job_state(job.db, job.name)
    checkpoint = state.checkpoint if state else None
    return checkpoint or {"phase": PHASES[0], "start": 0}


async def _advance(job: JobRun, phase: str) -> dict[str, Any]:
    """Store the start of the next phase (the bills window is fixed here, once)."""
    checkpoint: dict[str, Any] = {"phase": phase, "start": 0}
    if phase == "bills":
        checkpoint["date_from"] = bills.bills_date_from(job.settings.bill_backfill_days)
    await job_store.save_checkpoint(job.db, job.name, checkpoint)
    return checkpoint


async def _contacts(job: JobRun, checkpoint: dict[str, Any], detail: dict[str, Any]) -> bool:
    """Page through contacts from the checkpoint. Returns False when stopped between pages."""
    fetch = fetcher(lambda offset: resources.iter_contacts(
        job.alegra, start=offset, priority=Priority.BACKGROUND))

    async def save(rows: list[dict[str, Any]], following: int, confirmed_at: str) -> None:
        await job_store.save_contacts_page(
            job.db, job.name, job.convert(rows, contact_from_alegra), source=SOURCE,
            confirmed_at=confirmed_at, checkpoint={"phase": "contacts", "start": following},
        )

    return await store_pages(
        job, "contacts", fetch, start=int(checkpoint["start"]), save=save, detail=detail
    )


async def _bills(job: JobRun, checkpoint: dict[str, Any], detail: dict[str, Any]) -> bool:
    """Page through bills dated from `bill_backfill_days` ago (window fixed at phase start)."""
    date_from = str(checkpoint["date_from"])
    return await bills.store_bills(
        job, start=int(checkpoint["start"]), date_from=date_from, source=SOURCE, detail=detail,
        checkpoint_at=lambda following: {
            "phase": "bills", "start": following, "date_from": date_from},
    )


async def reset(db: Database) -> None:
    """Forget the checkpoint: the next run starts a full backfill from the first contact."""
    await job_store.save_checkpoint(db, schedule.BACKFILL, None)


async def run(job: JobRun) -> JobResult:
    """The `backfill` job, from its checkpoint to the end, or to a shutdown between pages."""
    checkpoint = await _load(job)
    detail: dict[str, Any] = {"resumed_from": dict(checkpoint)}
    for phase in PHASES[PHASES.index(checkpoint["phase"]):]:
        if phase == "done":
            detail["doctor"] = await run_doctor(job)
            return JobResult(JobOutcome.SUCCESS, detail)
        if job.stopping:
            return JobResult(JobOutcome.INCOMPLETE, detail, error="stopped", interrupted=True)
        job.progress(phase, int(checkpoint.get("start", 0)))  # the label changes as it starts
        if not await _run_phase(job, phase, checkpoint, detail):
            return JobResult(JobOutcome.INCOMPLETE, detail, error="stopped", interrupted=True)
        checkpoint = await _advance(job, PHASES[PHASES.index(phase) + 1])
    return JobResult(JobOutcome.SUCCESS, detail)


async def run_doctor(job: JobRun) -> dict[str, Any]:
    """`alegra-sync doctor` on the company just backfilled (the worker's, which knows its
    account): its findings stored, what they show learned. Never fails the backfill: an error
    is logged and kept in the job's detail."""
    account = job.ctx.account
    if account is None:
        return {"ran": False}
    try:
        findings, learned = await doctor_reading.examine_and_store(
            job.db, account, job.ctx.budget, ran_by=SOURCE, stopping=job.ctx.stopping)
    except (AlegraError, RuntimeError) as exc:
        job.log.warning("doctor.failed", error=str(exc))
        return {"ran": False, "error": str(exc)}
    contradicted = [str(f.check) for f in findings if f.verdict == Verdict.CONTRADICTED]
    job.log.info("doctor.done", contradicted=contradicted,
                 learned={s.setting: s.value for s in learned})
    return {"ran": True, "contradicted": contradicted, "learned": [s.setting for s in learned]}


async def _run_phase(
    job: JobRun, phase: str, checkpoint: dict[str, Any], detail: dict[str, Any]
) -> bool:
    """Run one phase from `checkpoint`; False when stopped between pages."""
    if phase == "contacts":
        return await _contacts(job, checkpoint, detail)
    if phase == "accounts":
        detail |= await accounts.refresh_accounts(job, source=SOURCE)
    elif phase == "taxes":
        detail |= await accounts.refresh_taxes(job, source=SOURCE)
    elif phase == "bills":
        return await _bills(job, checkpoint, detail)
    return True
