"""Stopping with the rate budget spent: lanes waiting for a slot give up and keep their work.

Each test spends the window's slots locally (a 60 s window), starts work whose Alegra request
must wait for the next window, then sets the stop signal. The bound on the wait only tells
"stopped" from "waited for the window" (a minute); nothing is timed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sync.alegra.budget import Priority, RateBudget
from sync.events.lane import LaneConfig, run_round
from sync.jobs import schedule
from sync.jobs.runner import JobResult, JobRun, run_job
from sync.states import JobOutcome
from sync.store import inbox
from tests.jobs.conftest import sim_settings, worker_context
from tests.support.servers import RunningSimulator
from tests.webhooks.conftest import delivery

pytestmark = pytest.mark.anyio
BOUND_S = 10.0  # a waiter that ignored the stop would wait about 60 s
FAST = LaneConfig(quiet_s=0.0, max_wait_s=0.0)


async def spend_all(budget: RateBudget) -> None:
    for _ in range(2):
        await budget.acquire(Priority.RECEIPT)


async def until_waiting(budget: RateBudget, priority: Priority) -> None:
    while budget.snapshot()["waiting"][priority.name] == 0:
        await asyncio.sleep(0.01)


async def test_a_job_waiting_for_the_budget_ends_interrupted_on_stop(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    """A job whose request waits for the window returns `incomplete`, interrupted (due again at
    the next start), as soon as the worker stops."""
    settings = sim_settings(simulator, tmp_path, ALEGRA_RATE_LIMIT="2", ALEGRA_RATE_WINDOW_S="60")
    async with worker_context(settings) as ctx:
        await spend_all(ctx.budget)

        async def job(run: JobRun) -> JobResult:
            await run.alegra.get("/contacts", priority=Priority.BACKGROUND)
            return JobResult(JobOutcome.SUCCESS)

        task = asyncio.create_task(run_job(ctx, schedule.RECONCILE, job))
        await until_waiting(ctx.budget, Priority.BACKGROUND)
        ctx.stopping.set()
        result = await asyncio.wait_for(task, BOUND_S)

    assert (result.outcome, result.interrupted, result.error) == (
        JobOutcome.INCOMPLETE, True, "stopped")
    assert simulator.state.calls() == 0


async def test_an_event_waiting_for_the_budget_stays_pending_on_stop(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    """The events lane's fetch waits for the window; on stop the round ends and the delivery
    stays `received` with no attempt counted, for the next worker."""
    settings = sim_settings(simulator, tmp_path, ALEGRA_RATE_LIMIT="2", ALEGRA_RATE_WINDOW_S="60")
    async with worker_context(settings) as ctx:
        contact = simulator.state.person_create_contact(name="Ferretería Ochoa")
        body = delivery("new-client", "client", **contact)
        [inbox_id] = await inbox.write_batch(ctx.db, [inbox.NewDelivery(body, 0)])
        await spend_all(ctx.budget)

        task = asyncio.create_task(run_round(ctx.alegra, ctx.db, FAST, ctx.stopping))
        await until_waiting(ctx.budget, Priority.EVENT)
        ctx.stopping.set()
        assert await asyncio.wait_for(task, BOUND_S) == (0, 0)
        row = await inbox.get_row(ctx.db, inbox_id)

    assert row is not None
    assert (row.state, row.attempts, row.last_error) == ("received", 0, None)
    assert simulator.state.calls() == 0
