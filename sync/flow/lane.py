"""The receipts lane of the worker: claim ready receipts and run up to N of them at once.

The web process only writes rows: an idle lane waits for the worker's fleet to see ready
receipts of its company (one look for every company, `sync/fleet.py`), or polls the table itself
every `POLL_S` when it runs alone (a CLI job, a test). It
claims `queued` receipts whose time has come, and `processing` ones whose holder's lease ran out
or whose holder is known dead (a worker killed on this host: see `flow/lease.py`). When the
worker is stopping it claims nothing more and waits for the running receipts, which hand
themselves back after their current step.
"""

from __future__ import annotations

import asyncio
import time

from sync.context import WorkerContext
from sync.flow import lease
from sync.flow.context import FlowEnv
from sync.flow.run_receipt import run_receipt
from sync.logs import get_logger
from sync.store import receipt_work
from sync.store.db import Database
from sync.store.receipt_work import Claimed

POLL_S = 0.1
DEAD_CHECK_S = 5.0


async def run(ctx: WorkerContext) -> None:
    """Work receipts until `ctx.stopping` is set, then let the running ones reach a step's end."""
    env = FlowEnv(ctx.settings, ctx.db, ctx.alegra, ctx.stopping)
    lane = _Lane(env, lease.new_owner(), max(1, ctx.settings.receipt_concurrency), ctx)
    await lane.loop()


class _Lane:
    def __init__(self, env: FlowEnv, owner: str, concurrency: int, ctx: WorkerContext) -> None:
        self.env, self.owner, self.concurrency, self.ctx = env, owner, concurrency, ctx
        self.running: dict[asyncio.Task[str], str] = {}  # task → the receipt it works on
        self.dead: list[str] = []
        self.dead_checked = float("-inf")
        self.idle = False  # the last look found nothing: look with a read before claiming
        self.log = get_logger(lane="receipts")

    async def loop(self) -> None:
        self.log.info("receipts.lane_started", concurrency=self.concurrency)
        while not self.env.stopping.is_set():
            if len(self.running) >= self.concurrency:
                await asyncio.wait(set(self.running), return_when=asyncio.FIRST_COMPLETED)
                continue
            claimed = await self._claim()
            if claimed is None:
                await self._idle()
                continue
            self._start(claimed)
        if self.running:
            await asyncio.gather(*self.running, return_exceptions=True)
        self.log.info("receipts.lane_stopped")

    async def _claim(self) -> Claimed | None:
        if time.monotonic() - self.dead_checked > DEAD_CHECK_S:
            self.dead = await dead_holders(self.env.db, self.owner)
            self.dead_checked = time.monotonic()
        if self.idle and not await receipt_work.any_ready(self.env.db, dead_owners=self.dead):
            return None
        claimed = await receipt_work.claim_next(
            self.env.db, owner=self.owner, lease_s=lease.LEASE_S, dead_owners=self.dead,
            running=self.running.values(),
        )
        self.idle = claimed is None
        return claimed

    async def _idle(self) -> None:
        """Until the fleet says this company has ready receipts (at most DEAD_CHECK_S, so dead
        holders are still noticed), or POLL_S when no fleet watches."""
        await self.ctx.idle(self.ctx.receipts_ready, POLL_S, DEAD_CHECK_S)

    def _start(self, claimed: Claimed) -> None:
        self.log.info("receipt.claimed", receipt_id=claimed.receipt_id, attempts=claimed.attempts)
        task = asyncio.create_task(run_receipt(self.env, claimed, self.owner))
        self.running[task] = claimed.receipt_id
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[str]) -> None:
        self.running.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            # The store failed while recording the outcome; the lease will expire and the
            # receipt will be claimed again, resuming from its last recorded step.
            self.log.error("receipt.run_crashed", exc_info=task.exception())


async def dead_holders(db: Database, owner: str) -> list[str]:
    """Lease holders of `processing` receipts that certainly no longer run."""
    holders = await receipt_work.foreign_lease_owners(db, owner)
    return [h for h in holders if lease.holder_is_dead(h, owner)]
