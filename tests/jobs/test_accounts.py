"""The chart-of-accounts poll: new accounts arrive, removed ones are marked deleted, and only
after a complete listing."""

from __future__ import annotations

import pytest

from sync.context import WorkerContext
from sync.jobs import accounts, backfill, schedule
from sync.store.accounts import find_expense_account, get_account
from tests.jobs.conftest import run_once
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.anyio


def an_expense_leaf(simulator: RunningSimulator) -> dict[str, str]:
    rows = simulator.state.categories.values()
    parents = {c["idParent"] for c in rows}
    return next(c for c in rows if c["type"] == "expense" and c["id"] not in parents)


async def test_the_poll_brings_new_accounts_and_marks_removed_ones_deleted(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """An account added in Alegra's web app is cached (source poll); one gone from the chart is
    marked deleted."""
    assert (await run_once(ctx, schedule.BACKFILL, backfill.run)).outcome == "success"
    parent = next(c for c in simulator.state.categories.values() if c["type"] == "expense")
    added = simulator.state.person_create_category(name="Fumigación", idParent=parent["id"])
    removed = an_expense_leaf(simulator)
    with simulator.state.lock:  # deleted by a person in Alegra (the API has no DELETE)
        simulator.state.categories.pop(removed["id"])
    result = await run_once(ctx, schedule.ACCOUNTS, accounts.run)
    assert result.outcome == "success"
    found = await find_expense_account(ctx.db, "fumigacion")
    assert found is not None
    assert found.alegra_id == added["id"]
    assert await get_account(ctx.db, removed["id"]) is None


async def test_a_poll_cut_short_deletes_nothing(
    simulator: RunningSimulator, ctx: WorkerContext
) -> None:
    """When Alegra fails the listing (after the client's retries), the run is incomplete and
    every cached account stays."""
    assert (await run_once(ctx, schedule.BACKFILL, backfill.run)).outcome == "success"
    removed = an_expense_leaf(simulator)
    with simulator.state.lock:
        simulator.state.categories.pop(removed["id"])
    simulator.state.faults.update({"error_rate": 1.0, "error_status": 503})
    result = await run_once(ctx, schedule.ACCOUNTS, accounts.run)
    simulator.state.faults.update({"error_rate": 0.0})
    assert result.outcome == "incomplete"
    assert await get_account(ctx.db, removed["id"]) is not None
