"""Webhook receiver benchmark: acknowledgements per second and their latency, and the Alegra
calls a burst of events costs.

    .venv/bin/python bench/webhooks.py [--seconds 4] [--rounds 3] [--concurrency 16]
                                       [--worker-rate 150] [--window-s 2]

Everything runs on loopback as separate processes: the simulator (`python -m sync.simulator`),
the worker (`python -m sync`), and for each variant a fresh uvicorn with the Procfile's flags,
driven by a keep-alive HTTP/1.1 load generator at a fixed concurrency:

    bare         a Starlette endpoint on the same path that reads the body and answers 200: the
                 ceiling, stores nothing
    group        the real app: group commit, each 2xx sent after its row's commit
    per-request  the real app with a plain aiosqlite commit per request instead (a baseline)
    blocking     the real app committing each delivery with `sqlite3` on the event loop itself
                 (the simplest receiver; another baseline)

The worker works through a backlog of due inbox rows the whole time (each one an Alegra fetch and
two write transactions on the same SQLite file), so every variant runs next to a writing worker;
variants alternate, round after round. The worker spends `--worker-rate` Alegra requests a minute,
by default Alegra's limit of 150 (the most it can ever spend against Alegra), spread over windows
of `--window-s` so that it writes during every run; `--worker-rate 6000` is a stress test at 40
times what Alegra allows. Every acknowledged delivery is then looked up in the
inbox by the id its answer gave, and its body checked. `web CPU ms/ack` (from /proc) is what the
web process and its inbox committer spent per acknowledgement: on a machine busy with other work
it is the steadier measure, and its ratio says what throughput dedicated cores would reach.

Then a burst of 5,000 events over 200 contacts goes through the real web process and a fresh
worker, and the simulator's request log says how many contacts the worker fetched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from receiver import webhooks  # noqa: E402
from receiver.app import create_app  # noqa: E402
from receiver.inbox.committer import insert_items, open_connection  # noqa: E402
from sync.store.db import Database  # noqa: E402
from sync.store.inbox import Item, write_batch  # noqa: E402
from sync.webhook_tokens import make_token  # noqa: E402
from tests.support.procs import (  # noqa: E402
    TEST_SECRET_KEY,
    ManagedProcess,
    free_port,
    product_env,
    start_worker,
)

SIM_EMAIL, SIM_TOKEN = "bench@example.com", "bench-token"
TOKEN = make_token([TEST_SECRET_KEY])
PATH = f"/webhooks/alegra/{TOKEN}"
VARIANTS = {
    "bare": "bench.webhooks:bare_app",
    "group": "receiver.app:create_app",
    "per-request": "bench.webhooks:per_request_app",
    "blocking": "bench.webhooks:blocking_app",
}


# --- the two extra apps uvicorn loads (`--factory`) -----------------------------------------

def bare_app() -> Starlette:
    """The ceiling: the same route, read the body, answer 200 with a small JSON body."""
    async def receive(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"status": "stored", "id": 0})

    return Starlette(routes=[Route("/webhooks/alegra/{token}", receive, methods=["POST"])])


class PlainCommit:
    """A commit per request through an aiosqlite connection: what a receiver without group
    commit does (BEGIN, INSERT, COMMIT for each delivery, before its 2xx)."""

    def __init__(self, path: Path, **_: Any) -> None:
        self.path = path
        self.db: Database | None = None

    async def start(self) -> None:
        self.db = await Database.open(self.path)

    def submit(self, item: Item, *, timeout_s: float | None = None) -> asyncio.Future[int]:
        return asyncio.ensure_future(asyncio.wait_for(self._write(item), timeout_s))

    async def _write(self, item: Item) -> int:
        assert self.db is not None
        return (await write_batch(self.db, [item]))[0]

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()


class BlockingCommit:
    """A commit per request on the event loop itself: a plain `sqlite3` INSERT (its own
    transaction) in the handler, the loop blocked until the commit's fsync returns."""

    def __init__(self, path: Path, **_: Any) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    async def start(self) -> None:
        self.conn = open_connection(self.path)

    def submit(self, item: Item, *, timeout_s: float | None = None) -> asyncio.Future[int]:
        assert self.conn is not None
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_result(insert_items(self.conn, [item])[0][0])
        return future

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def per_request_app() -> Starlette:
    """The real app with group commit replaced by a plain commit per request (the baseline)."""
    cast(Any, webhooks).InboxWriter = PlainCommit
    return create_app()


