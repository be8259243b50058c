"""Companies benchmark: 50 companies saturated at once, each against its own bound; and one
company's lone receipt while another has 10,000 queued, against the same with no backlog.

    .venv/bin/python bench/companies.py [--companies 50] [--limits 8,10,12] [--window-s 20]
                                        [--windows 3] [--backlog 10000] [--lone 20]

Everything runs as separate processes on loopback: the simulator (`python -m sync.simulator`,
one account per company, each with its own limit and its own window, shortened from Alegra's
60 s), the worker (`python -m sync`: one set of lanes and one rate budget per company,
sync/fleet.py) and the web process (uvicorn with the real app) for the lone receipts. The
companies, their encrypted tokens and the partner's grants are stored before the worker starts,
with the store's own functions (what `alegra-sync companies add` and `partners add` call). Every
company's cache is warmed first (its backfill, then one receipt, which creates the supplier), so
each receipt after that costs one Alegra call (the bill): 50 companies at 8, 10 and 12 requests
per 20 s are 25 receipts a second in all, well under the worker's local ceiling. The worker
and the web log at `info`, the product's default.

    share of bound      per company: receipts completed within K full windows of the moment
                        every backlog was released ÷ (K × its limit ÷ its calls per receipt);
                        min and median over the companies. Each backlog (K windows' worth and
                        2 more) is stored while the worker is paused (SIGSTOP, at a moment it
                        holds no write lock), so all the companies start at the same instant
    calls per receipt   the company's simulator requests ÷ its receipts completed, over the
                        whole saturated run
    first request       seconds from the release to the company's first Alegra request
    per window          the lowest company's requests in each simulator window (from its
                        request log): a window short of its limit is a slot the budget left
    worker CPU          utime + stime of the worker (/proc/<pid>/stat) over the K windows ÷ the
                        receipts completed in them, idle polling of every company's lanes included
    lone receipt        POST /v1/receipts to company B with `Prefer: wait=30` (the web answers
                        once the receipt is final), one at a time: p50 and p99 with nothing queued
                        anywhere (the baseline), then while company A has `--backlog` queued
                        receipts (stored with the store's insert on A's scoped handle) that the
                        worker works at A's limit
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sync import credentials  # noqa: E402
from sync.receipt_model import parse_submission  # noqa: E402
from sync.settings import Settings, load_settings  # noqa: E402
from sync.store import companies, receipts  # noqa: E402
from sync.store.db import Database  # noqa: E402
from sync.store.partners import create_partner  # noqa: E402
from tests.support.procs import (  # noqa: E402
    ManagedProcess,
    free_port,
    product_env,
    start_web,
    start_worker,
)

DEFAULT_EMAIL, DEFAULT_TOKEN = "bench@example.com", "bench-token"
CATEGORY = "Combustible y lubricantes"  # in the simulator's seeded chart
SUPPLIER = {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "131246796"}
EXTRA = 2  # receipts per company beyond K windows' worth: the lane never runs dry
TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Company:
    id: str  # the slug of its name, as `companies add` makes it
    limit: int  # requests per window at its simulated account

    @property
    def email(self) -> str:
        return f"{self.id}@bench.example"

    @property
    def token(self) -> str:
        return f"token-{self.id}"

    @property
    def sim_path(self) -> str:
        return f"/_sim/accounts/{self.email}"


@dataclass
class Fairness:
    """What the saturated run measured, per company id."""

    in_windows: dict[str, int]
    completed: dict[str, int]
    requests: dict[str, int]
    rejected: dict[str, int]  # 429s
    first_request_s: dict[str, float]
    sent_at: dict[str, list[float]]  # each request's time, when the log's recent list holds all
    cpu_s: float
    span_s: float

    def calls(self, company: str) -> float:
        done = self.completed.get(company, 0)
        return self.requests.get(company, 0) / done if done else float("nan")

    def share(self, company: Company, windows: int) -> float:
        calls = self.calls(company.id)
        per_receipt = 1.0 if math.isnan(calls) or calls <= 0 else calls
        return self.in_windows.get(company.id, 0) / (windows * company.limit / per_receipt)


@dataclass
class Isolation:
    baseline: list[float]
    with_backlog: list[float]
    stored_s: float
    backlog_done: int  # A's receipts completed from the start of its backlog to the end


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    sim_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    procs: list[ManagedProcess] = field(default_factory=list)
    ncf: int = 0

    @property
    def db_path(self) -> Path:
        return self.work / "bench.db"

    def start(self, proc: ManagedProcess) -> ManagedProcess:
        self.procs.append(proc if proc.proc is not None else proc.start())
        return proc

    def body(self) -> dict[str, Any]:
        """A valid cached receipt: the same supplier and category, a new NCF each time."""
        self.ncf += 1
        return {
            "supplier": SUPPLIER, "date": "2024-05-01", "ncf": f"B01{self.ncf:08d}",
            "category": CATEGORY,
            "lines": [{"description": "Gasoil", "amount": "1000.00", "quantity": 2,
                       "tax_rate": 18}],
        }


@contextmanager
def bench_processes(args: argparse.Namespace) -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="bench-companies-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            yield bench
        finally:
            for proc in reversed(bench.procs):
                if proc.alive and proc.proc is not None:
                    proc.proc.send_signal(signal.SIGCONT)  # a paused worker must hear SIGTERM
                proc.stop()


def plan(args: argparse.Namespace) -> tuple[list[Company], Company, Company]:
    """The saturated companies (limits cycling through `--limits`), A (backlog) and B (lone)."""
    limits = [int(x) for x in args.limits.split(",")]
    saturated = [Company(f"co-{n + 1:02d}", limits[n % len(limits)])
                 for n in range(args.companies)]
    return saturated, Company("backlog-a", args.backlog_limit), Company("lone-b", args.lone_limit)


# --- processes and setup ---------------------------------------------------------------------

def start_simulator(bench: Bench, limit: int) -> None:
    port = free_port()
    bench.sim_url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "sync.simulator", "--port", str(port), "--email", DEFAULT_EMAIL,
           "--token", DEFAULT_TOKEN, "--rate-limit", str(limit),
           "--window-s", str(bench.args.window_s)]
    proc = bench.start(ManagedProcess("simulator", cmd, dict(os.environ), bench.work))
    proc.wait_http(f"{bench.sim_url}/_sim/state")


async def add_accounts(bench: Bench, every: list[Company]) -> None:
    async with httpx.AsyncClient(base_url=bench.sim_url, timeout=30) as http:
        for company in every:
            answer = await http.post("/_sim/accounts", json={
                "email": company.email, "token": company.token, "rate_limit": company.limit,
                "window_s": bench.args.window_s})
            answer.raise_for_status()


async def add_companies(settings: Settings, db: Database, every: list[Company]) -> str:
    """Store each company (token encrypted) and a partner granted all of them; its key."""
    for company in every:
        await companies.add_company(db, company.id, company.email,
                                    credentials.encrypt(settings, company.token))
    _, key = await create_partner(db, "bench", companies=[c.id for c in every])
    return key


async def partner_id(db: Database) -> str:
    return str(await db.scalar("SELECT id FROM partners WHERE name = 'bench'"))


async def store(bench: Bench, db: Database, company: str, partner: str, n: int) -> list[str]:
    """Store `n` receipts for `company` with the store's insert, as the web process does."""
    scoped, ids = db.for_company(company), []
    for _ in range(n):
        body = bench.body()
        submission = parse_submission(body, max_attachment_bytes=1 << 20)
        receipt_id, _ = await receipts.insert_receipt(
            scoped, partner_id=partner, idempotency_key=f"k-{body['ncf']}", submission=submission)
        ids.append(receipt_id)
    return ids


