"""The worker's events lane: settle the webhook inbox, a few resources at a time.

Each round skips what cannot be used (malformed or unknown bodies), then takes the due groups
(every pending delivery about one resource) and settles each with one fetch. Rounds are small so
the lane keeps yielding; on Alegra's side the EVENT priority of the shared budget keeps receipts
first. While deliveries keep arriving (a bulk import or edit in Alegra), work waits for the
inbox to be quiet for `quiet_s`, at most `max_wait_s`: the burst then costs one fetch per
resource, not one per delivery. A lone delivery is applied about `quiet_s` after it arrives.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sync import metrics
from sync.alegra.client import AlegraClient
from sync.alegra.errors import Stopping
from sync.context import WorkerContext
from sync.events.apply import RetryPolicy, apply_group
from sync.logs import get_logger
from sync.store import inbox
from sync.store.db import Database

IDLE_LONGEST_S = 5.0  # an idle lane the fleet wakes still looks this often by itself


@dataclass(frozen=True)
class LaneConfig:
    poll_s: float = 0.5  # idle: how often to look for new deliveries (another process stores them)
    quiet_s: float = 1.0  # work is due once no delivery at all came for this long (burst over) ...
    max_wait_s: float = 10.0  # ... or a resource's oldest delivery has waited this long
    groups_per_round: int = 10
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="microseconds")


async def run_round(
    alegra: AlegraClient, db: Database, config: LaneConfig, stopping: asyncio.Event | None = None
) -> tuple[int, int]:
    """One round; stops between groups once `stopping` is set (what is left stays pending, also
    a group whose fetch would have waited for the rate budget). Returns (rows settled, Alegra
    fetches made)."""
    unusable = await inbox.skip_unusable(db)
    metrics.count_settled("skipped", len(unusable), db.company)
    for row in unusable:
        get_logger(inbox_id=row.id).info("event.skipped", shape=row.shape)
    due = await inbox.due_groups(
        db, quiet_before=_ago(config.quiet_s), waited_before=_ago(config.max_wait_s),
        limit=config.groups_per_round,
    )
    settled, fetches = len(unusable), 0
    for resource, resource_id in due:
        if stopping is not None and stopping.is_set():
            break
        group = await inbox.claim_group(db, resource, resource_id)
        try:
            fetches += await apply_group(alegra, db, group, config.retry)
        except Stopping:
            break
        settled += len(group.rows)
    return settled, fetches


async def run(ctx: WorkerContext, config: LaneConfig | None = None) -> None:
    """Until the worker stops: rounds back to back while there is work, polling when idle."""
    config = config or LaneConfig()
    while not ctx.stopping.is_set():
        settled, _ = await run_round(ctx.alegra, ctx.db, config, ctx.stopping)
        if settled:
            await asyncio.sleep(0)  # let the other lanes run between rounds
        elif await ctx.idle(ctx.events_due, config.poll_s, IDLE_LONGEST_S):
            return
