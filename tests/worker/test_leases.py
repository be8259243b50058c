"""Company leases: the compare-and-set in the store, the fair-share plan, the keeper's renewals,
and the client's guard that refuses to send once the lease may have run out."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from sync.alegra.budget import Priority, RateBudget
from sync.alegra.client import AlegraClient
from sync.alegra.errors import LeaseExpired, Stopping
from sync.flow.lease import host_id
from sync.lease_records import LeaseRecord, WorkerRecord, fair_share, lease_key, plan
from sync.leasing import LeaseKeeper
from sync.settings import SettingsError, load_settings
from sync.store import leases
from sync.store.db import Database
from tests.support.procs import TEST_SECRET_KEY
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.anyio
NOW = "2026-01-01T00:00:10.000000+00:00"
EARLIER = "2026-01-01T00:00:00.000000+00:00"
BETWEEN = "2026-01-01T00:00:20.000000+00:00"
LATER = "2026-01-01T00:00:40.000000+00:00"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def dbs(database_target: Path | str) -> AsyncIterator[tuple[Database, Database]]:
    """Two handles on one store, on each engine: two workers' connections."""
    first = await Database.open(database_target)
    second = await Database.open(database_target)
    yield first, second
    await first.close()
    await second.close()


async def test_two_workers_racing_for_a_lease_take_it_exactly_once(
    dbs: tuple[Database, Database],
) -> None:
    """The compare-and-set admits one taker of a free lease; the other's UPDATE changes nothing,
    and it cannot take the lease while its holder's time runs."""
    a, b = dbs
    await leases.add_leases(a, ["u1"])
    took = await asyncio.gather(
        leases.take(a, "u1", "w-a", now=NOW, expires_at=LATER, companies=["acme"]),
        leases.take(b, "u1", "w-b", now=NOW, expires_at=LATER, companies=["acme"]),
    )
    assert sorted(took) == [False, True]
    [row] = await leases.lease_rows(a)
    loser = "w-b" if row.holder == "w-a" else "w-a"
    assert not await leases.take(b, "u1", loser, now=NOW, expires_at=LATER, companies=[])
    assert row.companies == ("acme",)


async def test_a_lease_that_ran_out_is_taken_and_its_old_holder_learns_it_on_renewal(
    dbs: tuple[Database, Database],
) -> None:
    """Once `expires_at` has passed another worker takes the lease; the old holder's renewal
    then no longer returns it (lost), and a lease handed over is free at once."""
    a, b = dbs
    await leases.add_leases(a, ["u1", "u2"])
    assert await leases.take(a, "u1", "w-a", now=EARLIER, expires_at=NOW, companies=["x"])
    assert await leases.take(a, "u2", "w-a", now=EARLIER, expires_at=LATER, companies=["y"])
    assert await leases.take(b, "u1", "w-b", now=LATER, expires_at=LATER, companies=["x"])

    renewed = await leases.renew(a, _worker("w-a", beat_at=NOW, expires_at=LATER))
    assert renewed == ["u2"]
    assert await leases.release(a, "u2", "w-a")
    assert await leases.take(b, "u2", "w-b", now=NOW, expires_at=LATER, companies=["y"])
    assert not await leases.release(a, "u2", "w-a")  # no longer its own: nothing changes


async def test_the_registry_counts_live_workers_and_a_retired_worker_frees_its_leases(
    dbs: tuple[Database, Database],
) -> None:
    """A worker is live until its beat runs out; retiring frees its leases and unregisters it;
    `lease_of` names the holder of a company for the status."""
    a, _ = dbs
    await leases.add_leases(a, ["u1"])
    await leases.renew(a, _worker("w-a", beat_at=EARLIER, expires_at=NOW))
    await leases.renew(a, _worker("w-b", beat_at=EARLIER, expires_at=LATER))
    assert [w.id for w in await leases.live_workers(a, EARLIER)] == ["w-a", "w-b"]
    assert [w.id for w in await leases.live_workers(a, BETWEEN)] == ["w-b"]
    assert await leases.take(a, "u1", "w-b", now=NOW, expires_at=LATER, companies=["a_c", "b"])

    held = await leases.lease_of(a, "a_c")
    assert held is not None
    assert held.holder == "w-b"
    assert await leases.lease_of(a, "abc") is None  # `_` is no wildcard here
    await leases.retire(a, "w-b")
    assert await leases.lease_of(a, "a_c") is None
    assert [w.id for w in await leases.live_workers(a, EARLIER)] == ["w-a"]