async def wait_until(db: Database, sql: str, params: tuple[Any, ...], want: int, *,
                     what: str, within_s: float = TIMEOUT_S) -> None:
    """Poll a COUNT query until it reaches `want`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if int(await db.scalar(sql, params) or 0) >= want:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


async def warm_up(bench: Bench, db: Database, every: list[Company]) -> None:
    """Every company backfilled, then one receipt each (it creates the supplier): from here a
    receipt costs one call. Then a full window with nothing sent, so every window is fresh."""
    ids = [c.id for c in every]
    marks = ",".join("?" for _ in ids)
    await wait_until(db, "SELECT COUNT(*) FROM jobs WHERE name = 'backfill'"  # noqa: S608
                     f" AND last_outcome = 'success' AND company_id IN ({marks})",
                     tuple(ids), len(ids), what="every company's backfill")
    partner = await partner_id(db)
    warm = [r for c in every for r in await store(bench, db, c.id, partner, 1)]
    await wait_final(db, warm, what="the warm-up receipts")
    await asyncio.sleep(bench.args.window_s + 2.0)


async def wait_final(db: Database, ids: list[str], *, what: str,
                     within_s: float = TIMEOUT_S) -> None:
    marks = ",".join("?" for _ in ids)
    await wait_until(db, f"SELECT COUNT(*) FROM receipts WHERE id IN ({marks})"  # noqa: S608
                     " AND status IN ('completed', 'failed', 'duplicate')",
                     tuple(ids), len(ids), what=what, within_s=within_s)


# --- the worker, paused and measured ---------------------------------------------------------

def proc_stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()  # fields from the 3rd (state) on


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, in seconds."""
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_lock_free(path: Path) -> bool:
    conn = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()
    return True


