"""Backfill benchmark: time to backfill 10,000 contacts against the rate-limit bound, and the extra
time receipts wait while a backfill runs.

    .venv/bin/python bench/backfill.py [--contacts 10000] [--limit 150] [--window 2] [--receipts 8]

Everything runs on loopback as separate processes: the simulator (`python -m sync.simulator`,
rate limit enforced with a shortened window: 150 requests per 2 s by default, i.e. 4,500 a
minute instead of Alegra's 150), the web process (receipts in) and the worker (`python -m sync`,
whose jobs lane runs the backfill and whose receipts lane bills). Three runs:

    backfill alone     a fresh database: the worker backfills; its duration (the `jobs` table)
                       against the bound = requests ÷ limit per window × window
    receipts alone     on that backfilled database, receipts one every `--gap` seconds, each
                       timed from POST to billed (`Prefer: wait`)
    receipts during    a fresh database again: the same receipts, sent once the contacts
                       backfill is under way; their latency, and the backfill's duration
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from stdnum.do import rnc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.procs import (  # noqa: E402
    ManagedProcess,
    free_port,
    product_env,
    run_cli,
    start_web,
    start_worker,
)

SIM_EMAIL, SIM_TOKEN = "bench@example.com", "bench-token"
TIMEOUT_S = 120.0


@dataclass
class Simulator:
    url: str
    limit: int
    proc: ManagedProcess


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    procs: list[ManagedProcess] = field(default_factory=list)
    during_backfill: dict[str, Any] = field(default_factory=dict)

    def start(self, proc: ManagedProcess) -> ManagedProcess:
        self.procs.append(proc.start() if proc.proc is None else proc)
        return proc

    def stop(self, proc: ManagedProcess) -> None:
        proc.stop()
        self.procs.remove(proc)

    def env(self, db_name: str, sim: Simulator) -> dict[str, str]:
        return product_env(
            self.workdir / db_name, alegra_base_url=f"{sim.url}/api/v1", email=SIM_EMAIL,
            token=SIM_TOKEN, port=free_port(), ALEGRA_RATE_LIMIT=str(sim.limit),
            ALEGRA_RATE_WINDOW_S=str(self.args.window), LOG_LEVEL="warning",
        )


@contextmanager
def bench_processes(args: argparse.Namespace) -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            yield bench
        finally:
            for proc in reversed(bench.procs):
                proc.stop()


def start_simulator(bench: Bench, limit: int) -> Simulator:
    """A simulator process with `--contacts` seeded contacts and this rate limit per window."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "sync.simulator", "--port", str(port), "--email", SIM_EMAIL,
            "--token", SIM_TOKEN, "--rate-limit", str(limit), "--window-s", str(bench.args.window)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = bench.start(ManagedProcess(f"simulator-{limit}", args, env, bench.workdir))
    proc.wait_http(f"{url}/_sim/state")
    httpx.post(f"{url}/_sim/seed", json={"contacts": bench.args.contacts}, timeout=60)
    return Simulator(url, limit, proc)


