"""The bills job: what bill webhooks missed reaches the cache, and the duplicate check sees it."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from sync.alegra.records import bill_from_alegra
from sync.context import WorkerContext
from sync.jobs import bills, schedule
from sync.jobs.runner import Progress
from sync.simulator.state import SimConfig
from sync.store.bills import get_bill, record_bill
from tests.jobs.conftest import run_once
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.anyio
RNC = "1-31-24679-6"


def hand_bill(simulator: RunningSimulator, ncf: str, **changes: Any) -> dict[str, Any]:
    """A bill a person types into Alegra (no webhook reaches this service)."""
    state = simulator.state
    supplier = next((c for c in state.contacts.values() if c.get("identification") == RNC),
                    None) or state.person_create_contact(
        name="Ferretería Ochoa SRL", identification=RNC, type=["provider"])
    leaf = next(c for c in state.categories.values() if c["type"] == "expense"
                and not any(o["idParent"] == c["id"] for o in state.categories.values()))
    today = date.today().isoformat()
    fields = {"date": today, "dueDate": today, "provider": {"id": supplier["id"]},
              "numberTemplate": {"number": ncf},
              "purchases": {"categories": [{"id": leaf["id"], "price": 100, "quantity": 1}]}}
    return state.person_create_bill(**{**fields, **changes})


async def test_bills_typed_in_alegra_without_a_webhook_are_learned(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """Bills made in Alegra while no webhook came are cached with their supplier and NCF, as
    `refresh`; a bill this service created keeps the receipt it came from."""
    ours = hand_bill(simulator, "B0100000001")
    await record_bill(ctx.db, bill_from_alegra(
        ours, provider_tax_id="131246796", receipt_id="rcp_1"), source="receipt",
        confirmed_at="2000-01-01T00:00:00+00:00")
    theirs = hand_bill(simulator, "B0100000002")
    result = await run_once(ctx, schedule.BILLS, bills.run)
    assert result.outcome == "success", result.error
    learned = await get_bill(ctx.db, theirs["id"])
    assert learned is not None
    assert (learned.ncf_key, learned.provider_tax_id) == ("B0100000002", "131246796")
    source = await ctx.db.scalar("SELECT source FROM bills WHERE alegra_id = ?", (theirs["id"],))
    assert source == "refresh"
    kept = await get_bill(ctx.db, ours["id"])
    assert kept is not None
    assert kept.receipt_id == "rcp_1"


async def test_bills_outside_the_window_are_not_asked_for(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """Only bills dated within BILL_BACKFILL_DAYS are read."""
    old = hand_bill(simulator, "B0100000003", date="2020-01-02", dueDate="2020-01-02")
    result = await run_once(ctx, schedule.BILLS, bills.run)
    assert result.outcome == "success"
    assert await get_bill(ctx.db, old["id"]) is None


@pytest.mark.parametrize("sim_config", [SimConfig(rate_limit=60, window_s=1.0)])
async def test_a_stopped_pass_starts_over_from_the_first_page(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """Stopped after its first pages, the next run reads the window from the start (deletions
    meanwhile would shift an offset past live bills) and stores every bill."""
    made = [hand_bill(simulator, f"B01{n:08d}") for n in range(10, 100)]

    def stop_after_a_page(progress: Progress) -> None:
        if progress.done >= 30:
            ctx.stopping.set()

    first = await run_once(ctx, schedule.BILLS, bills.run, stop_after_a_page)
    assert (first.outcome, first.interrupted) == ("incomplete", True)
    simulator.state.clear_log()
    ctx.stopping.clear()
    assert (await run_once(ctx, schedule.BILLS, bills.run)).outcome == "success"
    starts = [int(r.query["start"]) for r in simulator.state.matching_requests("GET", "/bills")]
    assert min(starts) == 0
    assert all([await get_bill(ctx.db, b["id"]) for b in made])


async def test_a_bill_deleted_in_alegra_without_a_webhook_is_forgotten(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """A cached bill the list no longer shows is asked for by id; Alegra's 404 marks it deleted
    (its NCF is free again). A listed bill is not asked for."""
    kept, dropped = hand_bill(simulator, "B0100000005"), hand_bill(simulator, "B0100000006")
    assert (await run_once(ctx, schedule.BILLS, bills.run)).outcome == "success"
    simulator.state.person_delete_bill(dropped["id"])
    simulator.state.clear_log()
    result = await run_once(ctx, schedule.BILLS, bills.run)
    assert (result.outcome, result.detail["unlisted"], result.detail["gone"]) == ("success", 1, 1)
    by_id = simulator.state.matching_requests("GET", f"/bills/{dropped['id']}")
    assert len(by_id) == 1
    assert simulator.state.matching_requests("GET", f"/bills/{kept['id']}") == []
    deleted = {r["alegra_id"]: r["deleted"] for r in await ctx.db.fetchall(
        "SELECT alegra_id, deleted FROM bills")}
    assert deleted == {kept["id"]: 0, dropped["id"]: 1}