def pause(pid: int, db_path: Path) -> None:
    """SIGSTOP the worker at a moment it holds no write transaction (or the backlog could not
    be stored until it resumes)."""
    for _ in range(200):
        os.kill(pid, signal.SIGSTOP)
        while proc_stat(pid)[0] not in {"T", "t"}:
            time.sleep(0.001)
        if write_lock_free(db_path):
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.02)
    raise RuntimeError("the worker held the write lock at every try")


def iso(epoch: float) -> str:
    """The store's timestamp format (`db.utcnow()`), for comparing with `completed_at`."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


async def counts_by_company(db: Database, ids: list[str], since: float,
                            until: float | None = None) -> dict[str, int]:
    marks = ",".join("?" for _ in ids)
    rows = await db.fetchall(
        "SELECT company_id, COUNT(*) FROM receipts WHERE status = 'completed'"  # noqa: S608
        f" AND completed_at >= ? AND completed_at <= ? AND company_id IN ({marks})"
        " GROUP BY company_id",
        (iso(since), iso(until if until is not None else time.time() + 3600), *ids))
    return {str(row[0]): int(row[1]) for row in rows}


async def sim_counts(bench: Bench, every: list[Company], **params: str) -> dict[str, Any]:
    """Each account's request log (`count` matching `params`, `total`, `recent`)."""
    async with httpx.AsyncClient(base_url=bench.sim_url, timeout=30) as http:
        found: dict[str, Any] = {}
        for company in every:
            answer = await http.get(f"{company.sim_path}/requests", params=params)
            found[company.id] = answer.json()
        return found


async def clear_logs(bench: Bench, every: list[Company]) -> None:
    async with httpx.AsyncClient(base_url=bench.sim_url, timeout=30) as http:
        for company in every:
            (await http.post(f"{company.sim_path}/requests/clear")).raise_for_status()


async def fairness(bench: Bench, db: Database, worker: ManagedProcess,
                   saturated: list[Company]) -> Fairness:
    """Release every company's backlog at once; count what each completes in K windows."""
    assert worker.proc is not None
    pid, window, k = worker.proc.pid, bench.args.window_s, bench.args.windows
    partner = await partner_id(db)
    pause(pid, bench.db_path)
    ids: list[str] = []
    for company in saturated:
        ids += await store(bench, db, company.id, partner, k * company.limit + EXTRA)
    await clear_logs(bench, saturated)
    started, cpu_before = time.time(), cpu_seconds(pid)
    os.kill(pid, signal.SIGCONT)
    await asyncio.sleep(window / 2)
    first = {c: min((r["at"] for r in log["recent"]), default=float("inf")) - started
             for c, log in (await sim_counts(bench, saturated)).items()}
    boundary = started + k * window
    await asyncio.sleep(boundary - time.time())
    cpu = cpu_seconds(pid) - cpu_before
    await wait_final(db, ids, what="the saturated backlogs", within_s=2 * window + 30)
    names = [c.id for c in saturated]
    logs = await sim_counts(bench, saturated)
    rejected = await sim_counts(bench, saturated, status="429")
    return Fairness(
        in_windows=await counts_by_company(db, names, started, boundary),
        completed=await counts_by_company(db, names, started),
        requests={c: int(log["total"]) for c, log in logs.items()},
        rejected={c: int(log["count"]) for c, log in rejected.items()},
        first_request_s=first, cpu_s=cpu, span_s=boundary - started,
        sent_at={c: [float(r["at"]) for r in log["recent"]] for c, log in logs.items()
                 if len(log["recent"]) == log["total"]},
    )


