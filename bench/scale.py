"""Scale benchmark (issue 13): several workers and web processes on one PostgreSQL, against
SQLite's one of each, all real processes on loopback.

    .venv/bin/python bench/scale.py [--companies 8] [--receipts 150] [--rounds 1]
                                    [--lease-s 30] [--renew-s 10] [--skip-webhooks]

PostgreSQL comes from TEST_DATABASE_URL, else 127.0.0.1:5432 as user postgres (as for the tests,
tests/support/databases.py); every run gets a database of its own, dropped afterwards. Without a
server the bench says so and exits 0 (it is not in `make bench` for that reason's sake: it needs
a server on this machine, whose backends' CPU it reads from /proc).

    webhook acks/s      bench/webhooks_engines.py's runs: the bare endpoint (a do-nothing ASGI
                        app, same uvicorn, same client), the web process on SQLite, the web
                        process on PostgreSQL; no worker
    receipts/s          the worker(s) working a backlog stored while none ran: `--receipts` per
                        company, `--companies` companies, each its own Alegra user (so its own
                        lease) with a limit Alegra never reaches (100,000 requests a second),
                        every cache warm (one call per receipt: the bill). One worker on SQLite
                        (the baseline: SQLite allows one), then one and two on PostgreSQL. The
                        rate is counted from the moment the workers' leases have settled (and a
                        first receipt completed) to the last completion.
    CPU ms per receipt  utime + stime over that span (/proc/<pid>/stat) of each worker, of the
                        PostgreSQL backends serving the database, and of the simulator (which
                        shares the machine's cores), divided by the receipts completed; and
                        PostgreSQL's transactions per receipt (pg_stat_database), the polling
                        of this bench (5 reads a second) included; and what its active
                        backends wait for (pg_stat_activity sampled every 20 ms)
    take-over           two workers on PostgreSQL, each as if on a machine of its own (its host
                        name replaced, so neither can see the other's pid die), WORKER_LEASE_S /
                        WORKER_LEASE_RENEW_S as given; kill -9 of the one holding more leases, a
                        receipt stored at once for each of its companies: seconds from the kill
                        until the survivor holds every lease, and until those receipts are
                        completed. Then the same on one host (real host names), where the
                        survivor sees the pid gone and need not wait for the lease.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sync.settings import load_settings  # noqa: E402
from sync.store.db import Database  # noqa: E402
from tests.support.databases import server_url  # noqa: E402
from tests.support.procs import ManagedProcess, free_port, product_env  # noqa: E402

# The companies bench's set-up (simulator, accounts, companies, the store's receipt insert) and
# the engines bench's fresh stores and webhook runs, imported by name (mypy sees bench/ as
# top-level modules, as bench/webhooks_wrk.py does).
_CO: Any = importlib.import_module("bench.companies")
_ENG: Any = importlib.import_module("bench.webhooks_engines")
_WH: Any = importlib.import_module("bench.webhooks")

NO_LIMIT = 100_000  # requests per window: Alegra is never the limit
WINDOW_S = 1.0
WORKER_ON = ("import runpy, socket; socket.gethostname = lambda: {host!r}; "
             "runpy.run_module('sync', run_name='__main__', alter_sys=True)")


@dataclass
class Throughput:
    label: str
    receipts: int
    span_s: float
    cpu_s: dict[str, float] = field(default_factory=dict)  # process → CPU over the span
    transactions: int = 0  # PostgreSQL's, over the span (this bench's polling included)
    idle: dict[str, float] = field(default_factory=dict)  # process → share of a core, idle
    waits: Counter[str] = field(default_factory=Counter)  # PostgreSQL's active backends

    @property
    def per_s(self) -> float:
        return self.receipts / self.span_s if self.span_s else 0.0

    def ms(self, name: str) -> float:
        return self.cpu_s.get(name, 0.0) * 1000 / self.receipts if self.receipts else 0.0


@dataclass
class TakeOver:
    label: str
    held_s: float
    flowing_s: float


@dataclass
class Stage:
    """One store with the simulator, its companies and a partner; workers come and go."""

    bench: Any  # bench.companies.Bench
    store: Any  # bench.webhooks_engines.Store
    companies: list[Any]
    target: Path | str  # what Database.open takes
    workers: list[ManagedProcess] = field(default_factory=list)

    def start_worker(self, name: str, host: str | None = None, **env: str) -> ManagedProcess:
        args = ([sys.executable, "-m", "sync"] if host is None
                else [sys.executable, "-c", WORKER_ON.format(host=host)])
        proc = ManagedProcess(name, args, {**self.bench.env, **env}, self.bench.work).start()
        self.workers.append(proc)
        return proc

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.stop()
        self.workers.clear()

    def backend_cpu_s(self) -> float:
        return float(self.store.backend_cpu_s())


def sim_pid(bench: Any) -> int:
    return int(bench.procs[0].proc.pid)


async def count_completed(db: Database) -> int:
    return int(await db.scalar("SELECT COUNT(*) FROM receipts WHERE status = 'completed'") or 0)


async def holders(db: Database) -> dict[str, str | None]:
    rows = await db.fetchall("SELECT holder, companies FROM company_leases")
    found: dict[str, str | None] = {}
    for row in rows:
        for company in json.loads(str(row[1] or "[]")):
            found[company] = None if row[0] is None else str(row[0])
    return found


async def until(check: Any, what: str, within_s: float = 180.0, every_s: float = 0.02) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every_s)
    raise TimeoutError(f"timed out waiting for {what}")


@contextmanager
def staged(engine: str, args: argparse.Namespace, work: Path, run: int) -> Iterator[Stage]:
    """A fresh store on `engine`, the simulator with one account per company, the companies
    stored, every cache warmed by a worker that is then stopped."""
    ns = argparse.Namespace(window_s=WINDOW_S, concurrency=args.concurrency)
    with _ENG.fresh_store(engine, work, run) as store, _CO.bench_processes(ns) as bench:
        companies = [_CO.Company(f"co-{n + 1:02d}", NO_LIMIT) for n in range(args.companies)]
        _CO.start_simulator(bench, NO_LIMIT)
        db_path = work / f"run{run}.db"
        bench.env = product_env(
            db_path, alegra_base_url=f"{bench.sim_url}/api/v1", email=_CO.DEFAULT_EMAIL,
            token=_CO.DEFAULT_TOKEN, port=free_port(), LOG_LEVEL="info",
            DATABASE_URL=store.url, ALEGRA_RATE_LIMIT=str(NO_LIMIT),
            ALEGRA_RATE_WINDOW_S=str(WINDOW_S), RECEIPT_CONCURRENCY=str(args.concurrency),
            WORKER_LEASE_S=f"{args.lease_s:g}", WORKER_LEASE_RENEW_S=f"{args.renew_s:g}")
        settings = load_settings(env_file=None, environ=bench.env)
        stage = Stage(bench, store, companies, settings.database_target)
        try:
            asyncio.run(_warm(stage, settings))
            yield stage
        finally:
            stage.stop_workers()


async def _warm(stage: Stage, settings: Any) -> None:
    """Companies stored, then a worker warms every cache (backfill, the supplier) and stops."""
    db = await Database.open(stage.target)
    try:
        await _CO.add_accounts(stage.bench, stage.companies)
        await _CO.add_companies(settings, db, stage.companies)
        stage.start_worker("warm-up")
        await _CO.warm_up(stage.bench, db, stage.companies)
    finally:
        stage.stop_workers()
        await db.close()


async def settled(db: Database, wanted: set[str], workers: int) -> bool:
    """Every lease held, by `workers` workers, none above its fair share."""
    held = await holders(db)
    by = [h for c, h in held.items() if c in wanted and h is not None]
    share = -(-len(wanted) // workers)
    return (len(by) == len(wanted) and len(set(by)) == workers
            and max(by.count(h) for h in set(by)) <= share)


async def throughput(stage: Stage, label: str, workers: int, args: argparse.Namespace
                     ) -> Throughput:
    """Store the backlog, start `workers` workers, measure from the moment their leases have
    settled (and a first receipt completed) until the backlog is worked."""
    db = await Database.open(stage.target)
    try:
        partner = await _CO.partner_id(db)
        ids: list[str] = []
        for company in stage.companies:
            ids += await _CO.store(stage.bench, db, company.id, partner, args.receipts)
        before = await count_completed(db)
        procs = [stage.start_worker(f"{label}-{n}") for n in range(workers)]
        wanted = {c.id for c in stage.companies} | {"default"}

        async def started() -> bool:
            return await count_completed(db) > before and await settled(db, wanted, workers)

        await until(started, "the leases settled and a first completion", every_s=0.005)
        pids = {f"worker {n + 1}": int(p.proc.pid) for n, p in enumerate(procs)  # type: ignore[union-attr]
                } | {"simulator": sim_pid(stage.bench)}
        sampler = WaitSampler(stage.store.pg_name)
        sampler.start()
        cpu0 = {name: _CO.cpu_seconds(pid) for name, pid in pids.items()}
        pg0, xact0 = stage.backend_cpu_s(), transactions(stage)
        t0, done0 = time.monotonic(), await count_completed(db)
        await _CO.wait_final(db, ids, what=f"{label}'s backlog", within_s=600)
        t1, done1 = time.monotonic(), await count_completed(db)
        sampler.stop()
        cpu = {name: _CO.cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        if stage.store.pg_name is not None:
            cpu["PostgreSQL"] = stage.backend_cpu_s() - pg0
        idle = await idle_cpu(stage, pids)
        stage.stop_workers()  # their backends exit, which flushes their statistics
        xacts = transactions(stage) - xact0
        return Throughput(label, done1 - done0, t1 - t0, cpu, xacts, idle, sampler.waits)
    finally:
        stage.stop_workers()
        await db.close()


async def idle_cpu(stage: Stage, pids: dict[str, int], seconds: float = 5.0
                   ) -> dict[str, float]:
    """Each process's share of a core with the backlog worked and nothing to do: what the
    workers' looks, renewals and heartbeats cost whatever the traffic."""
    cpu0 = {name: _CO.cpu_seconds(pid) for name, pid in pids.items() if name != "simulator"}
    pg0 = stage.backend_cpu_s()
    await asyncio.sleep(seconds)
    found = {name: (_CO.cpu_seconds(pids[name]) - before) / seconds
             for name, before in cpu0.items()}
    if stage.store.pg_name is not None:
        found["PostgreSQL"] = (stage.backend_cpu_s() - pg0) / seconds
    return found