def blocking_app() -> Starlette:
    """The real app committing each delivery on the event loop (the simplest receiver)."""
    cast(Any, webhooks).InboxWriter = BlockingCommit
    return create_app()


# --- processes ----------------------------------------------------------------------------

@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    sim_url: str = ""
    contact_ids: list[str] = field(default_factory=list)
    procs: list[ManagedProcess] = field(default_factory=list)
    rate: int = 150  # Alegra requests a minute the worker may spend

    @property
    def per_window(self) -> int:
        """Requests per (shortened) window that make `rate` a minute: the same rate as Alegra's
        window of a minute, spread evenly so the worker writes during every run."""
        return max(1, round(float(self.rate * self.args.window_s) / 60))

    def env(self, db: Path, port: int) -> dict[str, str]:
        return product_env(
            db, alegra_base_url=f"{self.sim_url}/api/v1", email=SIM_EMAIL, token=SIM_TOKEN,
            port=port, ALEGRA_RATE_LIMIT=str(self.per_window),
            ALEGRA_RATE_WINDOW_S=str(self.args.window_s), LOG_LEVEL="info",
        )

    def track(self, proc: ManagedProcess) -> ManagedProcess:
        """Remember a started process, to stop it at the end."""
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def start_simulator(bench: Bench, contacts: int, rate: int) -> None:
    """A fresh simulator allowing `rate` requests a minute (the worker is told the same)."""
    bench.rate = rate
    port = free_port()
    args = [sys.executable, "-m", "sync.simulator", "--port", str(port), "--email", SIM_EMAIL,
            "--token", SIM_TOKEN, "--rate-limit", str(bench.per_window),
            "--window-s", str(bench.args.window_s)]
    proc = bench.track(ManagedProcess(
        f"simulator-{rate}", args, {**os.environ, "PYTHONPATH": str(ROOT)}, bench.work).start())
    bench.sim_url = f"http://127.0.0.1:{port}"
    proc.wait_http(f"{bench.sim_url}/_sim/state")
    seeded = httpx.post(f"{bench.sim_url}/_sim/seed", json={"contacts": contacts}).json()
    bench.contact_ids = list(seeded["ids"])


def cpu_s(proc: ManagedProcess) -> float:
    """CPU time (user + system) the process and its running children (the inbox committer)
    have used so far, from /proc (Linux)."""
    assert proc.proc is not None
    return sum(_pid_cpu_s(pid) for pid in (proc.proc.pid, *_children(proc.proc.pid)))


def _pid_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


@contextmanager
def web(bench: Bench, variant: str, db: Path) -> Iterator[tuple[str, ManagedProcess]]:
    """uvicorn as the Procfile runs it (one process, no access log), for one variant."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", VARIANTS[variant], "--factory", "--host",
            "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    proc = ManagedProcess(f"web-{variant}", args, bench.env(db, port), bench.work).start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{url}/healthz" if variant != "bare" else f"{url}/")
        httpx.post(f"{url}{PATH}", content=b"{}")  # starts the committer before measuring
        yield url, proc
    finally:
        proc.stop()


# --- the load generator -------------------------------------------------------------------

@dataclass
class Load:
    """What one run measured: (sent, answered) times, statuses, and the acknowledged ids."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    acked: list[tuple[int, str]] = field(default_factory=list)  # (inbox id, marker)
    window_s: float = 0.0
    server_cpu_s: float = 0.0  # CPU the web process used during the whole run

    @property
    def cpu_ms_per_answer(self) -> float:
        answered = sum(self.statuses.values())
        return self.server_cpu_s * 1000 / answered if answered else 0.0

    @property
    def per_s(self) -> float:
        return len(self.latencies) / self.window_s if self.window_s else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


