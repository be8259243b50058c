"""The worker's fleet: one set of lanes per live company, budgets per Alegra user, and a company
whose credentials Alegra refuses paused until they work again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sync import fleet as fleet_module
from sync.alegra.budget import Priority
from sync.alegra.client import AlegraAccount
from sync.alegra.errors import Stopping
from sync.context import Lane, WorkerContext
from sync.fleet import CompanyAccount, Fleet, SetState
from sync.receipt_model import parse_submission
from sync.states import CompanyState
from sync.store import receipts
from sync.store.companies import add_company
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.jobs.conftest import sim_settings
from tests.receipts_api.conftest import receipt_body
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.anyio


class Companies:
    """What the fleet reads from the companies table, held in memory by the test."""

    def __init__(self, simulator: RunningSimulator) -> None:
        self.simulator = simulator
        self.account = AlegraAccount(simulator.base_url, simulator.email, simulator.token)
        self.entries: dict[str, CompanyAccount] = {}
        self.states: list[tuple[str, CompanyState]] = []

    def add(self, company: str, account: AlegraAccount | None = None) -> None:
        self.entries[company] = CompanyAccount(
            company, CompanyState.ACTIVE, account or self.account
        )

    def fleet(self, tmp_path: Path, db: Database, lane: Lane, set_state: SetState | None = None
              ) -> Fleet:
        """A fleet over these companies running `lane` for each, on the simulator's settings."""
        return Fleet(sim_settings(self.simulator, tmp_path), db, asyncio.Event(),
                     lanes=[("lane", lane)], load=self.load,
                     set_state=set_state or self.set_state)

    async def load(self) -> list[CompanyAccount]:
        return list(self.entries.values())

    async def set_state(self, company: str, state: CompanyState, reason: str | None) -> None:
        self.states.append((company, state))
        entry = self.entries[company]
        self.entries[company] = CompanyAccount(company, state, entry.account)


class Seen:
    """A lane that records the contexts it ran with, then waits for its stop."""

    def __init__(self) -> None:
        self.contexts: list[WorkerContext] = []

    async def lane(self, ctx: WorkerContext) -> None:
        self.contexts.append(ctx)
        await ctx.stopping.wait()

    def companies(self) -> list[tuple[str, str]]:
        return [(c.company, c.db.company) for c in self.contexts]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    opened = await Database.open(tmp_path / "fleet.db")
    yield opened
    await opened.close()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_each_live_company_gets_lanes_on_a_store_scoped_to_it(
    simulator: RunningSimulator, tmp_path: Path, db: Database
) -> None:
    """Two companies: each lane runs once per company, its store handle scoped to that company."""
    companies, seen = Companies(simulator), Seen()
    companies.add("default")
    companies.add("acme")
    fleet = companies.fleet(tmp_path, db, seen.lane)
    await fleet.refresh()
    await settle()
    assert sorted(seen.companies()) == [("acme", "acme"), ("default", "default")]
    await fleet._stop_all()


async def test_a_removed_company_stops_and_the_others_keep_running(
    simulator: RunningSimulator, tmp_path: Path, db: Database
) -> None:
    """A company gone from the live list has its lanes stopped; the other's keep running."""
    companies, seen = Companies(simulator), Seen()
    companies.add("default")
    companies.add("acme")
    fleet = companies.fleet(tmp_path, db, seen.lane)
    await fleet.refresh()
    await settle()
    del companies.entries["acme"]
    await fleet.refresh()
    stopped = {c.company: c.stopping.is_set() for c in seen.contexts}
    assert stopped == {"default": False, "acme": True}
    assert set(fleet.running) == {"default"}
    await fleet._stop_all()


async def test_companies_of_one_alegra_user_share_a_budget_and_others_have_their_own(
    simulator: RunningSimulator, tmp_path: Path, db: Database
) -> None:
    """Alegra counts per user: the same e-mail at one base URL is one budget, another is not."""
    companies, seen = Companies(simulator), Seen()
    companies.add("default")
    companies.add("twin", AlegraAccount(simulator.base_url, simulator.email.upper(), "other"))
    companies.add("other", AlegraAccount(simulator.base_url, "someone@else.example", "t0ken!"))
    fleet = companies.fleet(tmp_path, db, seen.lane)
    await fleet.refresh()
    budgets = {name: running.ctx.budget for name, running in fleet.running.items()}
    assert budgets["default"] is budgets["twin"]
    assert budgets["other"] is not budgets["default"]
    await fleet._stop_all()