def _worker(worker_id: str, *, beat_at: str, expires_at: str) -> WorkerRecord:
    return WorkerRecord(worker_id, "host", 1, EARLIER, beat_at, expires_at)


def _rows(*holders: str | None) -> list[LeaseRecord]:
    return [LeaseRecord(f"u{n}", holder, LATER if holder else None)
            for n, holder in enumerate(holders, 1)]


def test_three_leases_over_two_workers_settle_two_and_one() -> None:
    """The first worker takes everything while alone; once a second is live, the first hands
    one over (above ceil(3/2) = 2) and the second takes it."""
    wanted = {"u1": ["a"], "u2": ["b"], "u3": ["c"]}
    alone = plan("w-a", [], wanted=wanted, rows=_rows(None, None, None), workers=1, now=NOW)
    assert sorted(alone.take) == ["u1", "u2", "u3"]
    both = plan("w-a", ["u1", "u2", "u3"], wanted=wanted, rows=_rows("w-a", "w-a", "w-a"),
                workers=2, now=NOW)
    assert both.release == ("u3",)
    assert both.take == ()
    newcomer = plan("w-b", [], wanted=wanted, rows=_rows("w-a", "w-a", None), workers=2,
                    now=NOW)
    assert newcomer.take == ("u3",)
    assert fair_share(3, 2) == 2
    assert fair_share(0, 0) == 0


def test_a_lease_no_live_company_needs_is_handed_over_and_run_out_ones_are_taken() -> None:
    """A removed company's lease goes back; a lease whose holder stopped renewing is takeable."""
    wanted = {"u1": ["a"], "u2": ["b"]}
    rows = [LeaseRecord("u1", "w-dead", EARLIER), LeaseRecord("u2", "w-b", LATER),
            LeaseRecord("gone", "w-b", LATER)]
    mine = plan("w-b", ["u2", "gone"], wanted=wanted, rows=rows, workers=1, now=NOW)
    assert mine.release == ("gone",)
    assert mine.take == ("u1",)


def test_a_lease_key_is_its_alegra_users() -> None:
    """Companies of one Alegra user share one lease (one budget); another user has another."""
    assert lease_key(("https://x/api/v1", "a@b.do")) == lease_key(("https://x/api/v1", "a@b.do"))
    assert lease_key(("https://x/api/v1", "a@b.do")) != lease_key(("https://y/api/v1", "a@b.do"))


def test_the_renewal_interval_must_leave_room_for_one_missed_renewal() -> None:
    """WORKER_LEASE_RENEW_S above a third of WORKER_LEASE_S is refused, naming the setting."""
    env = {"SECRET_KEY": TEST_SECRET_KEY, "WORKER_LEASE_S": "30", "WORKER_LEASE_RENEW_S": "11"}
    with pytest.raises(SettingsError, match="WORKER_LEASE_RENEW_S"):
        load_settings(env_file=None, environ=env)
    settings = load_settings(env_file=None, environ={"SECRET_KEY": TEST_SECRET_KEY})
    assert (settings.worker_lease_s, settings.worker_lease_renew_s) == (30.0, 10.0)


