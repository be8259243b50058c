"""The backfill job against the simulator, rate limit enforced: complete, resumable, paced."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from sync.context import WorkerContext
from sync.jobs import backfill, schedule
from sync.jobs.runner import Progress
from sync.simulator.app import create_simulator
from sync.simulator.state import SimConfig
from sync.store import jobs as job_store
from sync.store.accounts import count_accounts
from sync.store.bills import get_bill
from sync.store.taxes import count_taxes
from tests.jobs.conftest import (
    cached_contacts,
    run_once,
    sim_settings,
    simulator_contacts,
    worker_context,
)
from tests.support.servers import RunningSimulator, ServerThread

pytestmark = pytest.mark.anyio
PACED = SimConfig(rate_limit=60, window_s=1.0)


@pytest.mark.parametrize("sim_config", [PACED])
async def test_backfill_makes_the_cache_equal_to_alegra(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """2,400 contacts at 60 requests a second: every contact field for field, the whole chart
    and the taxes, in pages of 30, with no 429 (the budget paces), and the job marked done."""
    simulator.state.seed_contacts(2400)
    result = await run_once(ctx, schedule.BACKFILL, backfill.run)
    assert result.outcome == "success"
    assert await cached_contacts(ctx.db) == simulator_contacts(simulator)
    assert await count_accounts(ctx.db) == len(simulator.state.categories)
    assert await count_taxes(ctx.db) == len(simulator.state.taxes)
    pages = simulator.state.matching_requests("GET", "/contacts")
    assert len(pages) == 80
    assert {int(p.query["limit"]) for p in pages} == {30}
    assert simulator.state.calls(status=429) == 0
    state = await job_store.job_state(ctx.db, schedule.BACKFILL)
    assert state is not None
    assert (state.last_outcome, state.next_run_at) == ("success", None)


@pytest.mark.parametrize("sim_config", [PACED])
async def test_each_phase_is_reported_as_it_starts_then_page_by_page(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """A progress bar hears of each phase when it begins (no total yet), before any of its rows,
    so its label never lags one phase behind; then each phase's pages with their totals."""
    simulator.state.seed_contacts(90)
    heard: list[Progress] = []
    assert (await run_once(ctx, schedule.BACKFILL, backfill.run, heard.append)).outcome == (
        "success")
    starts = [p.phase for p in heard if p.total is None]
    assert starts == ["accounts", "taxes", "contacts", "bills"]
    for phase in starts:
        reports = [p for p in heard if p.phase == phase]
        assert (reports[0].done, reports[0].total) == (0, None)
        first = heard.index(reports[0])
        assert all(p.phase == phase for p in heard[first:first + len(reports)])
    contacts = [p for p in heard if p.phase == "contacts" and p.total is not None]
    assert [(p.done, p.total) for p in contacts][-1] == (90, 90)


