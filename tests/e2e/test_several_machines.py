"""Several machines on one PostgreSQL, end to end (issue 13): real processes on loopback.

Two workers (`python -m sync`) and two web processes (uvicorn, two ports) share one PostgreSQL
database of the test's own; one simulator serves three Alegra accounts, one company each (three
Alegra users, so three leases). Each worker runs as if on a machine of its own: its host name is
`machine-a` or `machine-b` (socket.gethostname replaced before the worker starts), so neither
can tell that the other's pid is gone; a take-over waits for the lease to run out, exactly as
between two hosts. Leases are short here (WORKER_LEASE_S=3, WORKER_LEASE_RENEW_S=1).

- kill -9 of a worker in the middle of a burst of receipts, while one of its bill POSTs has
  been committed by Alegra and never answered: every receipt completes, with exactly one bill
  each in its own company's account (the natural-key lookup after an unknown outcome holds
  across a take-over), and the surviving worker holds every company's lease within the lease
  time. The receipts the killed worker had in flight resume once their own claims run out
  (60 s, sync/flow/lease.py): the survivor cannot tell a dead worker on another host from a live
  one cut off, so this test takes over a minute.
- The database gone in the middle of a webhook burst sent to both web processes for the three
  companies: every delivery acknowledged with a 2xx is in the inbox afterwards, both web
  processes serve again by themselves, and the workers carry on (the inbox is worked, a new
  receipt is billed) without being restarted.

The PostgreSQL outage is NOT a restart of the server (other test sessions share it): the test's
own database refuses connections (`ALTER DATABASE … ALLOW_CONNECTIONS false`) and every session
on it is ended (`pg_terminate_backend`), then connections are allowed again
(tests/pg_web/conftest.py, `ScratchDatabase`). To the processes that is what a restart or a
network cut is: their connections die and new ones are refused for a while.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sync.simulator.state import SimConfig
from sync.store.db import Database
from sync.store.partners import create_partner
from sync.webhook_tokens import make_token
from tests.pg_web.conftest import ScratchDatabase
from tests.support.databases import PgServer
from tests.support.procs import (
    TEST_SECRET_KEY,
    ManagedProcess,
    eventually,
    free_port,
    product_env,
    start_web,
)
from tests.support.servers import RunningSimulator, running_simulator

pytestmark = pytest.mark.e2e

LEASE_S = 3.0
RENEW_S = 1.0
# The survivor holds everything once the lease ran out and its next refresh settled the leases
# (fleet.COMPANIES_POLL_S = 2 s); the rest is room for a loaded 2-core machine. A take-over that
# waited for the receipts' own 60 s claims, or never came, fails.
TAKE_OVER_WITHIN_S = LEASE_S + 2.0 + 10.0
ADDED = {"acme-sa": ("Acme SA", "acme@example.com", "tok-acme-5b1e"),
         "globex-sa": ("Globex SA", "globex@example.com", "tok-globex-9c4d")}
COMPANIES = ("default", *ADDED)
MACHINES = ("machine-a", "machine-b")
RECEIPTS_PER_COMPANY = 15
FINAL = ("completed", "failed", "duplicate")
RETRY_FOR_S = 60.0  # a webhook sender gives a delivery up after this long (the test then fails)

# `python -m sync` with the host name of another machine: the worker's id and its receipts'
# claim owners name that host, so the other worker cannot see its pid die.
WORKER_ON = ("import runpy, socket; socket.gethostname = lambda: {host!r}; "
             "runpy.run_module('sync', run_name='__main__', alter_sys=True)")


def receipt(ncf: str) -> dict[str, Any]:
    return {"supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
            "date": "2026-05-01", "ncf": ncf, "category": "Gastos de oficina",
            "lines": [{"description": "Resmas", "amount": "250.00", "quantity": 2,
                       "tax_rate": 18}]}


@dataclass
class System:
    """The simulator's accounts by company, the database, the processes and a partner key."""

    pg: ScratchDatabase
    accounts: dict[str, RunningSimulator]
    env: dict[str, str]
    log_dir: Path
    webs: list[str] = field(default_factory=list)
    workers: dict[str, ManagedProcess] = field(default_factory=dict)
    procs: list[ManagedProcess] = field(default_factory=list)
    key: str = ""
    admin_key: str = ""

    def start_web(self) -> str:
        port = free_port()
        env = {**self.env, "PORT": str(port), "PUBLIC_URL": f"http://127.0.0.1:{port}"}
        log_dir = self.log_dir / f"web{len(self.webs)}"
        log_dir.mkdir()
        self.procs.append(start_web(env, log_dir))
        self.webs.append(f"http://127.0.0.1:{port}")
        return self.webs[-1]

    def start_worker(self, host: str) -> ManagedProcess:
        args = [sys.executable, "-c", WORKER_ON.format(host=host)]
        proc = ManagedProcess(f"worker-{host}", args, self.env, self.log_dir).start()
        self.workers[host] = proc
        self.procs.append(proc)
        return proc

    def rows(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self.pg.rows(query, params)

    def holders(self) -> dict[str, str | None]:
        """Each lease's holder's host (None: free), by the companies it covers."""
        found: dict[str, str | None] = {}
        for holder, companies in self.rows("SELECT holder, companies FROM company_leases"):
            for company in json.loads(str(companies or "[]")):
                # the holder is "host/pid namespace:pid:random" (sync/flow/lease.py)
                found[company] = (None if holder is None
                                  else str(holder).split(":")[0].split("/")[0])
        return found

    def post(self, web: str, company: str, ncf: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": ncf,
                   "Alegra-Company": company}
        return httpx.post(f"{web}/v1/receipts", json=receipt(ncf), headers=headers, timeout=30)

    def statuses(self) -> dict[str, str]:
        return {str(i): str(s) for i, s in self.rows("SELECT id, status FROM receipts")}

    def bill_outcome(self, receipt_id: str) -> str:
        answer = httpx.get(f"{self.webs[0]}/v1/receipts/{receipt_id}", timeout=10,
                           headers={"Authorization": f"Bearer {self.key}"})
        steps = {s["step"]: s["outcome"] for s in answer.json()["steps"]}
        return str(steps["bill"])

    def bills(self, company: str) -> list[dict[str, Any]]:
        state = self.accounts[company].state
        with state.lock:
            return [dict(bill) for bill in state.bills.values()]

    def logs(self, tail: int = 6000) -> str:
        return "\n".join(f"--- {p.name}\n{p.logs()[-tail:]}" for p in self.procs)


def add_companies(system: System, sim: RunningSimulator) -> None:
    """Two more accounts in the simulator, each added as a company through web A's admin API."""
    for company, (name, email, token) in ADDED.items():
        system.accounts[company] = sim.add_account(email, token)
        added = httpx.post(f"{system.webs[0]}/v1/companies", timeout=10,
                           json={"name": name, "email": email, "token": token},
                           headers={"Authorization": f"Bearer {system.admin_key}"})
        assert added.status_code == 201, added.text
        assert added.json()["id"] == company


def partner(url: str, name: str, *, admin: bool = False) -> str:
    async def make() -> str:
        db = await Database.open(url)
        try:
            companies = COMPANIES if not admin else ("default",)
            return (await create_partner(db, name, admin, companies))[1]
        finally:
            await db.close()

    return asyncio.run(make())


@pytest.fixture
def system(pg_server: PgServer, tmp_path: Path) -> Iterator[System]:
    """Three companies, two web processes and two workers ("two machines") on one database."""
    url = pg_server.create()
    pg = ScratchDatabase(urlsplit(url).path.lstrip("/"), url)
    config = SimConfig(window_s=1.0, delivery_retry_delays=(0.05, 0.05), handshake_timeout_s=5.0)
    with running_simulator(config) as sim:
        env = product_env(tmp_path / "unused.db", alegra_base_url=sim.base_url,
                          email=sim.email, token=sim.token, port=free_port(), DATABASE_URL=url,
                          ALEGRA_RATE_WINDOW_S="1", WORKER_LEASE_S=f"{LEASE_S:g}",
                          WORKER_LEASE_RENEW_S=f"{RENEW_S:g}", LOG_LEVEL="info")
        running = System(pg, {"default": sim}, env, tmp_path)
        try:
            running.admin_key = partner(url, "ops", admin=True)
            running.start_web()
            running.start_web()
            add_companies(running, sim)
            running.key = partner(url, "acme")
            for host in MACHINES:
                running.start_worker(host)
            try:
                eventually(lambda: set(running.holders()) == set(COMPANIES)
                           and set(running.holders().values()) == set(MACHINES), 30,
                           "the three companies' leases spread over both workers")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{running.logs()}") from None
            yield running
        finally:
            for proc in reversed(running.procs):
                proc.stop()
            pg.bring_up()
            pg_server.drop(url)


def test_a_worker_killed_in_a_burst_of_receipts_loses_none_and_bills_none_twice(
    system: System,
) -> None:
    """kill -9 of the worker holding two companies while one of its bill POSTs hangs after
    Alegra committed it: every receipt completes with one bill, the other worker takes all."""
    holders = system.holders()
    victim = max(MACHINES, key=lambda host: list(holders.values()).count(host))
    survivor = next(host for host in MACHINES if host != victim)
    hung = next(company for company, host in holders.items() if host == victim)
    for company in COMPANIES:
        system.accounts[company].state.faults.latency_s = 0.05  # a burst that lasts a while

    jobs = [(system.webs[n % 2], company, f"B01{index:02d}{n:06d}")
            for index, company in enumerate(COMPANIES) for n in range(RECEIPTS_PER_COMPANY)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda job: system.post(*job), jobs))
    assert [a.status_code for a in answers] == [202] * len(jobs), [a.text for a in answers][:3]
    posted = {a.json()["id"]: company for a, (_, company, _) in zip(answers, jobs, strict=True)}
    # Once the supplier and the account exist, the company's next write is a bill: Alegra
    # commits it and never answers.
    eventually(lambda: system.bills(hung), 30, f"a first bill of {hung}")
    system.accounts[hung].state.faults.update({"hang_after_commit": 1, "hang_s": 120.0})
    eventually(lambda: system.accounts[hung].state.faults.hang_after_commit == 0, 30,
               f"a bill POST of {hung} committed and hanging")
    eventually(lambda: sum(s == "completed" for s in system.statuses().values()) >= 5, 30,
               "some receipts completed before the kill")
    assert any(s not in FINAL for s in system.statuses().values()), "the burst ended too soon"
    system.workers[victim].kill9()
    killed_at = time.monotonic()

    eventually(lambda: set(system.holders().values()) == {survivor}, TAKE_OVER_WITHIN_S,
               f"{survivor} holding every company\n{system.logs()}")
    taken_over_s = time.monotonic() - killed_at
    eventually(lambda: all(s in FINAL for s in system.statuses().values()), 120,
               f"every receipt final\n{system.logs()}")

    statuses = system.statuses()
    assert {statuses[r] for r in posted} == {"completed"}, statuses
    for company in COMPANIES:
        bills = system.bills(company)
        ours = [r for r, c in posted.items() if c == company]
        billed = {r: sum(r in str(b.get("observations") or "") for b in bills) for r in ours}
        assert billed == dict.fromkeys(ours, 1), (company, billed)
        assert len(bills) == RECEIPTS_PER_COMPANY, company
    # The hung bill was committed and never answered; one bill for its receipt means the
    # survivor found it by its marker instead of sending it again.
    outcomes = [system.bill_outcome(r) for r, c in posted.items() if c == hung]
    assert "found" in outcomes, outcomes
    print(f"take-over after kill -9: {taken_over_s:.1f} s (WORKER_LEASE_S={LEASE_S:g})")


