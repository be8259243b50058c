"""Several workers on one store, in one test process: each a `Fleet` with its own `Database`
handle (SQLite: two connections to one file; PostgreSQL: two pools). Each company's lanes run in
one worker at a time; the companies spread over the workers; a worker that stops answering
loses its companies; a take-over in the middle of a receipt creates nothing twice."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sync import fleet as fleet_module
from sync.alegra.budget import Priority
from sync.alegra.client import AlegraAccount
from sync.alegra.errors import LeaseExpired
from sync.context import Lane, WorkerContext
from sync.fleet import CompanyAccount, Fleet
from sync.flow import lease as lease_module
from sync.flow.lane import run as receipts_lane
from sync.receipt_model import parse_submission
from sync.receipt_resource import receipt_resource
from sync.settings import Settings
from sync.states import CompanyState
from sync.status import worker_summary
from sync.store import leases, receipt_work, receipts
from sync.store.db import Connection, Database, Row
from sync.store.partners import create_partner
from sync.store.sql import Params
from tests.flow.conftest import receipt_body
from tests.jobs.conftest import sim_settings
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.anyio
SHORT_LEASE = {"WORKER_LEASE_S": "1.5", "WORKER_LEASE_RENEW_S": "0.5"}


@dataclass
class Halt:
    """Freezes a worker's store handle, as a process stopped dead looks from the database: from
    `frozen` on, every new statement waits; once `dead`, it fails (the test's clean-up)."""

    frozen: asyncio.Event = field(default_factory=asyncio.Event)
    dead: asyncio.Event = field(default_factory=asyncio.Event)

    async def check(self) -> None:
        if self.frozen.is_set():
            await self.dead.wait()
            raise ConnectionError("this worker is dead")


class FreezableDatabase(Database):
    halt: Halt | None = None

    async def _check(self) -> None:
        if self.halt is not None:
            await self.halt.check()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        await self._check()
        async with super().transaction() as conn:
            yield conn

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        await self._check()
        return await super().fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        await self._check()
        return await super().fetchall(sql, params)


class Journal:
    """When each worker's lanes for each company started and ended, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []  # (start | end, worker, company)

    def lane(self, worker: str) -> Lane:
        async def lane(ctx: WorkerContext) -> None:
            self.events.append(("start", worker, ctx.company))
            try:
                await ctx.stopping.wait()
            finally:
                self.events.append(("end", worker, ctx.company))
        return lane

    def overlaps(self) -> list[str]:
        """Companies whose lanes ran in two workers at once (none, ever)."""
        active: dict[str, set[str]] = {}
        found = []
        for kind, worker, company in self.events:
            holders = active.setdefault(company, set())
            if kind == "start":
                if holders - {worker}:
                    found.append(company)
                holders.add(worker)
            else:
                holders.discard(worker)
        return found


@dataclass
class Worker:
    """One worker: a fleet on its own store handle, running until stopped."""

    name: str
    fleet: Fleet
    halt: Halt
    task: asyncio.Task[None] | None = None

    def start(self) -> Worker:
        self.task = asyncio.create_task(self.fleet.run(), name=f"worker:{self.name}")
        return self

    def running(self) -> set[str]:
        return {c for c, r in self.fleet.running.items()
                if not r.ctx.stopping.is_set() and r.fence.open}

    async def stop(self) -> None:
        self.halt.dead.set()
        self.fleet.stopping.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        await self.fleet.db.close()


@dataclass
class Deployment:
    """Workers sharing one store and one list of live companies."""

    simulator: RunningSimulator
    settings: Settings
    target: Path | str
    companies: dict[str, CompanyAccount] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)

    def add_company(self, company: str, account: AlegraAccount | None = None) -> None:
        sim = self.simulator
        account = account or AlegraAccount(sim.base_url, f"{company}@example.do", "t0ken-x")
        self.companies[company] = CompanyAccount(company, CompanyState.ACTIVE, account)

    async def load(self) -> list[CompanyAccount]:
        return list(self.companies.values())

    async def set_state(self, company: str, state: CompanyState, reason: str | None) -> None:
        entry = self.companies[company]
        self.companies[company] = CompanyAccount(company, state, entry.account)

    async def worker(self, name: str, lanes: list[tuple[str, Lane]],
                     on_response: fleet_module.OnResponse | None = None) -> Worker:
        halt = Halt()
        db = await FreezableDatabase.open(self.target)
        db.halt = halt
        fleet = Fleet(self.settings, db, asyncio.Event(), lanes=lanes, load=self.load,
                      set_state=self.set_state, on_response=on_response,
                      worker_id=f"host-{name}:{os.getpid()}:{name}")  # hosts apart
        worker = Worker(name, fleet, halt)
        self.workers.append(worker)
        return worker

    async def close(self) -> None:
        for worker in self.workers:
            await worker.stop()


@pytest.fixture
async def deployment(
    simulator: RunningSimulator, tmp_path: Path, database_target: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Deployment]:
    monkeypatch.setattr(fleet_module, "COMPANIES_POLL_S", 0.05)
    settings = sim_settings(simulator, tmp_path, **SHORT_LEASE)
    made = Deployment(simulator, settings, database_target)
    try:
        yield made
    finally:
        await made.close()


async def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def spread(*workers: Worker) -> list[int]:
    return sorted(len(w.running()) for w in workers)


async def test_three_companies_spread_two_and_one_and_a_new_worker_takes_its_share(
    deployment: Deployment,
) -> None:
    """One worker alone holds all three companies; a second one gets one of them (2 + 1, and
    it stays so), a third one its own (1 + 1 + 1). No company's lanes ever ran in two workers
    at once, and every lease row names the worker running its company."""
    journal = Journal()
    for company in ("c1", "c2", "c3"):
        deployment.add_company(company)
    a = (await deployment.worker("a", [("lane", journal.lane("a"))])).start()
    await until(lambda: a.running() == {"c1", "c2", "c3"})

    b = (await deployment.worker("b", [("lane", journal.lane("b"))])).start()
    await until(lambda: spread(a, b) == [1, 2])
    for _ in range(10):  # settled: it stays 2 + 1 through many refreshes
        await asyncio.sleep(0.05)
        assert spread(a, b) == [1, 2]
    assert a.running() | b.running() == {"c1", "c2", "c3"}
    await _leases_name_the_runners(deployment, a, b)

    c = (await deployment.worker("c", [("lane", journal.lane("c"))])).start()
    await until(lambda: spread(a, b, c) == [1, 1, 1])
    assert journal.overlaps() == []
    await _leases_name_the_runners(deployment, a, b, c)


async def _leases_name_the_runners(deployment: Deployment, *workers: Worker) -> None:
    """The status of each company names the worker running it, and counts the live ones."""
    db = deployment.workers[0].fleet.db
    for worker in workers:
        for company in worker.running():
            shown = await worker_summary(db.for_company(company), datetime.now(UTC))
            assert shown["holder"] == worker.fleet.leases.worker_id
            assert shown["live_workers"] == len(workers)


async def test_a_worker_that_stops_answering_loses_its_companies_within_the_lease(
    deployment: Deployment,
) -> None:
    """Two workers share three companies; one freezes (its database calls hang, as if killed):
    its fences close and its lanes stop once its sending time runs out, then the other worker
    takes its leases, after their expiry and never before, and runs all three."""
    journal = Journal()
    for company in ("c1", "c2", "c3"):
        deployment.add_company(company)
    a = (await deployment.worker("a", [("lane", journal.lane("a"))])).start()
    await until(lambda: a.running() == {"c1", "c2", "c3"})
    b = (await deployment.worker("b", [("lane", journal.lane("b"))])).start()
    await until(lambda: spread(a, b) == [1, 2])
    lost = a.running()

    a.halt.frozen.set()
    await until(lambda: b.running() == {"c1", "c2", "c3"})

    assert a.running() == set()
    assert journal.overlaps() == []
    rows = {row.key: row for row in await leases.lease_rows(b.fleet.db)}
    for company in lost:
        row = rows[deployment.companies[company].lease]
        assert row.holder == b.fleet.leases.worker_id
    took = [e for e in journal.events if e[0] == "start" and e[1] == "b" and e[2] in lost]
    assert len(took) == len(lost)


async def test_a_worker_cut_off_from_the_database_stops_sending_before_another_starts(
    deployment: Deployment,
) -> None:
    """Worker A's lane keeps writing to Alegra, without looking at its stop signal; A's store is
    cut off. Once its lease may have run out A's client refuses the next write (LeaseExpired,
    nothing sent), and only then, after the lease's expiry, does worker B start writing for
    the company: every write Alegra received came from one holder at a time."""
    sim = deployment.simulator
    deployment.add_company("default", AlegraAccount(sim.base_url, sim.email, sim.token))
    sent: list[str] = []
    refused: list[str] = []

    def writer(worker: str) -> Lane:
        async def lane(ctx: WorkerContext) -> None:
            while True:
                try:
                    await ctx.alegra.post("/contacts", priority=Priority.RECEIPT,
                                          json={"name": f"{worker} {len(sent)}"})
                except LeaseExpired:
                    refused.append(worker)
                    return
                sent.append(worker)
                await asyncio.sleep(0.02)
        return lane

    a = (await deployment.worker("a", [("writer", writer("a"))])).start()
    await until(lambda: sent.count("a") >= 3)
    (await deployment.worker("b", [("writer", writer("b"))])).start()
    a.halt.frozen.set()
    await until(lambda: sent.count("b") >= 3)

    assert refused[:1] == ["a"]
    first_b = sent.index("b")
    assert "a" not in sent[first_b:]
    assert sim.state.calls("POST", "/contacts") == len(sent)


async def test_a_take_over_of_a_lease_that_ran_out_leaves_the_old_holders_receipt_claims(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Worker A (on another host, so not known dead) holds a receipt's claim; its company lease
    ran out. Worker B takes the lease, but leaves the receipt alone while A's claim lasts: A may
    be alive, its POST sent before its fence closed still in flight, and B's lookup would miss
    what that POST creates a moment later. Once A's claim runs out, B completes the receipt."""
    monkeypatch.setattr(lease_module, "LEASE_S", 3.0)
    sim = deployment.simulator
    deployment.add_company("default", AlegraAccount(sim.base_url, sim.email, sim.token))
    b = await deployment.worker("b", [("receipts", receipts_lane)])
    db = b.fleet.db
    receipt_id = await _submit(db)
    a_owner = f"host-a:{os.getpid()}:lane"
    claimed = await receipt_work.claim_next(db, owner=a_owner, lease_s=lease_module.LEASE_S)
    assert claimed is not None
    assert claimed.receipt_id == receipt_id
    key = deployment.companies["default"].lease
    await leases.add_leases(db, [key])
    ran_out = "2000-01-01T00:00:00.000000+00:00"
    assert await leases.take(db, key, f"host-a:{os.getpid()}:a", now=ran_out,
                             expires_at=ran_out, companies=["default"])

    b.start()
    await until(lambda: b.running() == {"default"})
    await asyncio.sleep(0.5)  # many looks for ready receipts (every 0.1 s)
    row = await db.fetchone("SELECT status, lease_owner FROM receipts WHERE id = ?",
                            (receipt_id,))
    assert row is not None
    assert (row["status"], row["lease_owner"]) == ("processing", a_owner)

    resource = await _completed(db, receipt_id)
    assert resource["alegra"]["bill_id"] is not None
    assert len(sim.state.bills) == 1