def wait_for(check: Callable[[], Any], what: str, timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def job_row(env: dict[str, str], name: str) -> dict[str, Any] | None:
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    if not Path(path).exists():
        return None
    conn = sqlite3.connect(path, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return dict(row) if row else None


def backfill_done(env: dict[str, str]) -> dict[str, Any] | None:
    row = job_row(env, "backfill")
    return row if row and row["last_outcome"] == "success" else None


def contacts_under_way(env: dict[str, str]) -> bool:
    row = job_row(env, "backfill")
    return bool(row and row["checkpoint"] and '"contacts"' in row["checkpoint"]
                and '"start": 0' not in row["checkpoint"])


def sim_requests(sim: Simulator) -> int:
    answer = httpx.get(f"{sim.url}/_sim/requests", params={"method": "GET"}, timeout=10)
    return int(answer.json()["count"])


def clear_requests(sim: Simulator) -> None:
    httpx.post(f"{sim.url}/_sim/requests/clear", timeout=10)


def receipt(n: int, run: str) -> dict[str, Any]:
    """A receipt from its own new supplier (a valid RNC), so every run does the same work."""
    base = f"14{(300_000 + n * 7_919 + (0 if run == 'alone' else 500_000)) % 1_000_000:06d}"
    tax_id = base + rnc.calc_check_digit(base)
    return {
        "supplier": {"name": f"Suplidor Bench {run} {n}", "tax_id": tax_id},
        "date": "2024-05-01", "ncf": f"B01{n + (0 if run == 'alone' else 5000):08d}",
        "category": "Gastos de oficina",
        "lines": [{"description": "Material", "amount": "100.00", "tax_rate": 18}],
        "total": "118.00",
    }


def submit_receipts(url: str, key: str, run: str, count: int, gap: float) -> list[float]:
    """Send `count` receipts one every `gap` seconds; each one's seconds from POST to billed."""
    latencies = []
    for n in range(count):
        started = time.monotonic()
        answer = httpx.post(url, json=receipt(n, run), timeout=60, headers={
            "Authorization": f"Bearer {key}", "Idempotency-Key": f"bench-{run}-{n}",
            "Prefer": "wait=30"})
        status = answer.json().get("status")
        if status != "completed":
            raise RuntimeError(f"receipt {n} of run {run!r} ended {status}: {answer.text}")
        latencies.append(time.monotonic() - started)
        time.sleep(max(0.0, gap - latencies[-1]))
    return latencies


def run_backfill_alone(
    bench: Bench, sim: Simulator, db_name: str
) -> tuple[dict[str, str], float, int]:
    """A fresh database; returns its env, the backfill's duration and the requests it made."""
    env = bench.env(db_name, sim)
    clear_requests(sim)
    worker = bench.start(ManagedProcess(f"worker-{db_name}", [sys.executable, "-m", "sync"],
                                        env, bench.workdir))
    row = wait_for(lambda: backfill_done(env), f"the backfill into {db_name}")
    requests = sim_requests(sim)
    bench.stop(worker)
    return env, float(row["last_duration_s"]), requests


def run_receipts(bench: Bench, env: dict[str, str], run: str) -> list[float]:
    key = run_cli(["partners", "add", f"bench-{run}"], env).stdout.splitlines()[1].strip()
    web = bench.start(start_web(env, bench.workdir))
    worker = bench.start(start_worker(env, bench.workdir, f"worker-{run}"))
    url = f"http://127.0.0.1:{env['PORT']}/v1/receipts"
    if run == "during":
        wait_for(lambda: contacts_under_way(env), "the contacts backfill to start")
    latencies = submit_receipts(url, key, run, bench.args.receipts, bench.args.gap)
    if run == "during":
        bench.during_backfill = wait_for(lambda: backfill_done(env), "the backfill during receipts")
    bench.stop(worker)
    bench.stop(web)
    return latencies


@dataclass
class Figures:
    backfill_alone_s: float
    requests: int
    receipts_alone: list[float]
    receipts_during: list[float]
    backfill_during_s: float


def print_table(args: argparse.Namespace, figures: Figures) -> None:
    requests, alone_s = figures.requests, figures.backfill_alone_s
    alone, during = figures.receipts_alone, figures.receipts_during
    bound = requests / args.limit * args.window
    print(f"\nBackfill of {args.contacts:,} contacts, simulator limit {args.limit} requests per "
          f"{args.window:g} s window ({requests} GET requests: contacts pages of 30, chart, "
          "taxes, bills)")
    print(f"{'run':<34}{'seconds':>10}{'bound':>10}{'vs bound':>10}")
    print(f"{'backfill alone':<34}{alone_s:>10.2f}{bound:>10.2f}{alone_s / bound - 1:>+10.1%}")
    with_receipts = figures.backfill_during_s
    print(f"{'backfill with receipts':<34}{with_receipts:>10.2f}{bound:>10.2f}"
          f"{with_receipts / bound - 1:>+10.1%}")
    print(f"\nReceipts ({args.receipts}, one every {args.gap:g} s), seconds from POST to billed")
    print(f"{'run':<34}{'median':>10}{'mean':>10}{'max':>10}")
    for name, values in (("receipts alone", alone), ("receipts during backfill", during)):
        print(f"{name:<34}{statistics.median(values):>10.2f}{statistics.mean(values):>10.2f}"
              f"{max(values):>10.2f}")
    extra = statistics.median(during) - statistics.median(alone)
    print(f"{'extra wait during backfill (median)':<34}{extra:>+10.2f}")
    target = "met" if alone_s <= bound * 1.05 else "NOT met"
    print(f"\nTarget (backfill within 5% of the bound): {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--receipts", type=int, default=8)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between receipts")
    args = parser.parse_args()
    with bench_processes(args) as bench:
        sim = start_simulator(bench, args.limit)
        env, alone_s, requests = run_backfill_alone(bench, sim, "alone.db")
        time.sleep(args.window)  # a fresh window for each run
        alone = run_receipts(bench, env, "alone")
        time.sleep(args.window)
        during = run_receipts(bench, bench.env("during.db", sim), "during")
        during_s = float(bench.during_backfill["last_duration_s"])
        print_table(args, Figures(alone_s, requests, alone, during, during_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