WAIT_CLASSES = {("IO", "WALSync"): "WAL flush", ("LWLock", "WALWrite"): "WAL flush",
               ("Lock", "advisory"): "company lock", ("Client", "ClientRead"): "the worker",
               (None, None): "CPU"}


class WaitSampler(threading.Thread):
    """What the database's active backends wait for, sampled every 20 ms (pg_stat_activity):
    on the CPU, on a WAL flush (the commit's fsync), on a company's advisory lock, on the
    worker (ClientRead: a transaction open while the worker computes), or something else."""

    def __init__(self, name: str | None) -> None:
        super().__init__(daemon=True)
        self.database = name
        self.waits: Counter[str] = Counter()
        self.done = threading.Event()

    def run(self) -> None:
        if self.database is None:
            return
        with psycopg.connect(server_url(), autocommit=True) as conn:
            while not self.done.wait(0.02):
                for kind, event in conn.execute(
                        "SELECT wait_event_type, wait_event FROM pg_stat_activity"
                        " WHERE datname = %s AND state = 'active'", (self.database,)):
                    self.waits[WAIT_CLASSES.get((kind, event), "other")] += 1

    def stop(self) -> None:
        self.done.set()
        self.join()


def transactions(stage: Stage) -> int:
    """Transactions committed or rolled back in the PostgreSQL database so far (0 on SQLite);
    as the statistics collector knows them (a running backend reports at most every second)."""
    if stage.store.pg_name is None:
        return 0
    with psycopg.connect(server_url(), autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database"
                           " WHERE datname = %s", (stage.store.pg_name,)).fetchone()
    return int(row[0]) if row else 0


