"""One run of a job, the same from the worker's scheduler and from the CLI.

`run_job` takes the job (one process at a time: the worker, or `alegra-sync backfill|reconcile`),
records the run, maps what the job raised to an outcome, schedules the next run and logs
`job.started` / `job.finished`. Outcomes: success; incomplete (cut short by 429s, 5xx, lost
connections after the client's own retries, or by shutdown: the checkpoint is kept); failed
(Alegra refused, e.g. wrong credentials, or a bug).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sync.alegra.client import AlegraClient
from sync.alegra.errors import AlegraError, Retryable, Stopping
from sync.context import WorkerContext
from sync.flow.lease import host_id
from sync.jobs import schedule
from sync.logs import get_logger
from sync.settings import Settings
from sync.states import JobOutcome
from sync.store import jobs as job_store
from sync.store.db import Database, DatabaseUnavailable

T = TypeVar("T")
# How long a job stays claimed without a sign of life from its holder (renewed every page).
LEASE_S = 600.0
_RENEW_EVERY_S = 60.0
# Slots a scan leaves free in a window when it stops pacing to finish its last pages at once.
_TAIL_HEADROOM = 10


class JobBusy(Exception):
    """Another live process is running this job; `holder` is its 'host:pid'."""

    def __init__(self, name: str, holder: str) -> None:
        super().__init__(f"job {name} is already running in {holder}")
        self.holder = holder


@dataclass(frozen=True)
class Progress:
    """Where a job stands, for a progress bar: rows stored in `phase` out of `total`."""

    phase: str
    done: int
    total: int | None


@dataclass
class JobResult:
    """What a job's code returns; exceptions become `incomplete` or `failed` in `run_job`."""

    outcome: JobOutcome
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    interrupted: bool = False  # stopped by shutdown: due again at once, resuming its checkpoint


@dataclass
class JobRun:
    """What a job's code gets: the worker's context, its run, its logger, a progress hook."""

    ctx: WorkerContext
    name: str
    run_id: int
    owner: str
    log: Any
    on_progress: Callable[[Progress], None] | None = None
    _renewed: float = field(default_factory=time.monotonic)

    @property
    def db(self) -> Database:
        return self.ctx.db

    @property
    def alegra(self) -> AlegraClient:
        return self.ctx.alegra

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def stopping(self) -> bool:
        return self.ctx.stopping.is_set()

    def pace_s(self, pages_left: int | None) -> float:
        """Seconds between a scan's requests: the sustained rate the limit allows (as Alegra's
        headers last reported it), or none once the pages left fit in what remains of the
        current window with room to spare for receipts."""
        budget = self.ctx.budget.snapshot()
        if pages_left is not None and pages_left + _TAIL_HEADROOM <= int(budget["remaining"]):
            return 0.0
        return self.ctx.budget.window_s / max(1, int(budget["limit"]))

    def convert(
        self, rows: Iterable[dict[str, Any]], record: Callable[[dict[str, Any]], T]
    ) -> list[T]:
        """Alegra rows → records; a row Alegra sent without an id is logged and skipped."""
        out = []
        for row in rows:
            try:
                out.append(record(row))
            except ValueError as exc:
                self.log.warning("job.row_skipped", reason=str(exc))
        return out

    async def next_unless_stopping(self, stream: AsyncIterator[T]) -> T | None:
        """The stream's next item; None when it ends, or as soon as the worker is stopping (the
        request being waited for, maybe a whole rate window away, is then abandoned)."""
        step = asyncio.ensure_future(anext(stream, None))
        stop = asyncio.ensure_future(self.ctx.stopping.wait())
        try:
            await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if step.done():
            return step.result()
        step.cancel()
        await asyncio.gather(step, return_exceptions=True)
        return None

    def progress(self, phase: str, done: int, total: int | None = None) -> None:
        """Feed the progress hook, if any (`total` None: not known yet, e.g. as a phase starts)."""
        if self.on_progress is not None:
            self.on_progress(Progress(phase, done, total))

    async def page_done(self, phase: str, done: int, total: int | None, **data: Any) -> None:
        """Report one stored page: log `job.page`, feed the progress hook, keep the claim alive."""
        self.log.info("job.page", phase=phase, done=done, total=total, **data)
        self.progress(phase, done, total)
        if time.monotonic() - self._renewed >= _RENEW_EVERY_S:
            self._renewed = time.monotonic()
            holder = await job_store.claim_job(
                self.db, self.name, owner=self.owner, lease_until=_lease_until(),
                holder_gone=holder_gone,
            )
            if holder is not None:  # our lease ran out and another process took the job over
                self.log.warning("job.taken_over", holder=holder)