Body = Callable[[int], tuple[str, bytes]]


def request_bytes(host_port: str, body: bytes) -> bytes:
    head = (f"POST {PATH} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines
                  if line.lower().startswith("content-length:"))
    return int(lines[0].split(" ", 2)[1]), await reader.readexactly(length)


async def _connection(url: str, make_body: Body, *, stop: Callable[[int], bool], load: Load,
                      measure: Callable[[float], bool], counter: list[int]) -> None:
    host_port = url.split("://", 1)[1]
    host, port = host_port.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        while not stop(counter[0]):
            counter[0] += 1
            marker, body = make_body(counter[0])
            sent = time.perf_counter()
            writer.write(request_bytes(host_port, body))
            status, answer = await _read_response(reader)
            done = time.perf_counter()
            load.statuses[status] = load.statuses.get(status, 0) + 1
            if status != 200:
                continue
            if b'"id"' in answer:
                load.acked.append((int(json.loads(answer)["id"]), marker))
            if measure(sent):
                load.latencies.append(done - sent)  # acknowledged requests only
    finally:
        writer.close()


async def drive(url: str, make_body: Body, *, concurrency: int, seconds: float | None = None,
                total: int | None = None, warmup_s: float = 0.5) -> Load:
    """Keep `concurrency` keep-alive connections busy for `seconds` (after a warm-up), or until
    `total` requests were sent. Latency is from writing a request to reading its whole answer."""
    load, counter = Load(), [0]
    began = time.perf_counter()
    start = began + (warmup_s if seconds else 0.0)
    end = start + seconds if seconds else float("inf")

    def stop(sent: int) -> bool:
        return time.perf_counter() >= end or (total is not None and sent >= total)

    def measure(sent_at: float) -> bool:
        return start <= sent_at < end

    await asyncio.gather(*(
        _connection(url, make_body, stop=stop, load=load, measure=measure, counter=counter)
        for _ in range(concurrency)))
    load.window_s = (end if seconds else time.perf_counter()) - start
    return load


def delivery_bodies(contact_ids: list[str]) -> Body:
    """Client events about the simulator's contacts, each with a unique marker to find it by."""
    def make(n: int) -> tuple[str, bytes]:
        marker = f"m{n}-{random.getrandbits(32):08x}"
        contact = random.choice(contact_ids)
        body = {"subject": random.choice(("new-client", "edit-client")),
                "message": {"client": {"id": contact, "name": {"fullname": "Proveedor"},
                                       "observations": marker}}}
        return marker, json.dumps(body).encode()

    return make


# --- checks on the store ------------------------------------------------------------------

def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def missing_acknowledged(db: Path, load: Load) -> int:
    """Acknowledged deliveries whose row (by the id in the answer) is absent or another body."""
    bodies = {r["id"]: bytes(r["body"]) for r in query(db, "SELECT id, body FROM inbox")}
    return sum(1 for inbox_id, marker in load.acked
               if marker.encode() not in bodies.get(inbox_id, b""))


def migrated(db: Path) -> bool:
    if not db.exists():
        return False
    return bool(query(db, "SELECT 1 FROM sqlite_master WHERE name = 'inbox'"))


def pending(db: Path) -> int:
    rows = query(db, "SELECT COUNT(*) FROM inbox WHERE state IN ('received', 'failed')")
    return int(rows[0][0])


def settled_rows(db: Path) -> int:
    rows = query(db, "SELECT COUNT(*) FROM inbox WHERE state IN ('applied', 'skipped')")
    return int(rows[0][0])


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


