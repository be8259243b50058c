"""Which companies this worker may call Alegra for: its leases (issue 13, many workers).

A lease is one Alegra user, the companies that share its rate budget (`sync/lease_records.py`),
so a budget has one spender and a company one holder. Each worker registers in `workers` with
an id of its own ("host:pid:random") and, every `WORKER_LEASE_RENEW_S`, renews its registry row
and all its leases to `WORKER_LEASE_S` from now in one transaction (`sync/store/leases.py`).
Each refresh of the fleet it plans: live workers and wanted leases give the fair share
(ceil(leases / workers)); a worker above it hands leases over (its lanes stopped first, between
steps, then the row freed), a worker below it takes free or run-out ones by compare-and-set.

Sending is fenced locally, not only in the database: a lease counts for this process until
`WORKER_LEASE_S - WORKER_LEASE_RENEW_S` after the START of its last successful renewal (or
taking), measured with `time.monotonic()`, so neither a clock set wrong nor a database that
stopped answering lets a request out after that. Another worker may take the lease only once its
`expires_at` (the start of that renewal plus `WORKER_LEASE_S`) has passed: the renewal interval
between the two is the room for a request in flight and for clocks that differ between
machines. Every Alegra request of a company's lanes asks its run's `Fence` first
(`AlegraClient`'s guard) and is refused with `LeaseExpired` (a `Stopping`: nothing sent, the
work resumes with the next holder) once the lease may have run out or another worker holds it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sync.alegra.errors import LeaseExpired
from sync.flow.lease import holder_is_dead, host_id
from sync.lease_records import LeasePlan, WorkerRecord, plan
from sync.settings import Settings
from sync.store import leases
from sync.store.db import Database, utcnow

Clock = Callable[[], float]
# The store handle's scope for lease statements. They name no company's rows; on PostgreSQL a
# transaction holds its scope's advisory lock, and this one keeps renewals apart from the
# default company's writes (the compare-and-set needs no lock of its own).
LEASES_SCOPE = "(leases)"


def new_worker_id() -> str:
    """This worker's id: unique per process start, naming its host and pid for operators, in
    the form of the receipts' claim owners, so `holder_is_dead` reads both: a worker restarted
    on the host of one killed there (kill -9, OOM) takes its leases at once, without waiting
    for them to run out."""
    return f"{host_id()}:{os.getpid()}:{secrets.token_hex(4)}"


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


@dataclass
class HeldLease:
    """A lease this worker holds, and until when (monotonic) it may send for its companies."""

    key: str
    send_until: float


@dataclass
class Fence:
    """What one run of a company's lanes asks before every Alegra request (the client's guard).
    Revoked for good once the run is stopped for its lease; a new run gets a new fence."""

    held: HeldLease
    clock: Clock = time.monotonic
    revoked: bool = False

    def revoke(self) -> None:
        self.revoked = True

    @property
    def open(self) -> bool:
        return not self.revoked and self.clock() < self.held.send_until

    def check(self, method: str, path: str) -> None:
        """Raise LeaseExpired when the request must not be sent."""
        if not self.open:
            raise LeaseExpired(
                f"not sending {method} {path}: this worker's lease on the company may have run"
                " out or another worker holds it"
            )


@dataclass
class LeaseKeeper:
    """This worker's registry row and leases: renewing, planning, taking, handing over."""

    db: Database
    lease_s: float
    renew_s: float
    worker_id: str = field(default_factory=new_worker_id)
    clock: Clock = time.monotonic
    held: dict[str, HeldLease] = field(default_factory=dict)
    renewed: bool = False  # registered (a first renewal succeeded)
    started_at: str = field(default_factory=utcnow)
    _described: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _dead: dict[str, str] = field(default_factory=dict)  # lease → its holder, known dead
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def for_settings(
        cls, db: Database, settings: Settings, worker_id: str | None = None
    ) -> LeaseKeeper:
        keeper = cls(db.for_company(LEASES_SCOPE), settings.worker_lease_s,
                     settings.worker_lease_renew_s)
        if worker_id is not None:
            keeper.worker_id = worker_id
        return keeper

    def _send_until(self, started: float) -> float:
        return started + self.lease_s - self.renew_s

    def fence(self, key: str) -> Fence:
        """A new fence on a held lease, for a run of its companies' lanes."""
        return Fence(self.held[key], self.clock)

    def _me(self, now: str, expires_at: str) -> WorkerRecord:
        host, pid, _ = self.worker_id.rsplit(":", 2)
        return WorkerRecord(self.worker_id, host, int(pid), self.started_at, now, expires_at)

    async def renew(self) -> list[str]:
        """Beat, and extend every lease held. Returns the keys another worker holds now (lost);
        a lease dropped as overdue that nobody took is held again. Raises on a store error."""
        async with self._lock:
            started = self.clock()
            kept = set(await leases.renew(self.db, self._me(utcnow(), _in(self.lease_s))))
            self.renewed = True
            lost = [key for key in self.held if key not in kept]
            for key in lost:
                self._drop(key)
            for key in kept:
                self.held.setdefault(key, HeldLease(key, 0.0)).send_until = self._send_until(
                    started)
            return lost

    def overdue(self) -> list[str]:
        """Leases whose sending time ran out without a renewal: dropped (their runs must stop)."""
        now = self.clock()
        late = [key for key, held in self.held.items() if now >= held.send_until]
        for key in late:
            self._drop(key)
        return late

    def _drop(self, key: str) -> None:
        self.held.pop(key, None)
        self._described.pop(key, None)

    async def plan(self, wanted: Mapping[str, Collection[str]]) -> LeasePlan:
        """What to hand over and what to try to take, for the leases the live companies need
        (`wanted`: lease key → its companies)."""
        if not self.renewed:
            await self.renew()  # registered first: the other workers count this one
        rows = await leases.lease_rows(self.db)
        missing = [key for key in wanted if key not in {row.key for row in rows}]
        if missing:
            await leases.add_leases(self.db, missing)
            rows = await leases.lease_rows(self.db)
        now = utcnow()
        self._dead = {row.key: row.holder for row in rows
                      if row.holder and holder_is_dead(row.holder, self.worker_id)}
        workers = [w for w in await leases.live_workers(self.db, now)
                   if not holder_is_dead(w.id, self.worker_id)]
        return plan(self.worker_id, list(self.held), wanted=wanted, rows=rows,
                    workers=len(workers), now=now, dead=set(self._dead.values()))

    def held_by_dead(self, key: str) -> bool:
        """Whether, at the last `plan`, the lease's holder was a worker known dead (not one whose
        lease only ran out: that one may be alive, with a request still in flight)."""
        return key in self._dead

    async def take(self, key: str, companies: Collection[str]) -> bool:
        """Take the lease if it is free or ran out (compare-and-set). True when taken."""
        async with self._lock:
            started = self.clock()
            taken = await leases.take(self.db, key, self.worker_id, now=utcnow(),
                                      expires_at=_in(self.lease_s), companies=companies,
                                      dead_holder=self._dead.get(key))
            if taken:
                self.held[key] = HeldLease(key, self._send_until(started))
                self._described[key] = tuple(sorted(companies))
            return taken

    async def release(self, key: str) -> None:
        """Hand the lease over now (its companies' lanes must be stopped already)."""
        async with self._lock:
            self._drop(key)
            await leases.release(self.db, key, self.worker_id)

    async def describe(self, wanted: Mapping[str, Collection[str]]) -> None:
        """Keep each held lease's list of companies current (what the status shows)."""
        for key in list(self.held):
            companies = tuple(sorted(wanted.get(key, ())))
            if self._described.get(key) != companies:
                await leases.describe(self.db, key, self.worker_id, companies)
                self._described[key] = companies

    async def retire(self) -> None:
        """Stopping cleanly: every lease free at once, and out of the registry."""
        async with self._lock:
            self.held.clear()
            await leases.retire(self.db, self.worker_id)