def delivery(contact: str, marker: str) -> bytes:
    """An edit of one of the account's contacts; `marker` tells the deliveries apart."""
    return json.dumps({"subject": "edit-client", "marker": marker,
                       "message": {"client": {"id": contact}}}).encode()


@dataclass
class Burst:
    """Senders that deliver like Alegra (again after a non-2xx, until a 2xx) to both web
    processes, for the three companies in turn."""

    targets: list[tuple[str, str]]  # (URL with the company's token, a contact of its account)
    acked: dict[int, bytes] = field(default_factory=dict)  # inbox id its 2xx gave → body sent
    statuses: dict[int, int] = field(default_factory=dict)
    given_up: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def send(self, sender: int) -> None:
        with httpx.Client(timeout=10.0) as client:
            n = 0
            while not self.stop.is_set():
                url, contact = self.targets[(sender + n) % len(self.targets)]
                self.deliver(client, url, delivery(contact, f"s{sender}-{n}"))
                n += 1

    def deliver(self, client: httpx.Client, url: str, body: bytes) -> None:
        give_up_at = time.monotonic() + RETRY_FOR_S
        while time.monotonic() < give_up_at:
            try:
                response = client.post(url, content=body)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            with self.lock:
                self.statuses[response.status_code] = self.statuses.get(
                    response.status_code, 0) + 1
                if 200 <= response.status_code < 300:
                    self.acked[int(response.json()["id"])] = body
                    return
            time.sleep(0.1)
        with self.lock:
            self.given_up.append(body)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def webhook_targets(system: System) -> list[tuple[str, str]]:
    """For each web process and company: the company's webhook URL there, and a contact typed
    in its account."""
    targets = []
    for company in COMPANIES:
        contact = system.accounts[company].state.person_create_contact(
            name=f"Proveedor {company}", type=["provider"])
        token = make_token([TEST_SECRET_KEY], company=company)
        targets += [(f"{web}/webhooks/alegra/{token}", str(contact["id"]))
                    for web in system.webs]
    return targets