# --- the two parts ------------------------------------------------------------------------

@dataclass
class Row:
    variant: str
    loads: list[Load]
    worker_rows: int = 0  # inbox rows the worker settled while this variant ran
    worker_s: float = 0.0
    worker_cpu_s: float = 0.0
    lost: int = 0

    @property
    def per_s(self) -> float:
        return statistics.median(load.per_s for load in self.loads)

    @property
    def cpu_ms(self) -> float:
        return statistics.median(load.cpu_ms_per_answer for load in self.loads)

    @property
    def pooled(self) -> Load:
        return Load(latencies=[x for load in self.loads for x in load.latencies])


def throughput(bench: Bench) -> list[Row]:
    """Each variant in turn, `rounds` times, on a fresh uvicorn; the worker busy throughout."""
    db = bench.work / "throughput.db"
    asyncio.run(_prepare(db, bench.args.backlog))
    worker = None
    if bench.args.worker:
        worker = bench.track(start_worker(bench.env(db, free_port()), bench.work))
    rows = {name: Row(name, []) for name in VARIANTS}
    bodies = delivery_bodies(bench.contact_ids)
    for round_no in range(bench.args.rounds):
        for variant in VARIANTS:
            before, began = settled_rows(db), time.monotonic()
            worker_cpu = cpu_s(worker) if worker is not None else 0.0
            with web(bench, variant, db) as (url, server):
                cpu_before = cpu_s(server)
                load = asyncio.run(drive(url, bodies, concurrency=bench.args.concurrency,
                                         seconds=bench.args.seconds))
                load.server_cpu_s = cpu_s(server) - cpu_before
            row = rows[variant]
            row.loads.append(load)
            row.worker_rows += settled_rows(db) - before
            row.worker_s += time.monotonic() - began
            row.worker_cpu_s += (cpu_s(worker) - worker_cpu) if worker is not None else 0.0
            if variant != "bare":
                row.lost += missing_acknowledged(db, load)
            print(f"  round {round_no + 1} {variant:12s} {load.per_s:8.0f}/s "
                  f"p99 {load.pct(0.99):6.1f} ms  web CPU {load.cpu_ms_per_answer:.3f} ms/ack  "
                  f"statuses {load.statuses}", flush=True)
    if worker is not None:
        worker.stop()  # its backlog must not be counted in the burst's fetches
    return list(rows.values())


async def _prepare(db: Path, backlog: int) -> None:
    """Migrate, and leave the worker a backlog of due deliveries about contacts Alegra does not
    have: it fetches (404) and writes for each, steadily, while the variants are measured."""
    store = await Database.open(db)
    old = "2000-01-01T00:00:00.000000+00:00"
    await store.executemany(
        "INSERT INTO inbox(received_at, subject, resource, resource_id, body, shape, state)"
        " VALUES (?, 'edit-client', 'client', ?, ?, 'ok', 'received')",
        [(old, f"gone-{n}", b"{}") for n in range(backlog)],
    )
    await store.close()


@dataclass
class Burst:
    events: int
    contacts: int  # distinct contacts the events were about
    acknowledged: int
    fetches: int
    settle_s: float
    lost: int


def burst(bench: Bench) -> Burst:
    """5,000 events over 200 contacts through the real web process and the worker."""
    db = bench.work / "burst.db"
    port = free_port()
    env = bench.env(db, port)
    bench.track(start_worker(env, bench.work, name="worker-burst"))
    ids = bench.contact_ids[: bench.args.burst_contacts]
    with web(bench, "group", db) as (url, _):
        wait_until(lambda: db.exists() and bool(query(
            db, "SELECT 1 FROM jobs WHERE name = 'backfill' AND last_outcome = 'success'")), 120)
        httpx.post(f"{bench.sim_url}/_sim/requests/clear")
        load = asyncio.run(drive(url, delivery_bodies(ids),
                                 concurrency=bench.args.concurrency, total=bench.args.burst))
        sent = time.monotonic()
        wait_until(lambda: pending(db) == 0, timeout=300)
        settle_s = time.monotonic() - sent
    fetches = _contact_gets(bench)
    distinct = query(db, "SELECT COUNT(DISTINCT resource_id) FROM inbox")[0][0]
    return Burst(bench.args.burst, int(distinct), len(load.acked), fetches, settle_s,
                 missing_acknowledged(db, load))