async def test_sending_time_counts_from_the_start_of_the_last_successful_renewal(
    dbs: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal that takes 4 s to commit still counts from its start: a fence stays open until
    start + lease - renewal interval, and a renewal that fails extends nothing."""
    db, _ = dbs
    clock = Clock()
    keeper = LeaseKeeper(db, lease_s=30.0, renew_s=10.0, worker_id="host:1:aa", clock=clock)
    await leases.add_leases(db, ["u1"])
    assert await keeper.take("u1", ["acme"])
    fence = keeper.fence("u1")
    slow = _slowed(leases.renew, clock, 4.0)
    monkeypatch.setattr(leases, "renew", slow)
    clock.now += 5.0
    assert await keeper.renew() == []
    assert keeper.held["u1"].send_until == 1005.0 + 20.0

    monkeypatch.setattr(leases, "renew", _failing)
    with pytest.raises(ConnectionError):
        await keeper.renew()
    clock.now = 1024.9
    assert fence.open
    assert keeper.overdue() == []
    clock.now = 1025.0
    assert not fence.open
    assert keeper.overdue() == ["u1"]


def _slowed(
    real: Callable[[Database, WorkerRecord], Awaitable[list[str]]], clock: Clock,
    seconds: float,
) -> Callable[[Database, WorkerRecord], Awaitable[list[str]]]:
    async def renew(db: Database, worker: WorkerRecord) -> list[str]:
        clock.now += seconds
        return await real(db, worker)
    return renew


async def _failing(db: Database, worker: WorkerRecord) -> list[str]:
    raise ConnectionError("the database does not answer")


async def test_the_client_refuses_every_request_once_the_lease_may_have_run_out(
    dbs: tuple[Database, Database], simulator: RunningSimulator
) -> None:
    """With the lease held a POST is sent; once its sending time has passed without renewal
    (the database cut off) the next POST is refused here, LeaseExpired (a Stopping: not a
    failure), and never reaches Alegra; a fence revoked refuses at once too."""
    db, _ = dbs
    clock = Clock()
    keeper = LeaseKeeper(db, lease_s=3.0, renew_s=1.0, worker_id="host:1:aa", clock=clock)
    await leases.add_leases(db, ["u1"])
    assert await keeper.take("u1", ["default"])
    fence = keeper.fence("u1")
    client = AlegraClient(simulator.base_url, simulator.email, simulator.token,
                          RateBudget(limit=100, window_s=1.0), guard=fence.check)
    body = {"name": "Ferretería Ochoa", "type": ["provider"]}
    try:
        await client.post("/contacts", priority=Priority.RECEIPT, json=body)
        clock.now += 2.0
        with pytest.raises(LeaseExpired) as refused:
            await client.post("/contacts", priority=Priority.RECEIPT, json=body)
        assert isinstance(refused.value, Stopping)
        assert simulator.state.calls("POST", "/contacts") == 1

        assert await keeper.renew() == []  # the database answers again: nobody took it
        await client.get("/taxes", priority=Priority.RECEIPT)
        fence.revoke()  # the run stopped for its lease: refused for good, reads too
        with pytest.raises(LeaseExpired):
            await client.get("/taxes", priority=Priority.RECEIPT)
        assert simulator.state.calls("GET", "/taxes") == 1
    finally:
        await client.aclose()


@pytest.fixture
def gone_pid() -> str:
    """The pid of a process of this host that has exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return child.stdout.strip()


async def test_a_lease_of_a_worker_killed_on_this_host_is_taken_at_once(
    dbs: tuple[Database, Database], gone_pid: str
) -> None:
    """A worker restarted after a kill -9 on the same host does not wait out the dead one's
    leases: its process is gone, so they are taken now, and it is not counted as live. A live
    holder's lease, or one on another host, is left to run out."""
    db, _ = dbs
    dead = f"{host_id()}:{gone_pid}:dead"
    await leases.add_leases(db, ["u1", "u2"])
    far = "2999-01-01T00:00:00.000000+00:00"
    await leases.renew(db, WorkerRecord(dead, "h", 1, EARLIER, EARLIER, far))
    assert await leases.take(db, "u1", dead, now=NOW, expires_at=far, companies=["a"])
    assert await leases.take(db, "u2", "elsewhere:1:live", now=NOW, expires_at=far,
                             companies=["b"])
    keeper = LeaseKeeper(db, lease_s=30.0, renew_s=10.0)

    chosen = await keeper.plan({"u1": ["a"], "u2": ["b"]})

    assert chosen.take == ("u1",)  # share: ceil(2 / 1), the dead worker is not counted
    assert await keeper.take("u1", ["a"])
    assert not await keeper.take("u2", ["b"])