@pytest.mark.parametrize("created", ["/contacts", "/categories", "/bills"])
async def test_a_take_over_after_a_write_alegra_made_but_the_store_never_recorded_finds_it(
    deployment: Deployment, created: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Worker A sends the receipt's POST (the supplier, the expense account or the bill) and
    Alegra creates it; A then freezes before its store records it (as a kill -9 would). Worker B
    takes the company once A's lease has run out, resumes the receipt at that step once A's
    claim on it has run out too (short here), finds what A created by its natural key, and
    completes the receipt: nothing is created twice."""
    monkeypatch.setattr(lease_module, "LEASE_S", 3.0)
    monkeypatch.setattr(lease_module, "RENEW_EVERY_S", 0.5)
    sim = deployment.simulator
    deployment.add_company("default", AlegraAccount(sim.base_url, sim.email, sim.token))
    lanes: list[tuple[str, Lane]] = [("receipts", receipts_lane)]
    holder: list[Worker] = []

    def freeze_after_the_write(company: str, method: str, path: str, status: int | None,
                               seconds: float) -> None:
        if (method, path, status) == ("POST", created, 201):
            holder[0].halt.frozen.set()

    a = await deployment.worker("a", lanes, on_response=freeze_after_the_write)
    holder.append(a)
    a.start()
    await until(lambda: a.running() == {"default"})
    b = (await deployment.worker("b", lanes)).start()
    categories_before = len(sim.state.categories)
    receipt_id = await _submit(b.fleet.db)

    await until(a.halt.frozen.is_set)
    resource = await _completed(b.fleet.db, receipt_id)

    step = {"/contacts": "supplier", "/categories": "account", "/bills": "bill"}[created]
    steps = {one["step"].split(":")[0]: one["outcome"] for one in resource["steps"]}
    assert steps[step] == "found"
    assert sim.state.calls("POST", created) == 1
    assert len(sim.state.contacts) == 1
    assert len(sim.state.categories) == categories_before + 1
    [bill] = sim.state.bills.values()
    assert resource["alegra"]["bill_id"] == bill["id"]


async def _submit(db: Database) -> str:
    partner, _ = await create_partner(db, "partner")
    submission = parse_submission(receipt_body(), max_attachment_bytes=1 << 20)
    receipt_id, _ = await receipts.insert_receipt(
        db, partner_id=partner.id, idempotency_key="k1", submission=submission)
    return receipt_id


async def _completed(db: Database, receipt_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        row = await receipts.get_receipt(db, receipt_id, None)
        assert row is not None
        if row.status == "completed":
            return receipt_resource(row, await receipts.get_steps(db, receipt_id))
        assert asyncio.get_running_loop().time() < deadline, f"receipt still {row.status}"
        await asyncio.sleep(0.05)
