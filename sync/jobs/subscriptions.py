"""Subscription health: Alegra deletes a subscription after 10 failed deliveries, silently.

The job runs `sync.subscriptions.ensure_subscriptions` (which re-creates what is missing and
counts each re-creation in `subscriptions.recreated_count`), logs `subscriptions.recreated` for
each, and then asks for a reconciliation and a bills refresh: Alegra has no replay, so the changes
made while the subscription was gone only reach the cache by reading them again.

It runs per company (`ctx.company`): that company's URL (its own token), its subscription rows,
its reconciliation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.context import WorkerContext
from sync.jobs import schedule
from sync.jobs.runner import JobResult, JobRun
from sync.states import JobOutcome
from sync.store import jobs as job_store
from sync.store.db import Database
from sync.store.subscriptions import load_states
from sync.subscriptions import ensure_subscriptions


def registered(states: Mapping[str, Any]) -> bool | None:
    """True when any subscription is present or was lost (pure); False when every one was
    removed on purpose; None when none was ever registered."""
    if not states:
        return None
    return any(s["present"] or s["missing_since"] for s in states.values())


def company_db(ctx: WorkerContext) -> Database:
    """The store scoped to the context's company (the worker hands each company's lanes a
    handle scoped already; this makes sure)."""
    return ctx.db if ctx.db.company == ctx.company else ctx.db.for_company(ctx.company)


async def enabled(ctx: WorkerContext) -> bool:
    """Whether the scheduler runs this job (see `schedule.subscriptions_enabled`)."""
    states = await load_states(company_db(ctx))
    return schedule.subscriptions_enabled(ctx.settings.public_url, registered=registered(states))


async def run(job: JobRun) -> JobResult:
    """The `subscriptions` job: ensure every subscription exists; reconcile after a loss."""
    db = company_db(job.ctx)
    report = await ensure_subscriptions(job.alegra, db, job.settings)
    for event in report.recreated:
        job.log.warning("subscriptions.recreated", subject=event)
    if report.recreated:  # what the lost subscription missed: contacts, and bills
        await job_store.request_run(db, schedule.RECONCILE)
        await job_store.request_run(db, schedule.BILLS)
    detail = {
        "created": len(report.created), "recreated": report.recreated,
        "kept": len(report.kept), "removed_stale": len(report.deleted),
    }
    if not report.ok:
        failures = "; ".join(f"{event}: {reason}" for event, reason in report.failed.items())
        return JobResult(JobOutcome.FAILED, detail, error=failures[:500])
    return JobResult(JobOutcome.SUCCESS, detail)