@pytest.mark.parametrize("sim_config", [PACED])
async def test_a_stopped_backfill_resumes_from_its_checkpoint(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """Stopped after page 10, the backfill keeps those rows and the checkpoint after them; the
    next run asks Alegra from that checkpoint on, never from zero again, and completes."""
    simulator.state.seed_contacts(900)

    def stop_after_ten_pages(progress: Progress) -> None:
        if progress.phase == "contacts" and progress.done >= 300:
            ctx.stopping.set()

    first = await run_once(ctx, schedule.BACKFILL, backfill.run, stop_after_ten_pages)
    assert (first.outcome, first.interrupted) == ("incomplete", True)
    state = await job_store.job_state(ctx.db, schedule.BACKFILL)
    assert state is not None
    assert state.checkpoint is not None
    assert state.checkpoint["phase"] == "contacts"
    resume_at = state.checkpoint["start"]
    assert 300 <= resume_at < 900
    assert len(await cached_contacts(ctx.db)) == resume_at
    simulator.state.clear_log()
    ctx.stopping.clear()
    second = await run_once(ctx, schedule.BACKFILL, backfill.run)
    assert second.outcome == "success"
    starts = [int(r.query["start"]) for r in simulator.state.matching_requests("GET", "/contacts")]
    assert sorted(starts) == list(range(resume_at, 900, 30))
    assert await cached_contacts(ctx.db) == simulator_contacts(simulator)


async def test_backfill_learns_recent_bills_with_their_suppliers_tax_id(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """A bill typed in Alegra is known afterwards, with its NCF and its supplier's RNC."""
    supplier = simulator.state.person_create_contact(
        name="Ferretería Ochoa SRL", identification="1-31-24679-6", type=["provider"])
    leaf = next(c for c in simulator.state.categories.values() if c["type"] == "expense"
                and not any(o["idParent"] == c["id"] for o in simulator.state.categories.values()))
    today = date.today().isoformat()
    bill = simulator.state.person_create_bill(
        date=today, dueDate=today, provider={"id": supplier["id"]},
        numberTemplate={"number": "B0100000042"},
        purchases={"categories": [{"id": leaf["id"], "price": 100, "quantity": 1}]})
    result = await run_once(ctx, schedule.BACKFILL, backfill.run)
    assert result.outcome == "success"
    known = await get_bill(ctx.db, bill["id"])
    assert known is not None
    assert (known.provider_tax_id, known.ncf_key) == ("131246796", "B0100000042")


def test_the_time_left_is_pages_remaining_over_the_rate() -> None:
    """1,000 rows left are 34 pages: at 150 a minute, 13.6 s; unknown without a total."""
    assert backfill.eta_s(2000, 3000, limit=150, window_s=60.0) == pytest.approx(
        math.ceil(1000 / 30) * 60 / 150)
    assert backfill.eta_s(10, None, limit=150, window_s=60.0) is None


@pytest.mark.parametrize("sim_config", [SimConfig(rate_limit=10, window_s=30.0)])
async def test_a_shutdown_does_not_wait_for_the_next_request_slot(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """At 10 requests per 30 s the next page is seconds away: a stop returns at once, keeping
    every stored page and its checkpoint."""
    simulator.state.seed_contacts(900)
    job = asyncio.create_task(run_once(ctx, schedule.BACKFILL, backfill.run))
    while not await cached_contacts(ctx.db):
        await asyncio.sleep(0.02)
    started = time.monotonic()
    ctx.stopping.set()
    result = await asyncio.wait_for(job, timeout=5)
    assert time.monotonic() - started < 1
    assert (result.outcome, result.interrupted) == ("incomplete", True)
    state = await job_store.job_state(ctx.db, schedule.BACKFILL)
    assert state is not None
    assert state.checkpoint is not None
    assert state.checkpoint["start"] == len(await cached_contacts(ctx.db)) > 0


async def test_a_backfill_cut_short_by_alegra_going_away_keeps_its_checkpoint(
    tmp_path: Path,
) -> None:
    """Alegra stops answering mid-way: the run is incomplete (not failed, not success), names
    the lost connection, and every page stored before stays with its checkpoint."""
    app, state = create_simulator(SimConfig(rate_limit=60, window_s=1.0))
    server = ServerThread(app).start()
    state.seed_contacts(900)
    running = RunningSimulator(server.url, state, state.config)
    stopper = threading.Thread(target=server.stop)

    def go_away_after_ten_pages(progress: Progress) -> None:
        if progress.phase == "contacts" and progress.done >= 300 and stopper.ident is None:
            stopper.start()  # stopping uvicorn blocks: not on the job's event loop

    try:
        async with worker_context(sim_settings(running, tmp_path)) as ctx:
            result = await run_once(ctx, schedule.BACKFILL, backfill.run, go_away_after_ten_pages)
            assert result.outcome == "incomplete"
            assert result.error is not None
            assert result.error.startswith("TransportFailed")
            job = await job_store.job_state(ctx.db, schedule.BACKFILL)
            assert job is not None
            assert job.checkpoint is not None
            assert job.checkpoint["start"] == len(await cached_contacts(ctx.db)) >= 300
    finally:
        stopper.join()
