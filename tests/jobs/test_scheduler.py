"""The jobs lane: backfills a new database first, runs the periodic jobs after it, and on
shutdown stores the page in flight and resumes from it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync.context import WorkerContext
from sync.jobs import schedule, scheduler
from sync.simulator.state import SimConfig
from sync.store import jobs as job_store
from tests.jobs.conftest import cached_contacts, sim_settings, simulator_contacts, worker_context
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.anyio


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def outcome(ctx: WorkerContext, name: str) -> str | None:
    state = await job_store.job_state(ctx.db, name)
    return None if state is None else state.last_outcome


async def test_a_new_database_is_backfilled_then_polled_and_reconciled(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    """The lane backfills first; the chart poll and the reconciliation follow on their
    (shortened) intervals; subscription health stays off on a loopback URL; stop returns."""
    simulator.state.seed_contacts(150)
    settings = sim_settings(simulator, tmp_path, ACCOUNTS_POLL_S="0.3", RECONCILE_S="0.3")
    async with worker_context(settings) as ctx:
        lane = asyncio.create_task(scheduler.run(ctx))
        await until(lambda: _all_succeeded(ctx, ["backfill", "accounts", "reconcile"]))
        ctx.stopping.set()
        await asyncio.wait_for(lane, timeout=5)
        runs = {name: await job_store.recent_runs(ctx.db, name) for name in schedule.JOB_NAMES}
        first_other = min(r.started_at for n in ("accounts", "reconcile") for r in runs[n])
        finished = runs["backfill"][-1].finished_at
        assert finished is not None
        assert finished <= first_other
        assert runs["subscriptions"] == []
        assert await cached_contacts(ctx.db) == simulator_contacts(simulator)


async def _all_succeeded(ctx: WorkerContext, names: list[str]) -> bool:
    return all([await outcome(ctx, n) == "success" for n in names])


@pytest.mark.parametrize("sim_config", [SimConfig(rate_limit=30, window_s=1.0)])
async def test_a_shutdown_mid_backfill_keeps_its_page_and_the_next_start_resumes(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    """Stopped mid-way, the lane returns promptly with the checkpoint matching the rows stored;
    started again, it asks Alegra from the checkpoint on and completes."""
    simulator.state.seed_contacts(1200)
    settings = sim_settings(simulator, tmp_path)
    async with worker_context(settings) as ctx:
        lane = asyncio.create_task(scheduler.run(ctx))
        await until(lambda: _checkpoint_past(ctx, 300))
        ctx.stopping.set()
        await asyncio.wait_for(lane, timeout=5)
        state = await job_store.job_state(ctx.db, schedule.BACKFILL)
        assert state is not None
        assert state.last_outcome == "incomplete"
        assert state.next_run_at is not None
        assert state.next_run_at <= datetime.now(UTC)
        assert state.checkpoint is not None
        resume_at = state.checkpoint["start"]
        assert len(await cached_contacts(ctx.db)) == resume_at
    simulator.state.clear_log()
    async with worker_context(settings) as ctx:
        lane = asyncio.create_task(scheduler.run(ctx))
        await until(lambda: _all_succeeded(ctx, ["backfill"]))
        ctx.stopping.set()
        await asyncio.wait_for(lane, timeout=5)
        assert await cached_contacts(ctx.db) == simulator_contacts(simulator)
    starts = [int(r.query["start"]) for r in simulator.state.matching_requests("GET", "/contacts")]
    assert min(starts) == resume_at


async def _checkpoint_past(ctx: WorkerContext, start: int) -> bool:
    state = await job_store.job_state(ctx.db, schedule.BACKFILL)
    checkpoint = (state.checkpoint if state else None) or {}
    return checkpoint.get("phase") == "contacts" and checkpoint.get("start", 0) >= start


async def test_a_job_new_to_a_backfilled_database_is_due_at_once(ctx: WorkerContext) -> None:
    """An upgrade adds a job to a database backfilled long ago: it runs now, not one interval
    later; jobs that existed keep their times."""
    await job_store.ensure_jobs(ctx.db, {"backfill": None,
                                         "reconcile": "2999-01-01T00:00:00+00:00"})
    run_id = await job_store.start_run(ctx.db, "backfill")
    await job_store.finish_run(ctx.db, run_id, "backfill", owner="test", outcome="success",
                               duration_s=1.0, error=None, next_run_at=None, detail={})
    await scheduler.prepare(ctx)
    now = datetime.now(UTC)
    states = {s.name: s.next_run_at for s in await job_store.job_states(ctx.db)}
    assert states["bills"] is not None
    assert states["bills"] <= now
    assert states["accounts"] is not None
    assert states["accounts"] <= now
    assert states["reconcile"] is not None
    assert states["reconcile"] > now  # clamped to one interval, not pulled in
