"""What `doctor` learned for a company shapes its writes, in-process against a contrary Alegra;
the first backfill runs `doctor` when the worker knows the company's account."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraAccount
from sync.context import WorkerContext
from sync.doctor_reading import examine_and_store
from sync.jobs import backfill, schedule
from sync.jobs.runner import run_job
from sync.simulator import contrary
from sync.simulator.state import SimConfig
from sync.states import JobOutcome
from sync.store import doctor as doctor_store
from tests.flow.conftest import Flow, receipt_body

pytestmark = pytest.mark.anyio
CONTRARY = SimConfig(window_s=1.0, contrary=True)
SUPPLIER = {"name": "Pedro Ramírez Tavárez", "tax_id": "001-0075993-2"}


def _account(flow: Flow) -> AlegraAccount:
    return AlegraAccount(flow.sim.base_url, flow.sim.email, flow.sim.token)


def _budget(flow: Flow) -> RateBudget:
    return RateBudget(flow.sim.config.rate_limit, flow.sim.config.window_s)


@pytest.mark.parametrize("sim_config", [CONTRARY])
async def test_the_built_in_code_is_refused_and_the_learned_one_is_used(flow: Flow) -> None:
    refused = await flow.resource(await flow.process(receipt_body(supplier=SUPPLIER)))
    assert refused["status"] == "failed"
    assert refused["error"]["code"] == "identification_type_refused"

    _, learned = await examine_and_store(flow.db, _account(flow), _budget(flow), ran_by="command")
    assert {s.setting for s in learned} == {"identification_type.RNC",
                                            "identification_type.CEDULA", "ncf_field"}
    done = await flow.resource(await flow.process(
        receipt_body(supplier=SUPPLIER, ncf="B0100000002")))
    assert done["status"] == "completed", done
    bill = flow.sim.state.bills[done["alegra"]["bill_id"]]
    assert bill["numberTemplate"] == [{contrary.NCF_KEY: "B0100000002"}]
    supplier = flow.sim.state.contacts[bill["provider"]["id"]]
    assert supplier["identificationObject"]["type"] == "CE"

    assert await doctor_store.forget(flow.db) == 3
    assert (await doctor_store.company_write_shape(flow.db)).learned == {}


@pytest.mark.parametrize("sim_config", [CONTRARY])
async def test_the_first_backfill_runs_doctor_when_the_account_is_known(flow: Flow) -> None:
    settings = replace(flow.env.settings, bill_backfill_days=10_000)
    ctx = WorkerContext(settings, flow.db, flow.env.alegra, _budget(flow), asyncio.Event(),
                        account=_account(flow))
    assert (await run_job(ctx, schedule.BACKFILL, backfill.run)).outcome == JobOutcome.SUCCESS
    view = await doctor_store.doctor_view(flow.db)
    assert {f["ran_by"] for f in view["findings"]} == {"backfill"}
    assert {s["setting"] for s in view["learned"]} == {
        "identification_type.RNC", "identification_type.CEDULA", "ncf_field"}


async def test_without_the_account_the_backfill_runs_no_doctor(flow: Flow) -> None:
    ctx = WorkerContext(flow.env.settings, flow.db, flow.env.alegra, _budget(flow),
                        asyncio.Event())
    assert (await run_job(ctx, schedule.BACKFILL, backfill.run)).outcome == JobOutcome.SUCCESS
    assert (await doctor_store.doctor_view(flow.db))["findings"] == []