JobFn = Callable[[JobRun], Awaitable[JobResult]]


def owner_id() -> str:
    """This process, as a job holder: 'host:pid' (`host_id`: with its PID namespace)."""
    return f"{host_id()}:{os.getpid()}"


def holder_gone(holder: str) -> bool:
    """True when `holder` is a process on this host that no longer exists (e.g. killed -9)."""
    host, _, pid = holder.rpartition(":")
    if host != host_id() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def _lease_until() -> str:
    return _iso(datetime.now(UTC) + timedelta(seconds=LEASE_S))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def describe_error(exc: BaseException) -> str:
    """A one-line error for the jobs table and logs (Alegra errors carry no credentials)."""
    if isinstance(exc, AlegraError):
        status = f" {exc.status}" if exc.status is not None else ""
        return f"{type(exc).__name__}{status}: {exc.message}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


async def run_job(
    ctx: WorkerContext,
    name: str,
    fn: JobFn,
    *,
    on_progress: Callable[[Progress], None] | None = None,
) -> JobResult:
    """Run `fn` once as job `name`. Raises JobBusy when another live process holds the job."""
    owner = owner_id()
    holder = await job_store.claim_job(
        ctx.db, name, owner=owner, lease_until=_lease_until(), holder_gone=holder_gone
    )
    if holder is not None:
        raise JobBusy(name, holder)
    run_id = await job_store.start_run(ctx.db, name)
    log = get_logger(job=name, job_run_id=run_id)
    log.info("job.started")
    started = time.monotonic()
    job = JobRun(ctx, name, run_id, owner, log, on_progress)
    try:
        result = await _outcome_of(job, fn)
    except asyncio.CancelledError:
        result = JobResult(JobOutcome.INCOMPLETE, error="cancelled", interrupted=True)
        await _finish(job, result, time.monotonic() - started)
        raise
    await _finish(job, result, time.monotonic() - started)
    return result


async def hold_job(db: Database, settings: Settings, name: str, *, lease_s: float) -> str:
    """Take job `name` for this process for up to `lease_s`, without a run, while a command does
    the job's work beside the worker (`webhooks register|remove` and the `subscriptions` job):
    returns the owner to give to `job_store.release_job`. Raises JobBusy when another live
    process holds it. A job the worker has not made yet is made as the worker would make it
    (`schedule.first_run_at`: for `subscriptions`, due now)."""
    now = datetime.now(UTC)
    await job_store.ensure_jobs(db, {name: _iso(schedule.first_run_at(settings, name, now))})
    owner = owner_id()
    holder = await job_store.claim_job(
        db, name, owner=owner, lease_until=_iso(now + timedelta(seconds=lease_s)),
        holder_gone=holder_gone,
    )
    if holder is not None:
        raise JobBusy(name, holder)
    return owner


async def _outcome_of(job: JobRun, fn: JobFn) -> JobResult:
    try:
        return await fn(job)
    except Stopping:  # a request would have waited for the rate budget: resume at next start
        return JobResult(JobOutcome.INCOMPLETE, error="stopped", interrupted=True)
    except (Retryable, DatabaseUnavailable) as exc:  # the store gone away: resumed, not failed
        return JobResult(JobOutcome.INCOMPLETE, error=describe_error(exc))
    except AlegraError as exc:
        return JobResult(JobOutcome.FAILED, error=describe_error(exc))
    except Exception as exc:
        job.log.exception("job.crashed")
        return JobResult(JobOutcome.FAILED, error=describe_error(exc))


async def _finish(job: JobRun, result: JobResult, duration_s: float) -> None:
    finished = datetime.now(UTC)
    next_run = schedule.next_run_after(
        job.settings, job.name, result.outcome, finished, interrupted=result.interrupted
    )
    await job_store.finish_run(
        job.db, job.run_id, job.name, owner=job.owner, outcome=result.outcome,
        duration_s=round(duration_s, 3), error=result.error,
        next_run_at=_iso(next_run) if next_run else None, detail=result.detail,
    )
    log = job.log.warning if result.outcome != JobOutcome.SUCCESS else job.log.info
    log("job.finished", outcome=result.outcome, duration_s=round(duration_s, 3),
        error=result.error, interrupted=result.interrupted, **result.detail)