async def test_refused_credentials_pause_the_company_until_they_work_again(
    simulator: RunningSimulator, tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alegra answers 401: the company goes to needs_attention and its lanes stop; once its
    credentials are accepted again the probe makes it active and its lanes start again."""
    monkeypatch.setattr(fleet_module, "ATTENTION_PROBE_S", 0.05)
    companies, calls = Companies(simulator), Seen()

    async def calling_lane(ctx: WorkerContext) -> None:
        calls.contexts.append(ctx)
        with contextlib.suppress(fleet_module.AlegraError):
            await ctx.alegra.get("/taxes", priority=fleet_module.Priority.BACKGROUND)
        await ctx.stopping.wait()

    companies.add("default")
    fleet = companies.fleet(tmp_path, db, calling_lane)
    simulator.state.faults.update({"error_rate": 1.0, "error_status": 401})
    await fleet.refresh()
    await _until(lambda: companies.states == [("default", CompanyState.NEEDS_ATTENTION)])
    await fleet.refresh()
    assert "default" not in fleet.running
    assert calls.contexts[0].stopping.is_set()

    simulator.state.faults.update({"error_rate": 0.0})
    await _until(lambda: companies.states[-1] == ("default", CompanyState.ACTIVE))
    await fleet.refresh()
    assert "default" in fleet.running
    await _until(lambda: len(calls.contexts) == 2)
    await fleet._stop_all()


async def _until(condition: object, timeout_s: float = 20.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_one_read_wakes_only_the_companies_with_ready_receipts(
    simulator: RunningSimulator, tmp_path: Path, db: Database
) -> None:
    """The fleet's one look across companies wakes the receipts lane of the company that has a
    ready receipt, and not the idle one's."""
    await add_company(db, "Acme", "acme@example.do", b"sealed")
    companies, seen = Companies(simulator), Seen()
    companies.add("default")
    companies.add("acme")
    fleet = companies.fleet(tmp_path, db, seen.lane)
    await fleet.refresh()
    partner, _ = await create_partner(db, "partner", companies=("default", "acme"))
    submission = parse_submission(receipt_body(), max_attachment_bytes=4096)
    await receipts.insert_receipt(db.for_company("acme"), partner_id=partner.id,
                                  idempotency_key="k", submission=submission)

    await fleet.wake_receipts()

    woken = {name: running.ctx.receipts_ready for name, running in fleet.running.items()}
    assert woken["acme"] is not None
    assert woken["acme"].is_set()
    assert woken["default"] is not None
    assert not woken["default"].is_set()
    await fleet._stop_all()


async def test_a_removed_company_waiting_on_a_shared_budget_stops_at_once(
    simulator: RunningSimulator, tmp_path: Path, db: Database
) -> None:
    """A company removed while its lane waits on the budget it shares with another company stops
    at once (its wait ends in Stopping), so the fleet's refresh is not held up by it, and the
    other company's lanes keep waiting on the budget as before."""
    outcomes: dict[str, str] = {}

    async def lane(ctx: WorkerContext) -> None:
        try:
            await ctx.alegra.get("/taxes", priority=Priority.BACKGROUND)
            outcomes[ctx.company] = "sent"
        except Stopping:
            outcomes[ctx.company] = "stopped"
        await ctx.stopping.wait()

    companies = Companies(simulator)
    companies.add("default")
    companies.add("acme")  # the same Alegra user: one budget
    settings = sim_settings(simulator, tmp_path, ALEGRA_RATE_LIMIT="3", ALEGRA_RATE_WINDOW_S="60")
    fleet = Fleet(settings, db, asyncio.Event(), lanes=[("wait", lane)], load=companies.load,
                  set_state=companies.set_state)
    budget = fleet.budget_for(companies.account)
    for _ in range(3):  # the window is spent: every request now waits up to a minute
        await budget.acquire(Priority.RECEIPT)
    await fleet.refresh()
    await settle()
    del companies.entries["acme"]
    await asyncio.wait_for(fleet.refresh(), 2.0)
    assert set(fleet.running) == {"default"}
    assert outcomes == {"acme": "stopped"}
    await fleet._stop_all()


async def test_a_probe_that_failed_is_started_again_by_the_next_refresh(
    simulator: RunningSimulator, tmp_path: Path, db: Database
) -> None:
    """A probe whose write of the company's state failed (the store busy) does not leave the
    company paused for good: the next refresh probes again, and the company becomes active."""
    companies, seen = Companies(simulator), Seen()
    companies.add("acme")
    companies.entries["acme"] = CompanyAccount(
        "acme", CompanyState.NEEDS_ATTENTION, companies.account)
    failures = [RuntimeError("database is locked")]

    async def set_state(company: str, state: CompanyState, reason: str | None) -> None:
        if failures:
            raise failures.pop()
        await companies.set_state(company, state, reason)

    fleet = companies.fleet(tmp_path, db, seen.lane, set_state=set_state)
    await fleet.refresh()
    with contextlib.suppress(RuntimeError):
        await asyncio.wait_for(fleet.paused["acme"], 5.0)
    await fleet.refresh()
    await asyncio.wait_for(fleet.paused["acme"], 5.0)
    assert companies.states == [("acme", CompanyState.ACTIVE)]
    await fleet.refresh()
    await settle()
    assert seen.companies() == [("acme", "acme")]
    await fleet._stop_all()