def ready(web: str) -> int:
    try:
        return httpx.get(f"{web}/readyz", timeout=10).status_code
    except httpx.HTTPError:
        return 0


def test_the_database_gone_in_a_webhook_burst_loses_no_acknowledged_delivery(
    system: System,
) -> None:
    """Every delivery answered 2xx by either web process is in the inbox afterwards; both web
    processes and both workers carry on by themselves once the database is back."""
    burst = Burst(webhook_targets(system))
    senders = [threading.Thread(target=burst.send, args=(i,)) for i in range(6)]
    for sender in senders:
        sender.start()
    try:
        eventually(lambda: burst.count() >= 200, 60, "200 deliveries acknowledged")
        with system.pg.down():
            eventually(lambda: all(ready(web) == 503 for web in system.webs), 30,
                       "/readyz to say 503 on both web processes")
            time.sleep(2.0)  # the burst meets the outage for a while longer
        before = burst.count()
        eventually(lambda: burst.count() >= before + 200, 60,
                   f"200 more deliveries acknowledged after the database is back\n{system.logs()}")
    finally:
        burst.stop.set()
        for sender in senders:
            sender.join(timeout=RETRY_FOR_S + 10)

    assert burst.statuses.get(503), f"the outage was never met: {burst.statuses}"
    assert set(burst.statuses) <= {200, 503}, burst.statuses  # never a 500
    assert burst.given_up == []
    stored = {int(i): bytes(body) for i, body in system.rows("SELECT id, body FROM inbox")}
    lost = [i for i, body in burst.acked.items() if stored.get(i) != body]
    assert not lost, f"{len(lost)} acknowledged deliveries not stored as answered"
    assert [ready(web) for web in system.webs] == [200, 200], system.logs()

    eventually(lambda: not system.rows("SELECT id FROM inbox WHERE state IN ('received',"
                                       " 'failed')"), 90, f"the inbox worked\n{system.logs()}")
    answer = system.post(system.webs[1], "globex-sa", "B0100000001")
    assert answer.status_code == 202, answer.text
    eventually(lambda: system.statuses()[answer.json()["id"]] == "completed", 60,
               f"a receipt billed after the outage\n{system.logs()}")
    assert len(system.bills("globex-sa")) == 1
    assert all(proc.alive for proc in system.procs), system.logs()
