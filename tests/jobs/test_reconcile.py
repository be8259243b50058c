"""Reconciliation against the simulator: repairs what webhooks missed, reports the drift, and
deletes only after a complete scan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from sync.alegra import client as alegra_client
from sync.alegra import resources
from sync.alegra.budget import Priority
from sync.alegra.client import AlegraClient, Page
from sync.context import WorkerContext
from sync.events.apply import confirm_contact
from sync.jobs import backfill, reconcile, schedule
from sync.jobs.runner import Progress
from sync.simulator.state import SimConfig
from sync.store import jobs as job_store
from sync.store.contacts import get_cached_contact
from tests.jobs.conftest import cached_contacts, run_once, simulator_contacts
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.anyio
ROOMY = SimConfig(rate_limit=600, window_s=1.0)


async def backfilled(ctx: WorkerContext, simulator: RunningSimulator, n: int) -> list[str]:
    """Seed `n` contacts, backfill them, and return their ids in Alegra's order."""
    made = simulator.state.seed_contacts(n)
    assert (await run_once(ctx, schedule.BACKFILL, backfill.run)).outcome == "success"
    return [c["id"] for c in made]


@pytest.mark.parametrize("sim_config", [ROOMY])
async def test_one_reconcile_repairs_edits_creations_and_deletions(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """Changes made in Alegra with no webhook reaching us are all repaired by one run, and the
    drift report counts and names them."""
    ids = await backfilled(ctx, simulator, 300)
    state = simulator.state
    for contact_id in ids[:5]:
        state.person_edit_contact(contact_id, email="nuevo@example.com.do", status="inactive")
    created = [state.person_create_contact(name=f"Nuevo {n}", type=["provider"])["id"]
               for n in range(3)]
    for contact_id in ids[100:104]:
        state.person_delete_contact(contact_id)
    result = await run_once(ctx, schedule.RECONCILE, reconcile.run)
    assert result.outcome == "success"
    assert await cached_contacts(ctx.db) == simulator_contacts(simulator)
    report = await job_store.last_drift_report(ctx.db)
    assert report is not None
    assert (report["complete"], report["missing"], report["extra"], report["different"]) == (
        True, 3, 4, 5)
    assert sorted(report["missing_ids"]) == sorted(created)
    assert sorted(report["extra_ids"]) == sorted(ids[100:104])
    assert report["differences"][ids[0]]["status"] == ["active", "inactive"]
    gone = await get_cached_contact(ctx.db, ids[100])
    assert gone is not None
    assert (gone["deleted"], gone["source"]) == (1, "reconcile")


@pytest.mark.parametrize("sim_config", [ROOMY])
async def test_reconcile_reports_its_scan_and_its_look_ups_as_progress(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """The listing is reported page by page, then each unlisted contact asked for by id, so
    `alegra-sync reconcile` shows a bar instead of minutes of silence; the report names them."""
    ids = await backfilled(ctx, simulator, 60)
    simulator.state.person_delete_contact(ids[7])
    heard: list[Progress] = []
    assert (await run_once(ctx, schedule.RECONCILE, reconcile.run, heard.append)).outcome == (
        "success")
    scan = [(p.done, p.total) for p in heard if p.phase == reconcile.SCAN_PHASE]
    assert scan[-1] == (59, 59)
    assert all(total == 59 for _, total in scan)
    confirm = [(p.done, p.total) for p in heard if p.phase == reconcile.CONFIRM_PHASE]
    assert confirm == [(0, 1), (1, 1)]
    report = await job_store.last_drift_report(ctx.db)
    assert report is not None
    assert report["extra_ids"] == [ids[7]]
    assert report["names"][ids[7]]  # the name it had in the cache


@pytest.mark.parametrize("sim_config", [ROOMY])
@pytest.mark.parametrize("fault", [{"burst_429": 1000}, {"error_rate": 1.0, "error_status": 503}])
async def test_a_reconcile_cut_short_is_incomplete_and_deletes_nothing(
    simulator: RunningSimulator, ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch,
    fault: dict[str, float],
) -> None:
    """A 429 storm or 5xx answers mid-scan (after the client's own retries) leave the run
    `incomplete`, with its error, and contacts deleted in Alegra still live in the cache."""
    monkeypatch.setattr(alegra_client, "MAX_RATE_LIMIT_WAITS", 2)
    ids = await backfilled(ctx, simulator, 300)
    simulator.state.person_delete_contact(ids[-1])

    def storm_after_the_first_page(progress: Progress) -> None:
        simulator.state.faults.update(fault)

    result = await run_once(ctx, schedule.RECONCILE, reconcile.run, storm_after_the_first_page)
    simulator.state.faults.update({"burst_429": 0, "error_rate": 0.0})
    assert result.outcome == "incomplete"
    assert result.error is not None
    assert result.error.startswith(("RateLimited", "Unavailable"))
    row = await get_cached_contact(ctx.db, ids[-1])
    assert row is not None
    assert row["deleted"] == 0
    job = await job_store.job_state(ctx.db, schedule.RECONCILE)
    assert job is not None
    assert (job.last_outcome, job.last_error) == ("incomplete", result.error)
    report = await job_store.last_drift_report(ctx.db)
    assert report is not None
    assert (report["complete"], report["extra"]) == (False, 0)


@pytest.mark.parametrize("sim_config", [ROOMY])
async def test_a_contact_shifted_past_the_offset_mid_scan_is_not_deleted(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """A deletion in Alegra during the scan shifts every later contact back one place, so one
    is never listed: asked for by id, it is found and kept. Nothing is wrongly deleted."""
    ids = await backfilled(ctx, simulator, 300)
    deleted: list[str] = []

    def delete_one_already_read(progress: Progress) -> None:
        if progress.done >= 150 and not deleted:
            simulator.state.person_delete_contact(ids[0])
            deleted.append(ids[0])

    simulator.state.clear_log()
    result = await run_once(ctx, schedule.RECONCILE, reconcile.run, delete_one_already_read)
    assert result.outcome == "success"
    by_id = simulator.state.matching_requests("GET", "/contacts/")
    asked = [r.path.rsplit("/", 1)[1] for r in by_id]
    assert len(asked) == 1
    cached = await cached_contacts(ctx.db)
    assert asked[0] in cached
    assert {k: v for k, v in cached.items() if k != ids[0]} == simulator_contacts(simulator)
    report = await job_store.last_drift_report(ctx.db)
    assert report is not None
    assert (report["extra"], report["missing"], report["different"]) == (0, 0, 0)


@pytest.mark.parametrize("sim_config", [ROOMY])
async def test_a_page_that_waited_for_an_earlier_one_does_not_undo_a_newer_confirmation(
    simulator: RunningSimulator, ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page read ahead, then held back behind a slow earlier page while a webhook's fetch
    stores a newer version of one of its contacts, does not put the older version back."""
    ids = await backfilled(ctx, simulator, 150)
    target = ids[65]  # on the page at offset 60
    state = simulator.state
    state.person_edit_contact(target, email="antes@example.com.do")  # drift reconcile repairs
    real = resources.iter_contacts
    later_page_in = asyncio.Event()

    async def slow_second_page(client: AlegraClient, start: int = 0, *, priority: Priority
                               ) -> AsyncGenerator[Page, None]:
        if start == 30:
            await later_page_in.wait()
        async for page in real(client, start=start, priority=priority):
            if start == 60:
                state.person_edit_contact(target, email="despues@example.com.do")
                assert await confirm_contact(ctx.alegra, ctx.db, target) == "upserted"
                later_page_in.set()
            yield page

    monkeypatch.setattr(resources, "iter_contacts", slow_second_page)
    assert (await run_once(ctx, schedule.RECONCILE, reconcile.run)).outcome == "success"
    row = await get_cached_contact(ctx.db, target)
    assert row is not None
    assert (row["email"], row["source"]) == ("despues@example.com.do", "webhook")