async def take_over(stage: Stage, label: str, hosts: tuple[str | None, str | None]) -> TakeOver:
    """Two workers settled; kill -9 of the one holding more; a receipt for each of its
    companies at once: until the survivor holds all, until those receipts are completed."""
    db = await Database.open(stage.target)
    try:
        procs = [stage.start_worker(f"{label}-{n}", host) for n, host in enumerate(hosts)]
        wanted = {c.id for c in stage.companies} | {"default"}

        async def spread() -> bool:
            held = await holders(db)
            return set(held) >= wanted and None not in held.values() and len(
                set(held.values())) == 2

        await until(spread, "the leases spread over both workers", every_s=0.1)
        await asyncio.sleep(2.0)  # settled: no hand-over in flight
        held = await holders(db)
        by_holder = [h for h in held.values() if h is not None]
        victim_id = max(set(by_holder), key=by_holder.count)
        victim = next(p for p in procs if p.proc is not None
                      and f":{p.proc.pid}:" in victim_id)
        theirs = [c for c, h in held.items() if h == victim_id and c != "default"]
        partner = await _CO.partner_id(db)
        lease_s = float(stage.bench.env["WORKER_LEASE_S"])
        killed = time.monotonic()
        victim.kill9()
        ids = [r for c in theirs for r in await _CO.store(stage.bench, db, c, partner, 1)]

        async def all_held() -> bool:
            return victim_id not in (await holders(db)).values()

        await until(all_held, "the survivor holding every lease", within_s=lease_s * 3 + 30)
        held_s = time.monotonic() - killed
        await _CO.wait_final(db, ids, what="the victim's companies' receipts")
        return TakeOver(label, held_s, time.monotonic() - killed)
    finally:
        stage.stop_workers()
        await db.close()


