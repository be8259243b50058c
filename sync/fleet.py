"""The worker's companies: one set of lanes per live company, each calling Alegra as that company.

One read every `RECEIPTS_LOOK_S` (`EVENTS_LOOK_S`) asks which companies have receipts ready
(webhook deliveries due) and wakes those companies' lanes, so hundreds of idle companies cost
the database no more than one. Every `COMPANIES_POLL_S` the fleet reads which companies are
live: a new one's lanes start (its
backfill is due at once, `jobs.scheduler.prepare`), a removed one's stop after their current
step. Companies whose Alegra user is the same (e-mail at one base URL) share one `RateBudget`:
Alegra counts its 150 requests a minute per user. Every other company has its own budget, its
own receipt slots and its own lanes, so no company's backlog, backfill or webhook burst takes a
slot or a request another company could use.

Credentials Alegra refuses (401, 402, 403) put the company in `needs_attention`: its lanes stop
(receipts wait, queued, instead of failing), and every `ATTENTION_PROBE_S` one cheap request asks
whether they work again; when they do the company is active and its lanes start again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sync.alegra import resources
from sync.alegra.budget import Priority, RateBudget
from sync.alegra.client import AlegraAccount, AlegraClient, build_client
from sync.alegra.errors import AlegraError
from sync.context import Lane, WorkerContext
from sync.logs import get_logger
from sync.settings import Settings
from sync.states import CompanyState
from sync.store import inbox, receipt_work
from sync.store.db import Database

COMPANIES_POLL_S = 2.0
RECEIPTS_LOOK_S = 0.1  # how often one read asks which companies have receipts ready
EVENTS_LOOK_S = 0.5  # ... and webhook deliveries to work
ATTENTION_PROBE_S = 60.0
REFUSED = frozenset({401, 402, 403})


@dataclass(frozen=True)
class CompanyAccount:
    """A live company as the worker needs it: its id, state and Alegra account."""

    company: str
    state: CompanyState
    account: AlegraAccount


LoadCompanies = Callable[[], Awaitable[list[CompanyAccount]]]
SetState = Callable[[str, CompanyState, str | None], Awaitable[None]]
OnResponse = Callable[[str, str, str, int | None, float], None]  # company first


@dataclass
class _Running:
    """One company's lanes: its context (own stop event) and the task that runs them."""

    ctx: WorkerContext
    task: asyncio.Task[None]
    refused: asyncio.Event = field(default_factory=asyncio.Event)


