"""A bill typed in Alegra blocks its twin receipt whatever shape its number comes back in.

Alegra returns `numberTemplate` as an object or as a list of objects, with the number in
`fullNumber`, `billNumber` or `number` (facts sheet). However the bill is learned — its webhook,
the bills job or the first backfill — the receipt for the same NCF ends `duplicate`, unbilled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from sync.alegra.budget import RateBudget
from sync.context import WorkerContext
from sync.jobs import backfill, bills, schedule
from sync.jobs.runner import JobFn, run_job
from sync.states import JobOutcome
from tests.flow.conftest import Flow, receipt_body
from tests.safeguards.conftest import learn_bill
from tests.safeguards.test_duplicate_check import hand_bill

pytestmark = pytest.mark.anyio

SHAPES: dict[str, dict[str, Any]] = {
    "list-fullNumber": {"numberTemplate": [{"id": "3", "fullNumber": "B01-00000001"}]},
    "list-prefix-number": {"numberTemplate": [{"id": "3", "prefix": "B01", "number": "00000001"}]},
    "list-number": {"numberTemplate": [{"number": "B0100000001"}]},
    "list-billNumber": {"numberTemplate": [{"billNumber": "B0100000001"}]},
    "object-fullNumber": {"numberTemplate": {"fullNumber": "B0100000001"}},
    "root-billNumber": {"billNumber": "B0100000001"},
}
# Spellings a person types into Alegra, read as a partner's NCF is (NFKC, no dots, any case).
TYPED: dict[str, dict[str, Any]] = {
    "dotted": {"numberTemplate": {"fullNumber": "B01.0000.0001"}},
    "lower-case": {"numberTemplate": [{"prefix": "b01", "number": "00000001"}]},
    "fullwidth": {"billNumber": "Ｂ０１０００００００１"},
}
SHAPES.update(TYPED)


async def _job(flow: Flow, name: str, fn: JobFn) -> None:
    budget = RateBudget(limit=flow.sim.config.rate_limit, window_s=flow.sim.config.window_s)
    settings = replace(flow.env.settings, bill_backfill_days=10_000)  # the receipts are of 2024
    ctx = WorkerContext(settings, flow.db, flow.env.alegra, budget, asyncio.Event())
    assert (await run_job(ctx, name, fn)).outcome == JobOutcome.SUCCESS


async def by_webhook(flow: Flow, bill_id: str) -> None:
    assert await learn_bill(flow, bill_id) == "upserted"


async def by_bills_job(flow: Flow, bill_id: str) -> None:
    await _job(flow, schedule.BILLS, bills.run)


async def by_backfill(flow: Flow, bill_id: str) -> None:
    await _job(flow, schedule.BACKFILL, backfill.run)


LEARNERS: dict[str, Callable[[Flow, str], Awaitable[None]]] = {
    "webhook": by_webhook, "bills_job": by_bills_job, "backfill": by_backfill,
}


@pytest.mark.parametrize("learned", list(LEARNERS))
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_twin_of_a_typed_bill_is_a_duplicate_whatever_the_number_shape(
    flow: Flow, shape: str, learned: str
) -> None:
    """The bill typed in Alegra, learned one way or another, makes its twin `duplicate`."""
    typed = hand_bill(flow, ncf=None, **SHAPES[shape])
    await LEARNERS[learned](flow, typed["id"])
    flow.sim.state.clear_log()

    receipt_id = await flow.process(receipt_body())

    resource = await flow.resource(receipt_id)
    assert (resource["status"], resource["alegra"]["bill_id"]) == ("duplicate", typed["id"])
    assert flow.calls("POST") == 0
    assert len(flow.sim.state.bills) == 1
