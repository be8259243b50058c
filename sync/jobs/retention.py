"""The `retention` job: every hour, in short batches, deletes settled inbox rows and delivered
partner notifications after `INBOX_RETENTION_DAYS` and final receipts' files after
`ATTACHMENT_RETENTION_DAYS` (0: kept for ever); never a receipt, a step, a claim, a cached row
or a job run. No Alegra call.
Design: docs/sync.md ("Retention").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sync import metrics
from sync.jobs.runner import JobResult, JobRun
from sync.notifications.queue import prune_delivered_batch
from sync.settings import Settings
from sync.states import JobOutcome
from sync.store import retention
from sync.store.db import Database

INBOX_BATCH = 500
ATTACHMENT_BATCH = 50
ATTACHMENT_BATCH_BYTES = 16 << 20  # files freed per transaction (freeing reads their pages)


@dataclass(frozen=True)
class Policy:
    """How many days each kind is kept once it is no longer needed (0: for ever)."""

    inbox_days: int
    attachment_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.inbox_retention_days, settings.attachment_retention_days)


@dataclass(frozen=True)
class Pruned:
    """What one pass deleted; `interrupted` when it stopped early for shutdown."""

    deleted: int
    interrupted: bool = False


K = TypeVar("K", int, str)


def cutoff(now: datetime, days: int) -> str:
    """The store's timestamp `days` before `now` (an aware UTC datetime)."""
    return (now - timedelta(days=days)).isoformat(timespec="microseconds")


async def prune_inbox(
    db: Database, days: int, now: datetime, stopping: Callable[[], bool] = lambda: False
) -> Pruned:
    """Delete inbox rows settled more than `days` before `now`."""
    if not days:
        return Pruned(0)
    before = cutoff(now, days)
    return await _walk(lambda after: retention.prune_inbox_batch(
        db, before=before, after=after, limit=INBOX_BATCH), 0, stopping)


async def prune_attachments(
    db: Database, days: int, now: datetime, stopping: Callable[[], bool] = lambda: False
) -> Pruned:
    """Delete the files of receipts final for more than `days` before `now`."""
    if not days:
        return Pruned(0)
    before = cutoff(now, days)
    return await _walk(lambda after: retention.prune_attachments_batch(
        db, before=before, after=after, limit=ATTACHMENT_BATCH,
        max_bytes=ATTACHMENT_BATCH_BYTES), "", stopping)


async def prune_notifications(
    db: Database, days: int, now: datetime, stopping: Callable[[], bool] = lambda: False
) -> Pruned:
    """Delete partners' notifications delivered more than `days` before `now` (the inbox's
    retention: both are webhook deliveries, one each way)."""
    if not days:
        return Pruned(0)
    before, deleted = cutoff(now, days), 0
    while True:
        if stopping():
            return Pruned(deleted, interrupted=True)
        batch = await prune_delivered_batch(db, before=before, limit=INBOX_BATCH)
        deleted += batch
        if batch < INBOX_BATCH:
            return Pruned(deleted)
        await asyncio.sleep(0)  # the other lanes between transactions


async def _walk(
    batch: Callable[[K], Awaitable[retention.Batch[K]]], start: K, stopping: Callable[[], bool]
) -> Pruned:
    """Batches from the first row (after `start`) until the walk is over (or the worker
    stops)."""
    after, deleted = start, 0
    while True:
        if stopping():
            return Pruned(deleted, interrupted=True)
        outcome = await batch(after)
        deleted, after = deleted + outcome.deleted, outcome.after
        if outcome.done:
            return Pruned(deleted)
        await asyncio.sleep(0)  # the other lanes between transactions


async def run(job: JobRun) -> JobResult:
    """The `retention` job: prune the inbox, the attachments, then partners' notifications."""
    policy = Policy.from_settings(job.settings)
    now = datetime.now(UTC)
    detail: dict[str, int] = {}
    interrupted = False
    for kind, prune, days in (("inbox", prune_inbox, policy.inbox_days),
                              ("attachment", prune_attachments, policy.attachment_days),
                              ("notification", prune_notifications, policy.inbox_days)):
        pruned = await prune(job.db, days, now, lambda: job.stopping)
        metrics.count_pruned(kind, pruned.deleted)
        detail[f"{kind}_deleted"] = pruned.deleted
        await job.page_done(kind, pruned.deleted, None)
        if pruned.interrupted:
            interrupted = True
            break
    outcome = JobOutcome.INCOMPLETE if interrupted else JobOutcome.SUCCESS
    return JobResult(outcome, detail, interrupted=interrupted)