class Fleet:
    """Starts, stops and pauses the lanes of every live company (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        stopping: asyncio.Event,
        *,
        lanes: list[tuple[str, Lane]],
        load: LoadCompanies,
        set_state: SetState,
        on_response: OnResponse | None = None,
    ) -> None:
        self.settings, self.db, self.stopping = settings, db, stopping
        self.lanes, self.load, self.set_state = lanes, load, set_state
        self.on_response = on_response
        self.budgets: dict[tuple[str, str], RateBudget] = {}
        self.running: dict[str, _Running] = {}
        self.paused: dict[str, asyncio.Task[None]] = {}
        self.log = get_logger(component="fleet")

    def budget_for(self, account: AlegraAccount) -> RateBudget:
        """The budget of the account's Alegra user, shared by its companies."""
        budget = self.budgets.get(account.user)
        if budget is None:
            settings = self.settings
            budget = RateBudget(limit=settings.rate_limit, window_s=settings.rate_window_s)
            budget.stop_waiting_on(self.stopping)
            self.budgets[account.user] = budget
        return budget

    async def run(self) -> None:
        """Until the worker stops: follow the companies table and wake the lanes that have work;
        then stop every company's lanes."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._every(COMPANIES_POLL_S, self.refresh))
                group.create_task(self._every(RECEIPTS_LOOK_S, self.wake_receipts))
                group.create_task(self._every(EVENTS_LOOK_S, self.wake_events))
        finally:
            await self._stop_all()

    async def _every(self, period_s: float, look: Callable[[], Awaitable[None]]) -> None:
        while not self.stopping.is_set():
            try:
                await look()
            except Exception:
                self.log.exception("fleet.look_failed", look=look.__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), period_s)

    async def wake_receipts(self) -> None:
        """One read for every company: wake the receipts lane of each that has one ready."""
        for company in await receipt_work.companies_with_ready_work(self.db):
            running = self.running.get(company)
            if running is not None and running.ctx.receipts_ready is not None:
                running.ctx.receipts_ready.set()

    async def wake_events(self) -> None:
        """One read for every company: wake the events lane of each that has deliveries due."""
        for company in await inbox.companies_with_due_events(self.db):
            running = self.running.get(company)
            if running is not None and running.ctx.events_due is not None:
                running.ctx.events_due.set()

    async def refresh(self) -> None:
        """Start lanes for new active companies, pause refused ones, stop removed ones."""
        companies = {c.company: c for c in await self.load()}
        for company in [c for c in self.running if c not in companies]:
            await self._stop(company, reason="removed")
        for company in [c for c in self.paused if c not in companies]:
            self.paused.pop(company).cancel()
        for entry in companies.values():
            await self._follow(entry)

    async def _follow(self, entry: CompanyAccount) -> None:
        running = self.running.get(entry.company)
        refused = running is not None and running.refused.is_set()
        if entry.state == CompanyState.NEEDS_ATTENTION or refused:
            await self._stop(entry.company, reason="needs_attention")
            probing = self.paused.get(entry.company)
            if probing is None or probing.done():  # a probe that failed: probe again
                self.paused[entry.company] = asyncio.create_task(self._probe(entry))
            return
        probe = self.paused.pop(entry.company, None)  # an operator's check found them working
        if probe is not None:
            probe.cancel()
        if running is None:
            self._start(entry)

    def _start(self, entry: CompanyAccount) -> None:
        budget = self.budget_for(entry.account)
        refused, stopping = asyncio.Event(), asyncio.Event()
        client = build_client(  # the company's stop ends its own waits on the shared budget
            self.settings, budget, account=entry.account, stopping=stopping,
            on_response=self._observer(entry.company, refused),
        )
        ctx = WorkerContext(
            self.settings, self.db.for_company(entry.company), client, budget, stopping,
            company=entry.company, receipts_ready=asyncio.Event(), events_due=asyncio.Event(),
            account=entry.account,
        )
        budget.stop_waiting_on(self.stopping)  # shared: the worker's stop, not one company's
        task = asyncio.create_task(self._lanes(ctx), name=f"company:{entry.company}")
        self.running[entry.company] = _Running(ctx, task, refused)
        self.log.info("company.started", company=entry.company)

    def _observer(
        self, company: str, refused: asyncio.Event
    ) -> Callable[[str, str, int | None, float], None]:
        def observe(method: str, path: str, status: int | None, seconds: float) -> None:
            if status in REFUSED:
                refused.set()
            if self.on_response is not None:
                self.on_response(company, method, path, status, seconds)
        return observe

    async def _lanes(self, ctx: WorkerContext) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for name, lane in self.lanes:
                    group.create_task(guarded(name, lane, ctx), name=f"{ctx.company}:{name}")
                group.create_task(self._watch_refusals(ctx))
        finally:
            await ctx.alegra.aclose()

    async def _watch_refusals(self, ctx: WorkerContext) -> None:
        """When Alegra refuses the company's credentials: needs_attention, lanes stop."""
        running = self.running[ctx.company]
        refused = asyncio.ensure_future(running.refused.wait())
        stopped = asyncio.ensure_future(ctx.stopping.wait())
        try:
            await asyncio.wait({refused, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            refused.cancel()
            stopped.cancel()
        if running.refused.is_set() and not ctx.stopping.is_set():
            self.log.warning("company.needs_attention", company=ctx.company)
            await self.set_state(ctx.company, CompanyState.NEEDS_ATTENTION,
                                 "Alegra refused the credentials (401, 402 or 403)")
            ctx.stopping.set()

    async def _probe(self, entry: CompanyAccount) -> None:
        """Every ATTENTION_PROBE_S, one cheap request; when it is answered, active again."""
        client = build_client(self.settings, self.budget_for(entry.account), account=entry.account)
        try:
            while not self.stopping.is_set():
                if await credentials_work(client):
                    await self.set_state(entry.company, CompanyState.ACTIVE, None)
                    self.log.info("company.credentials_work_again", company=entry.company)
                    self.paused.pop(entry.company, None)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), ATTENTION_PROBE_S)
        except Exception:  # e.g. the state not written: the next refresh probes again
            self.log.exception("company.probe_failed", company=entry.company)
        finally:
            await client.aclose()

    async def _stop(self, company: str, *, reason: str) -> None:
        running = self.running.pop(company, None)
        if running is None:
            return
        running.ctx.stopping.set()
        await asyncio.gather(running.task, return_exceptions=True)
        self.log.info("company.stopped", company=company, reason=reason)

    async def _stop_all(self) -> None:
        for task in self.paused.values():
            task.cancel()
        for running in self.running.values():
            running.ctx.stopping.set()
        await asyncio.gather(*(r.task for r in self.running.values()), return_exceptions=True)
        self.running.clear()


async def credentials_work(client: AlegraClient) -> bool:
    """One cheap authenticated read (the taxes list): False when Alegra refuses the account."""
    try:
        await resources.list_taxes(client, priority=Priority.BACKGROUND)
    except AlegraError:  # refused (AuthFailed), or no answer: not known to work
        return False
    return True


async def guarded(name: str, lane: Lane, ctx: WorkerContext) -> None:
    """Run a lane; if it crashes, log it and restart it after a pause (the others keep going)."""
    log = get_logger(lane=name, company=ctx.company)
    while not ctx.stopping.is_set():
        try:
            await lane(ctx)
        except Exception:
            log.exception("worker.lane_crashed")
            if await ctx.sleep(5.0):
                return
        else:
            return