def webhook_rows(args: argparse.Namespace, work: Path) -> list[str]:
    ns = argparse.Namespace(seconds=args.webhook_seconds, concurrency=16)
    results = {v: _ENG.Result(v) for v in ("bare", "sqlite", "postgresql")}
    run = 1000
    for _ in range(args.rounds):
        for variant, result in results.items():
            run += 1
            _ENG.one_run(variant, ns, work, run, result)
    bare = results["bare"].median([x.per_s for x in results["bare"].loads])
    return [result.line(bare) for result in results.values()]


def server_answers() -> bool:
    try:
        with psycopg.connect(server_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        print(f"bench/scale.py: no PostgreSQL at {server_url().split('@')[-1]} ({exc}); "
              "set TEST_DATABASE_URL or start one. Skipped.")
        return False
    return True


def print_throughput(rows: list[Throughput]) -> None:
    names = ["worker 1", "worker 2", "PostgreSQL", "simulator"]
    print("| run | receipts | receipts/s | " + " | ".join(f"{n} CPU ms/receipt" for n in names)
          + " | all CPU ms/receipt | PostgreSQL transactions/receipt |")
    print("| --- " * (5 + len(names)) + "|")
    for r in rows:
        cells = [f"{r.ms(n):.2f}" if n in r.cpu_s else "–" for n in names]
        every = sum(r.ms(n) for n in r.cpu_s)  # 0 when no receipt was left to measure
        xacts = f"{r.transactions / r.receipts:.1f}" if r.transactions and r.receipts else "–"
        print(f"| {r.label} | {r.receipts} | {r.per_s:.0f} | " + " | ".join(cells)
              + f" | {every:.2f} | {xacts} |")
    print("\nPostgreSQL's active backends, share of samples every 20 ms:")
    for r in rows:
        total = sum(r.waits.values())
        if total:
            print(f"- {r.label}: " + ", ".join(
                f"{k} {v / total:.0%}" for k, v in r.waits.most_common()))
    print("\nIdle afterwards (the backlog worked, nothing to do), share of a core:")
    for r in rows:
        print(f"- {r.label}: " + ", ".join(f"{n} {v:.1%}" for n, v in r.idle.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=8)
    parser.add_argument("--receipts", type=int, default=150, help="backlog per company")
    parser.add_argument("--concurrency", type=int, default=4, help="RECEIPT_CONCURRENCY")
    parser.add_argument("--lease-s", type=float, default=30.0, help="WORKER_LEASE_S")
    parser.add_argument("--renew-s", type=float, default=10.0, help="WORKER_LEASE_RENEW_S")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every measurement")
    parser.add_argument("--webhook-seconds", type=float, default=4.0)
    parser.add_argument("--skip-webhooks", action="store_true")
    args = parser.parse_args()
    if not server_answers():
        return 0
    began = time.monotonic()
    rows: list[Throughput] = []
    takes: list[TakeOver] = []
    hooks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        if not args.skip_webhooks:
            hooks = webhook_rows(args, work)
        run = 0
        for _ in range(args.rounds):
            for engine, workers in (("sqlite", 1), ("postgresql", 1), ("postgresql", 2)):
                run += 1
                with staged(engine, args, work, run) as stage:
                    label = f"{engine}, {workers} worker{'s' if workers > 1 else ''}"
                    rows.append(asyncio.run(throughput(stage, label, workers, args)))
        for label, hosts in ((f"two hosts, WORKER_LEASE_S={args.lease_s:g}",
                              ("machine-a", "machine-b")), ("one host (pid seen gone)",
                                                           (None, None))):
            run += 1
            with staged("postgresql", args, work, run) as stage:
                takes.append(asyncio.run(take_over(stage, label, hosts)))
    print(f"\n{args.companies} companies, {args.receipts} receipts each, "
          f"RECEIPT_CONCURRENCY={args.concurrency}, Alegra never the limit; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    if hooks:
        print("\nWebhook acknowledgements (bench/webhooks_engines.py's runs, concurrency 16):")
        print("| variant | acks/s | of bare | p50 ms | p99 ms | web CPU ms/ack "
              "| server CPU ms/ack | lost |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        print("\n".join(hooks))
    print("\nReceipts, first completion to last:")
    print_throughput(rows)
    print("\nTake-over after kill -9 of a worker (seconds from the kill):")
    print("| case | survivor holds every lease | its receipts completed |")
    print("| --- | --- | --- |")
    for take in takes:
        print(f"| {take.label} | {take.held_s:.1f} | {take.flowing_s:.1f} |")
    print(f"\n({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
