"""The worker's jobs lane: starts each scheduled job when the `jobs` table says it is due.

Each job runs as its own task (at most one of each), so a long backfill does not hold up the
subscription check; they share the worker's one rate budget at BACKGROUND priority, behind
receipts and webhook events. On SIGTERM the lane stops starting jobs and waits for the running
ones, which store the page in flight and return.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sync.context import WorkerContext
from sync.jobs import accounts, backfill, bills, reconcile, retention, schedule
from sync.jobs import subscriptions as subscription_health
from sync.jobs.runner import JobBusy, JobFn, JobResult, run_job
from sync.logs import get_logger
from sync.states import JobOutcome
from sync.store import jobs as job_store

JOBS: dict[str, JobFn] = {
    schedule.BACKFILL: backfill.run,
    schedule.ACCOUNTS: accounts.run,
    schedule.RECONCILE: reconcile.run,
    schedule.BILLS: bills.run,
    schedule.SUBSCRIPTIONS: subscription_health.run,
    schedule.RETENTION: retention.run,
}
TICK_S = 1.0  # longest sleep between looks at the table (a run requested meanwhile starts then)
MIN_TICK_S = 0.05


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="microseconds") if moment else None


async def prepare(ctx: WorkerContext) -> None:
    """Create the job rows of a new database and pull in runs a shortened interval makes due.
    A job new to a database backfilled long ago (an upgrade) is due at once: its first run is
    not covered by a backfill that has just fetched the same data."""
    now = datetime.now(UTC)
    created = await job_store.ensure_jobs(
        ctx.db, {n: _iso(schedule.first_run_at(ctx.settings, n, now)) for n in schedule.JOB_NAMES}
    )
    backfill = await job_store.job_state(ctx.db, schedule.BACKFILL)
    if backfill is not None and backfill.last_outcome == JobOutcome.SUCCESS:
        for name in created:
            await job_store.request_run(ctx.db, name)
    for state in await job_store.job_states(ctx.db):
        at = schedule.clamped(ctx.settings, state, now)
        if at != state.next_run_at:
            await job_store.set_next_run(ctx.db, state.name, _iso(at))


async def _run_one(ctx: WorkerContext, name: str) -> JobResult | None:
    """Run one job; when another process holds it, try again after the retry delay."""
    try:
        return await run_job(ctx, name, JOBS[name])
    except JobBusy as exc:
        get_logger(job=name).info("job.busy", holder=exc.holder)
        later = datetime.now(UTC).timestamp() + schedule.retry_s(ctx.settings, name)
        await job_store.set_next_run(ctx.db, name, _iso(datetime.fromtimestamp(later, UTC)))
        return None


async def _tick(ctx: WorkerContext, running: dict[str, asyncio.Task[JobResult | None]]) -> float:
    """Start what is due; returns how long to sleep before looking again."""
    for name in [n for n, task in running.items() if task.done()]:
        task = running.pop(name)
        if not task.cancelled() and task.exception() is not None:
            get_logger(job=name).error("job.crashed", error=repr(task.exception()))
    states = await job_store.job_states(ctx.db)
    enabled = await subscription_health.enabled(ctx)
    now = datetime.now(UTC)
    for name in schedule.due_jobs(states, now, running=set(running), subscriptions_enabled=enabled):
        running[name] = asyncio.create_task(_run_one(ctx, name), name=f"job:{name}")
    waiting = schedule.eligible(states, running=set(running), subscriptions_enabled=enabled)
    return max(MIN_TICK_S, schedule.seconds_until_next(waiting, now, TICK_S))


async def run(ctx: WorkerContext) -> None:
    """The jobs lane: returns when `ctx.stopping` is set and the running jobs have returned."""
    await prepare(ctx)
    running: dict[str, asyncio.Task[JobResult | None]] = {}
    try:
        while not ctx.stopping.is_set():
            if await ctx.sleep(await _tick(ctx, running)):
                break
    except asyncio.CancelledError:
        for task in running.values():
            task.cancel()
        raise
    finally:
        await asyncio.gather(*running.values(), return_exceptions=True)