def _contact_gets(bench: Bench) -> int:
    """GET /contacts/{id} requests since the log was cleared (lists are GET /contacts)."""
    answer = httpx.get(f"{bench.sim_url}/_sim/requests",
                       params={"method": "GET", "path_prefix": "/contacts/"}).json()
    return int(answer["count"])


# --- report -------------------------------------------------------------------------------

def report(rows: list[Row], result: Burst, args: argparse.Namespace) -> None:
    ceiling = next(r for r in rows if r.variant == "bare").per_s
    cpu_ceiling = next(r for r in rows if r.variant == "bare").cpu_ms
    print(f"\nWebhook acknowledgements: concurrency {args.concurrency}, {args.rounds} rounds of "
          f"{args.seconds:.0f} s per variant; median throughput, latency over all rounds; "
          f"the worker spending up to {args.worker_rate} Alegra requests/min")
    print(f"{'variant':13s}{'acks/s':>9s}{'of bare':>9s}{'p50 ms':>9s}{'p99 ms':>9s}"
          f"{'max ms':>9s}{'lost':>6s}{'worker rows/s':>15s}{'worker CPU':>12s}"
          f"{'web CPU ms/ack':>16s}{'CPU-bound ratio':>17s}")
    for row in rows:
        pooled = row.pooled
        lost = "-" if row.variant == "bare" else str(row.lost)
        print(f"{row.variant:13s}{row.per_s:9.0f}{row.per_s / ceiling:9.0%}{pooled.pct(0.5):9.1f}"
              f"{pooled.pct(0.99):9.1f}{max(pooled.latencies) * 1000:9.1f}{lost:>6s}"
              f"{row.worker_rows / max(row.worker_s, 1e-9):15.0f}"
              f"{row.worker_cpu_s / max(row.worker_s, 1e-9):12.0%}{row.cpu_ms:16.3f}"
              f"{cpu_ceiling / row.cpu_ms if row.cpu_ms else 0:17.0%}")
    print(f"\nBurst: {result.events} events over {result.contacts} contacts: "
          f"{result.acknowledged} acknowledged, {result.lost} lost; the worker fetched "
          f"{result.fetches} times = {result.fetches / result.contacts:.2f} per contact, "
          f"{result.fetches / result.events:.3f} per event; settled {result.settle_s:.1f} s "
          "after the last acknowledgement")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--burst-contacts", type=int, default=200)
    parser.add_argument("--worker-rate", type=int, default=150,
                        help="Alegra requests per minute the worker may spend (default: Alegra's "
                             "limit, the most the worker can ever spend; more is a stress test)")
    parser.add_argument("--burst-rate", type=int, default=6000,
                        help="Alegra requests per minute for the burst (it counts fetches, so a "
                             "faster simulator only makes it end sooner)")
    parser.add_argument("--window-s", type=float, default=2.0,
                        help="the simulator's rate-limit window (Alegra's is 60 s)")
    parser.add_argument("--backlog", type=int, default=20000,
                        help="due inbox rows the worker works through during the runs")
    parser.add_argument("--no-worker", dest="worker", action="store_false",
                        help="measure throughput without the worker writing (for comparison)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            start_simulator(bench, args.contacts, args.worker_rate)
            print("throughput (each run on a fresh uvicorn):", flush=True)
            rows = throughput(bench)
            start_simulator(bench, args.burst_contacts, args.burst_rate)
            result = burst(bench)
        finally:
            bench.stop_all()
        report(rows, result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