# --- isolation -------------------------------------------------------------------------------

async def lone_receipts(bench: Bench, key: str, company: str, run: str) -> list[float]:
    """`--lone` receipts for `company` through the web, one at a time: seconds to final."""
    url = f"http://127.0.0.1:{bench.env['PORT']}/v1/receipts"
    latencies = []
    async with httpx.AsyncClient(timeout=60) as http:
        for n in range(bench.args.lone):
            started = time.monotonic()
            answer = await http.post(url, json=bench.body(), headers={
                "Authorization": f"Bearer {key}", "Idempotency-Key": f"lone-{run}-{n}",
                "Alegra-Company": company, "Prefer": "wait=30"})
            status = answer.json().get("status")
            if status != "completed":
                raise RuntimeError(f"lone receipt {n} ({run}) ended {status}: {answer.text}")
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(bench.args.gap)
    return latencies


async def isolation(bench: Bench, db: Database, key: str, a: Company, b: Company) -> Isolation:
    baseline = await lone_receipts(bench, key, b.id, "baseline")
    started = time.time()
    backlog = await store(bench, db, a.id, await partner_id(db), bench.args.backlog)
    stored_s = time.time() - started
    with_backlog = await lone_receipts(bench, key, b.id, "backlog")
    done = await counts_by_company(db, [a.id], started)
    queued = await db.scalar("SELECT COUNT(*) FROM receipts WHERE company_id = ?"
                             " AND status = 'queued'", (a.id,))
    if int(queued or 0) < len(backlog) * 0.9:
        raise RuntimeError(f"A's backlog ran down to {queued}: the run measured no backlog")
    return Isolation(baseline, with_backlog, stored_s, done.get(a.id, 0))


# --- the run and the table -------------------------------------------------------------------

async def measure(bench: Bench) -> tuple[Fairness, Isolation]:
    saturated, a, b = plan(bench.args)
    every = [*saturated, a, b]
    start_simulator(bench, min(c.limit for c in every))
    await add_accounts(bench, every)
    bench.env = product_env(
        bench.db_path, alegra_base_url=f"{bench.sim_url}/api/v1", email=DEFAULT_EMAIL,
        token=DEFAULT_TOKEN, port=free_port(), LOG_LEVEL="info",
        ALEGRA_RATE_LIMIT=str(min(c.limit for c in every)),
        ALEGRA_RATE_WINDOW_S=str(bench.args.window_s),
        RECEIPT_CONCURRENCY=str(bench.args.concurrency),
    )
    settings = load_settings(env_file=None, environ=bench.env)
    db = await Database.open(settings.database_target)
    try:
        key = await add_companies(settings, db, every)
        bench.start(start_web(bench.env, bench.work))
        worker = bench.start(start_worker(bench.env, bench.work))
        await warm_up(bench, db, every)
        fair = await fairness(bench, db, worker, saturated)
        return fair, await isolation(bench, db, key, a, b)
    finally:
        await db.close()


def per_window(sent_at: list[float], window_s: float) -> list[int]:
    """Requests in each of the simulator's windows: one opens at the first request after the
    previous one ended (sync/simulator/ratelimit.py)."""
    counts: list[int] = []
    end = float("-inf")
    for at in sorted(sent_at):
        if at >= end:
            counts.append(0)
            end = at + window_s
        counts[-1] += 1
    return counts


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, values: list[float], digits: int, extra: str = "") -> str:
    cells = (min(values), statistics.median(values), max(values))
    return f"{name:<36}" + "".join(f"{v:>10.{digits}f}" for v in cells) + f"{extra:>12}"


