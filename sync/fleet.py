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

Any number of workers may share the database: a company's lanes (and its probe) run only in the
worker that holds its lease, one per Alegra user (`sync/leasing.py`). Each refresh first settles
the leases (hand over above the fair share, take below it), then starts and stops lanes to
match; a lease lost (taken, or not renewed in time) revokes its runs' fences and stops their
lanes at once. A lease taken from a worker known dead (its process gone from this host) frees
the claims on its companies' receipts in `processing`, so they resume here at once. A lease that
ran out does not: its earlier holder may be alive, with a write sent before its fence closed
still in flight (the fence stops new requests, not answers that are late), so its receipts
resume only once their own claims run out (`sync/flow/lease.py` LEASE_S), when a write that got
through is found by its natural key. What lives in this process per company (the budget's
view, the creation locks, the events lane's grouping of deliveries) is therefore only ever used
by the company's holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sync.alegra import resources
from sync.alegra.budget import Priority, RateBudget
from sync.alegra.client import AlegraAccount, AlegraClient, build_client
from sync.alegra.errors import AlegraError
from sync.context import Lane, WorkerContext
from sync.lease_records import lease_key
from sync.leasing import Fence, LeaseKeeper
from sync.logs import get_logger
from sync.settings import Settings
from sync.states import CompanyState
from sync.store import inbox, receipt_work
from sync.store.db import Database, DatabaseUnavailable

COMPANIES_POLL_S = 2.0
RECEIPTS_LOOK_S = 0.1  # how often one read asks which companies have receipts ready
EVENTS_LOOK_S = 0.5  # ... and webhook deliveries to work
ATTENTION_PROBE_S = 60.0
RENEW_RETRY_S = 1.0  # after a failed renewal, try again this soon
OVERDUE_LOOK_S = 0.5  # how often leases whose sending time ran out are looked for
REFUSED = frozenset({401, 402, 403})
# Calls that waited for a connection through the outage fail this long after it ended (the
# pool's wait, sync/store/engine_pg.py POOL_TIMEOUT_S, and a little): not a new outage.
STRAGGLERS_S = 6.0
LANE_RETRY_S = 5.0  # a lane that crashed, or found the database away, starts again after this


@dataclass(frozen=True)
class CompanyAccount:
    """A live company as the worker needs it: its id, state and Alegra account."""

    company: str
    state: CompanyState
    account: AlegraAccount

    @property
    def lease(self) -> str:
        """The lease that holds it: its Alegra user's (one rate budget, one holder)."""
        return lease_key(self.account.user)


class Outage:
    """The worker's view of the database answering: one line when it stops (whichever look or
    lane finds it first), one when it answers again (the heartbeat's write, every HEARTBEAT_S,
    says so); not a traceback per look while it is away. The looks and lanes retry meanwhile;
    the pool reconnects when the server is back."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.back_at = -STRAGGLERS_S
        self.log = get_logger(component="database")

    def failed(self, exc: DatabaseUnavailable, where: str) -> None:
        now = time.monotonic()
        if self.since is None and now - self.back_at >= STRAGGLERS_S:
            self.since = now
            self.log.warning("database.unavailable", where=where, error=str(exc)[:300])

    def answered(self) -> None:
        if self.since is not None:
            self.back_at = time.monotonic()
            self.log.info("database.back", after_s=round(self.back_at - self.since, 1))
            self.since = None


LoadCompanies = Callable[[], Awaitable[list[CompanyAccount]]]
SetState = Callable[[str, CompanyState, str | None], Awaitable[None]]
OnResponse = Callable[[str, str, str, int | None, float], None]  # company first


@dataclass
class _Running:
    """One company's lanes: its context (own stop event) and the task that runs them."""

    ctx: WorkerContext
    task: asyncio.Task[None]
    fence: Fence
    refused: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def lease(self) -> str:
        return self.fence.held.key


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
        worker_id: str | None = None,
    ) -> None:
        self.settings, self.db, self.stopping = settings, db, stopping
        self.lanes, self.load, self.set_state = lanes, load, set_state
        self.on_response = on_response
        self.budgets: dict[tuple[str, str], RateBudget] = {}
        self.running: dict[str, _Running] = {}
        self.paused: dict[str, asyncio.Task[None]] = {}
        self.leases = LeaseKeeper.for_settings(db, settings, worker_id)
        self.known: dict[str, str] = {}  # live company → its lease, as of the last refresh
        self.balanced = False  # a first refresh settled the leases
        self.log = get_logger(component="fleet", worker=self.leases.worker_id)
        self.outage = Outage()

    def holds(self, company: str) -> bool:
        """Whether this worker holds the company's lease (it runs, or may run, its lanes)."""
        return self.known.get(company) in self.leases.held

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
                group.create_task(self.keep_leases())
                group.create_task(self._every(OVERDUE_LOOK_S, self.drop_overdue))
                group.create_task(self._every(COMPANIES_POLL_S, self.refresh))
                group.create_task(self._every(RECEIPTS_LOOK_S, self.wake_receipts))
                group.create_task(self._every(EVENTS_LOOK_S, self.wake_events))
        finally:
            await self._stop_all()
            await self._retire()

    async def keep_leases(self) -> None:
        """Renew this worker's leases every WORKER_LEASE_RENEW_S (RENEW_RETRY_S after a
        failure); a lease another worker took stops its companies' lanes at once."""
        while not self.stopping.is_set():
            wait = self.settings.worker_lease_renew_s
            try:
                for key in await self.leases.renew():
                    self._lose(key, reason="taken")
            except DatabaseUnavailable as exc:  # the fences count down meanwhile
                self.outage.failed(exc, "keep_leases")
                wait = min(wait, RENEW_RETRY_S)
            except Exception as exc:  # the store did not answer: the fences count down
                self.log.warning("lease.renew_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                wait = min(wait, RENEW_RETRY_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), wait)

    async def drop_overdue(self) -> None:
        """Stop the lanes of leases not renewed in time (their fences refuse already)."""
        for key in self.leases.overdue():
            self._lose(key, reason="not_renewed")

    def _lose(self, key: str, *, reason: str) -> None:
        """The lease is no longer ours: nothing more is sent for its companies, their lanes
        stop (the next refresh collects them) and their probes end."""
        companies = [c for c, r in self.running.items() if r.lease == key]
        for company in companies:
            self.running[company].fence.revoke()
            self.running[company].ctx.stopping.set()
        for company in [c for c in self.paused if self._lease_of(c) == key]:
            self.paused.pop(company).cancel()
        self.log.warning("lease.lost", lease=key, reason=reason, companies=companies)

    def _lease_of(self, company: str) -> str | None:
        return self.known.get(company)

    async def _retire(self) -> None:
        try:
            await self.leases.retire()
        except Exception:  # the store is gone: the leases run out by themselves
            self.log.exception("lease.retire_failed")

    async def _every(self, period_s: float, look: Callable[[], Awaitable[None]]) -> None:
        while not self.stopping.is_set():
            try:
                await look()
            except DatabaseUnavailable as exc:
                self.outage.failed(exc, look.__name__)
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
        """Settle the leases; then, among the companies they hold, start lanes for new active
        ones, pause refused ones; stop the lanes of every other company."""
        companies = {c.company: c for c in await self.load()}
        self.known = {company: entry.lease for company, entry in companies.items()}
        held = await self._balance(companies)
        ours = {c: entry for c, entry in companies.items() if entry.lease in held}
        for company in [c for c in self.running if c not in ours]:
            await self._stop(company, reason="removed" if company not in companies else "not_held")
        for company in [c for c in self.paused if c not in ours]:
            self.paused.pop(company).cancel()
        for entry in ours.values():
            await self._follow(entry)

    async def _balance(self, companies: dict[str, CompanyAccount]) -> set[str]:
        """Hand over the leases above the fair share (lanes stopped first), take what is free
        below it; returns the leases held now."""
        wanted: dict[str, list[str]] = {}
        for company, entry in companies.items():
            wanted.setdefault(entry.lease, []).append(company)
        plan = await self.leases.plan(wanted)
        for key in plan.release:
            await self._hand_over(key)
        for key in plan.take:
            from_dead = self.leases.held_by_dead(key)
            if await self.leases.take(key, wanted[key]):
                self.log.info("lease.taken", lease=key, companies=wanted[key])
                if from_dead:  # else its holder's claims run out first (module docstring)
                    for company in wanted[key]:
                        await receipt_work.free_claims(self.db.for_company(company))
        await self.leases.describe(wanted)
        self.balanced = True
        return set(self.leases.held)

    async def _hand_over(self, key: str) -> None:
        """Stop the lease's lanes (each after its current step), then free it for another."""
        for company in [c for c, r in self.running.items() if r.lease == key]:
            await self._stop(company, reason="handed_over")
        for company in [c for c in self.paused if self._lease_of(c) == key]:
            self.paused.pop(company).cancel()
        await self.leases.release(key)
        self.log.info("lease.handed_over", lease=key)

    async def _follow(self, entry: CompanyAccount) -> None:
        if entry.lease not in self.leases.held:  # lost since the leases were settled
            return
        running = self.running.get(entry.company)
        if running is not None and running.ctx.stopping.is_set() and not running.refused.is_set():
            await self._stop(entry.company, reason="lease_lost")  # collected: held again now
            running = None
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
        fence = self.leases.fence(entry.lease)
        client = build_client(  # the company's stop ends its own waits on the shared budget
            self.settings, budget, account=entry.account, stopping=stopping,
            on_response=self._observer(entry.company, refused), guard=fence.check,
        )
        ctx = WorkerContext(
            self.settings, self.db.for_company(entry.company), client, budget, stopping,
            company=entry.company, receipts_ready=asyncio.Event(), events_due=asyncio.Event(),
            account=entry.account,
        )
        budget.stop_waiting_on(self.stopping)  # shared: the worker's stop, not one company's
        task = asyncio.create_task(self._lanes(ctx), name=f"company:{entry.company}")
        self.running[entry.company] = _Running(ctx, task, fence, refused)
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
                    group.create_task(guarded(name, lane, ctx, self.outage),
                                      name=f"{ctx.company}:{name}")
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
        client = build_client(self.settings, self.budget_for(entry.account), account=entry.account,
                              guard=self.leases.fence(entry.lease).check)
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


async def guarded(name: str, lane: Lane, ctx: WorkerContext, outage: Outage | None = None) -> None:
    """Run a lane; if it crashes, log it and restart it after a pause (the others keep going).
    The database gone away is `outage`'s one line, not a traceback per lane."""
    log = get_logger(lane=name, company=ctx.company)
    while not ctx.stopping.is_set():
        try:
            await lane(ctx)
        except DatabaseUnavailable as exc:
            if outage is None:
                log.warning("worker.lane_database_unavailable", error=str(exc)[:300])
            else:
                outage.failed(exc, f"{ctx.company}:{name}")
            if await ctx.sleep(LANE_RETRY_S):
                return
        except Exception:
            log.exception("worker.lane_crashed")
            if await ctx.sleep(LANE_RETRY_S):
                return
        else:
            return
