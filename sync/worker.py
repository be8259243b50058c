"""The worker: the one process that spends the Alegra rate budget.

It runs lanes side by side, all sharing one `AlegraClient` and its `RateBudget`:
receipts (priority RECEIPT), webhook events (EVENT), scheduled jobs (BACKGROUND), and a
heartbeat. Work lives in SQLite rows; the lanes only pick rows up, so a restart resumes.
SIGTERM sets `ctx.stopping`; each lane finishes or checkpoints its current step and returns.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

from sync import metrics
from sync.alegra.budget import RateBudget
from sync.alegra.client import build_client
from sync.context import Lane, WorkerContext
from sync.events.lane import run as events_lane
from sync.flow.lane import run as receipts_lane
from sync.jobs.scheduler import run as jobs_lane
from sync.logs import get_logger
from sync.settings import Settings
from sync.store.db import Database, utcnow

HEARTBEAT_S = 2.0


def lanes() -> list[tuple[str, Lane]]:
    """The worker's lanes, in priority order."""
    return [
        ("receipts", receipts_lane),
        ("events", events_lane),
        ("jobs", jobs_lane),
        ("heartbeat", heartbeat),
    ]


async def heartbeat(ctx: WorkerContext) -> None:
    """Record that the worker is alive, with a snapshot of the rate budget, for /readyz."""
    while True:
        await ctx.db.execute(
            "INSERT INTO worker_state(id, pid, beat_at, budget) VALUES (1, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET pid=excluded.pid, beat_at=excluded.beat_at,"
            " budget=excluded.budget",
            (os.getpid(), utcnow(), json.dumps(ctx.budget.snapshot())),
        )
        await flush_metrics(ctx.db)
        if await ctx.sleep(HEARTBEAT_S):
            return


async def flush_metrics(db: Database) -> None:
    """Store the counters gathered since the last beat (sync/metrics.py); on error they wait."""
    try:
        await metrics.flush(db)
    except Exception:
        get_logger(lane="heartbeat").exception("metrics.flush_failed")


async def run_worker(settings: Settings) -> None:
    """Open the store and the client, run every lane until SIGTERM/SIGINT, then close cleanly."""
    log = get_logger(process="worker")
    db = await Database.open(settings.database_path)
    budget = RateBudget(limit=settings.rate_limit, window_s=settings.rate_window_s)
    alegra = build_client(settings, budget, on_response=metrics.observe_alegra_call)
    ctx = WorkerContext(settings, db, alegra, budget, asyncio.Event())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctx.stopping.set)
    log.info("worker.started", alegra=settings.alegra_base_url, pid=os.getpid())
    try:
        async with asyncio.TaskGroup() as group:
            for name, lane in lanes():
                group.create_task(_guarded(name, lane, ctx), name=name)
    finally:
        await alegra.aclose()
        await flush_metrics(db)
        await db.close()
        log.info("worker.stopped")


async def _guarded(name: str, lane: Lane, ctx: WorkerContext) -> None:
    """Run a lane; if it crashes, log it and restart it after a pause (the others keep going)."""
    log = get_logger(lane=name)
    while not ctx.stopping.is_set():
        try:
            await lane(ctx)
        except Exception:
            log.exception("worker.lane_crashed")
            if await ctx.sleep(5.0):
                return
        else:
            return