def print_fairness(args: argparse.Namespace, fair: Fairness, saturated: list[Company]) -> bool:
    k, w = args.windows, args.window_s
    rate = sum(c.limit for c in saturated) / w
    print(f"\n{len(saturated)} companies saturated at once; simulated limits {args.limits} "
          f"requests per {w:g} s window, each its own ({rate:.1f} receipts/s in all); "
          f"{k} windows from the release; {args.concurrency} receipts at once per company")
    print(f"{'per company':<36}{'min':>10}{'median':>10}{'max':>10}{'target':>12}")
    shares = {c.id: fair.share(c, k) for c in saturated}
    limits = {c.id: c.limit for c in saturated}
    print(row("share of its own bound", list(shares.values()), 3, "≥ 0.95"))
    print(row("calls per receipt", [fair.calls(c.id) for c in saturated], 2))
    print(row("first request after the release, s", list(fair.first_request_s.values()), 2))
    worst = min(shares, key=lambda c: shares[c])
    done, bound = sum(fair.in_windows.values()), sum(k * c.limit for c in saturated)
    below = sum(1 for share in shares.values() if share < 0.95)
    print(f"lowest share: {worst} ({fair.in_windows.get(worst, 0)} receipts in {k} windows); "
          f"{below} companies below 0.95; in all {done} of {bound}; "
          f"429 answers: {sum(fair.rejected.values())}")
    if worst in fair.sent_at:
        print(f"{worst}'s requests in each simulator window (limit {limits[worst]}): "
              f"{per_window(fair.sent_at[worst], w)}")
    per_receipt = fair.cpu_s / done * 1000 if done else float("nan")
    print(f"worker CPU: {fair.cpu_s:.1f} s over {fair.span_s:.0f} s "
          f"({fair.cpu_s / fair.span_s:.0%} of a core), {per_receipt:.1f} ms per receipt")
    return min(shares.values()) >= 0.95


def print_isolation(args: argparse.Namespace, iso_: Isolation) -> bool:
    print(f"\nLone receipts for company B, POST to final (`Prefer: wait=30`), {args.lone} each, "
          "seconds")
    print(f"{'run':<36}{'p50':>10}{'p99':>10}{'max':>10}")
    for name, values in (("no backlog (baseline)", iso_.baseline),
                         (f"A has {args.backlog:,} queued", iso_.with_backlog)):
        print(f"{name:<36}{statistics.median(values):>10.3f}{pct(values, 0.99):>10.3f}"
              f"{max(values):>10.3f}")
    extra = pct(iso_.with_backlog, 0.99) - pct(iso_.baseline, 0.99)
    print(f"p99 with the backlog minus without: {extra:+.3f} s (target ≤ +1 s); A's backlog "
          f"stored in {iso_.stored_s:.1f} s, {iso_.backlog_done} of it completed meanwhile "
          f"(A's limit {args.backlog_limit} per {args.window_s:g} s)")
    return extra <= 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=50, help="companies saturated at once")
    parser.add_argument("--limits", default="8,10,12",
                        help="their simulated limits per window, cycled over the companies")
    parser.add_argument("--window-s", type=float, default=20.0,
                        help="every account's rate-limit window (Alegra's is 60 s)")
    parser.add_argument("--windows", type=int, default=3, help="full windows counted")
    parser.add_argument("--backlog", type=int, default=10_000, help="company A's queued receipts")
    parser.add_argument("--backlog-limit", type=int, default=10, help="company A's limit")
    parser.add_argument("--lone", type=int, default=20, help="lone receipts per run")
    parser.add_argument("--lone-limit", type=int, default=100,
                        help="company B's limit (its lone receipts never wait on it)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="RECEIPT_CONCURRENCY, per company (the product's default is 4)")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between lone receipts")
    args = parser.parse_args()
    started = time.monotonic()
    with bench_processes(args) as bench:
        fair, iso_ = asyncio.run(measure(bench))
    ok_fair = print_fairness(args, fair, plan(args)[0])
    ok_iso = print_isolation(args, iso_)
    print(f"\nTargets: every company ≥ 0.95 of its bound: {'met' if ok_fair else 'MISSED'}; "
          f"lone p99 within 1 s of the baseline: {'met' if ok_iso else 'MISSED'}  "
          f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
