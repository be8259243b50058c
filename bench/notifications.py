"""Partner notifications benchmark: deliveries per second to a loopback receiver, the lag from a
receipt's completion to its notification's arrival (p50, p99) with receipts flowing, and the
receipts' throughput with and without notifications, in the same run.

    .venv/bin/python bench/notifications.py [--receipts 300] [--rounds 3] [--events 2000]

Processes: the simulator (its rate limit set high: Alegra is not what is measured here), a
partner's receiver (`bench/notifications_receiver.py`, uvicorn, verifying every signature with
`standardwebhooks`), and this one, which runs the worker's own code on one event loop as the
worker does: the receipts lane (`RECEIPT_CONCURRENCY` receipts at once) and the notifier beside
it (`PARTNER_WEBHOOKS_CONCURRENCY`, 4 per endpoint).

    receipts/s     cached receipts without attachment, from a stored backlog to all final, with
                   the notifier running: submitted by a partner with no endpoint ("without"), or
                   by one with an endpoint for every event ("with"); rounds alternate. First with
                   Alegra not limiting (the local ceiling, where notifications compete for the
                   worker's CPU), then paced at 150 requests per 6 s, 10× Alegra's real pace
    lag            receipt's `completed_at` → the receiver's arrival time, per receipt, "with"
    deliveries/s   a backlog of events (one per receipt) written at once, then the notifier
                   alone until the receiver has them all: to 1 endpoint, and spread over 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sync.alegra.budget import RateBudget  # noqa: E402
from sync.alegra.client import AlegraClient  # noqa: E402
from sync.context import WorkerContext  # noqa: E402
from sync.flow import lane as receipts_lane  # noqa: E402
from sync.logs import configure_logging  # noqa: E402
from sync.notifications import delivery, endpoints  # noqa: E402
from sync.notifications.outbox import write_event  # noqa: E402
from sync.notifications.records import EventType  # noqa: E402
from sync.receipt_model import parse_submission  # noqa: E402
from sync.settings import Settings, load_settings  # noqa: E402
from sync.store import receipts  # noqa: E402
from sync.store.db import Database, utcnow  # noqa: E402
from sync.store.partners import create_partner  # noqa: E402
from tests.support.procs import ManagedProcess, free_port  # noqa: E402

SIM_EMAIL, SIM_TOKEN = "bench@example.com", "bench-token"
LIMIT, WINDOW_S = 100_000, 60.0
PACED_WINDOW_S = 6.0  # 150 requests per 6 s: the paced rounds' budget, 10× Alegra's pace
PACED, PACED_EMAIL = "paced", "paced@example.com"  # a second company, its own simulated account


class Run:
    def __init__(self, args: argparse.Namespace, settings: Settings, db: Database,
                 client: AlegraClient, budget: RateBudget) -> None:
        self.args, self.settings, self.db, self.client, self.budget = (
            args, settings, db, client, budget)
        self.n = 0
        self.receiver_url = ""

    async def store(self, partner_id: str, count: int, company: str = "default") -> list[str]:
        ids = []
        db = self.db.for_company(company)
        for _ in range(count):
            self.n += 1
            body = {"supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "131246796"},
                    "date": "2024-05-01", "ncf": f"B01{self.n:08d}",
                    "category": "Combustible y lubricantes",
                    "lines": [{"description": "Gasoil", "amount": "1000.00", "tax_rate": 18}]}
            receipt_id, _ = await receipts.insert_receipt(
                db, partner_id=partner_id, idempotency_key=f"n{self.n}",
                submission=parse_submission(body, max_attachment_bytes=1 << 20))
            ids.append(receipt_id)
        return ids

    async def lane(self, ids: list[str], paced: tuple[AlegraClient, RateBudget] | None = None
                   ) -> float:
        """Run the receipts lane until every receipt in `ids` is final; receipts per second
        (`paced`: the company `paced`, its own simulated account and budget)."""
        stopping = asyncio.Event()
        client, budget = paced or (self.client, self.budget)
        db = self.db.for_company(PACED) if paced else self.db
        ctx = WorkerContext(replace(self.settings), db, client, budget, stopping)
        marks = ",".join("?" for _ in ids)
        started = time.monotonic()
        task = asyncio.create_task(receipts_lane.run(ctx))
        while await self.db.scalar(
            f"SELECT COUNT(*) FROM receipts WHERE status = 'completed' AND id IN ({marks})",  # noqa: S608
            ids) < len(ids):
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        stopping.set()
        await task
        return len(ids) / elapsed

    async def arrivals(self, wanted: int, timeout_s: float = 120.0) -> list[list[Any]]:
        got: list[list[Any]] = []
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as http:
            while len(got) < wanted:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {len(got)} of {wanted} notifications arrived")
                answer = (await http.get(self.receiver_url + "/arrivals")).json()
                if answer["bad_signatures"]:
                    raise SystemExit("a delivery did not verify")
                got += answer["arrivals"]
                await asyncio.sleep(0.05)
        return got

    async def lags(self, ids: list[str], got: list[list[Any]]) -> list[float]:
        arrived = {row[2]: row[3] for row in got if row[1] == EventType.RECEIPT_COMPLETED}
        marks = ",".join("?" for _ in ids)
        rows = await self.db.fetchall(
            f"SELECT id, completed_at FROM receipts WHERE id IN ({marks})", ids)  # noqa: S608
        return [(arrived[r[0]] - datetime.fromisoformat(r[1]).timestamp()) * 1000 for r in rows]

    async def backlog(self, partner_id: str, endpoint_ids: list[str], count: int) -> float:
        """`count` events written at once, spread over the endpoints: delivered per second."""
        async with self.db.transaction() as conn:
            for n in range(count):
                await write_event(conn, partner_id=partner_id,
                                  endpoint_ids=[endpoint_ids[n % len(endpoint_ids)]],
                                  event_type=EventType.RECEIPT_COMPLETED,
                                  data={"receipt_id": f"rcp_backlog{n}"}, company="default",
                                  receipt_id=f"rcp_backlog_{len(endpoint_ids)}_{n}")
        started = time.monotonic()
        await self.arrivals(count)
        return count / (time.monotonic() - started)


def start(name: str, cmd: list[str], work: Path, url: str) -> ManagedProcess:
    proc = ManagedProcess(name, cmd, dict(os.environ), work).start()
    proc.wait_http(url)
    return proc


async def bench(args: argparse.Namespace, work: Path, sim_url: str) -> dict[str, Any]:
    settings = load_settings(env_file=None, environ={
        "SECRET_KEY": "b" * 32, "DATABASE_URL": f"sqlite:///{work}/bench.db",
        "ALEGRA_BASE_URL": f"{sim_url}/api/v1", "ALEGRA_EMAIL": SIM_EMAIL,
        "ALEGRA_TOKEN": SIM_TOKEN, "ALEGRA_RATE_LIMIT": str(LIMIT),
        "ALEGRA_RATE_WINDOW_S": str(WINDOW_S), "LOG_LEVEL": "warning",
        "CREDENTIALS_KEY": Fernet.generate_key().decode(),
        "PARTNER_WEBHOOKS_ALLOW_PRIVATE": "true",
    })
    configure_logging("json", "warning")
    db = await Database.open(settings.database_path)
    budget = RateBudget(limit=LIMIT, window_s=WINDOW_S)
    client = AlegraClient(f"{sim_url}/api/v1", SIM_EMAIL, SIM_TOKEN, budget)
    run = Run(args, settings, db, client, budget)
    async with httpx.AsyncClient() as http:
        (await http.post(f"{sim_url}/_sim/accounts", json={
            "email": PACED_EMAIL, "token": SIM_TOKEN, "rate_limit": 150,
            "window_s": PACED_WINDOW_S})).raise_for_status()
    await db.execute("INSERT INTO companies(id, name, created_at, updated_at)"
                     " VALUES (?, ?, ?, ?)", (PACED, PACED, utcnow(), utcnow()))
    quiet, _ = await create_partner(db, "quiet", companies=("default", PACED))
    heard, _ = await create_partner(db, "heard", companies=("default", PACED))
    port = free_port()
    run.receiver_url = f"http://127.0.0.1:{port}"
    made = [await endpoints.create_endpoint(db, settings, partner_id=heard.id,
                                            url=run.receiver_url + "/hook", events=[])
            for _ in range(4)]
    for extra in made[1:]:  # the receipts' rounds notify one endpoint; the backlog uses all 4
        await db.execute("UPDATE webhook_endpoints SET state = 'disabled' WHERE id = ?",
                         (extra.endpoint.id,))
    receiver = start("receiver", [sys.executable, str(ROOT / "bench/notifications_receiver.py"),
                                  str(port), ",".join(m.secret for m in made)],
                     work, run.receiver_url + "/arrivals")
    stopping = asyncio.Event()
    notifier = asyncio.create_task(delivery.run(settings, db, stopping))
    out: dict[str, Any] = {"without": [], "with": [], "lag": [], "paced_without": [],
                           "paced_with": []}
    try:
        await run.lane(await run.store(quiet.id, 30))  # warm: supplier, account, taxes cached
        for _ in range(args.rounds):
            out["without"].append(await run.lane(await run.store(quiet.id, args.receipts)))
            ids = await run.store(heard.id, args.receipts)
            out["with"].append(await run.lane(ids))
            out["lag"] += await run.lags(ids, await run.arrivals(len(ids)))
        slow = RateBudget(limit=150, window_s=PACED_WINDOW_S)
        paced = AlegraClient(f"{sim_url}/api/v1", PACED_EMAIL, SIM_TOKEN, slow)
        try:  # Alegra's pace (10× its real one), not the CPU, bounds these rounds
            await run.lane(await run.store(quiet.id, 30, PACED), (paced, slow))  # warm
            for _ in range(args.rounds):
                for name, partner in (("paced_without", quiet), ("paced_with", heard)):
                    await asyncio.sleep(PACED_WINDOW_S)  # a fresh window
                    ids = await run.store(partner.id, args.paced_receipts, PACED)
                    out[name].append(await run.lane(ids, (paced, slow)))
                    if partner is heard:
                        await run.arrivals(len(ids))
        finally:
            await paced.aclose()
        out["one"] = await run.backlog(heard.id, [made[0].endpoint.id], args.events)
        await db.execute("UPDATE webhook_endpoints SET state = 'enabled'")
        out["four"] = await run.backlog(heard.id, [m.endpoint.id for m in made], args.events)
    finally:
        stopping.set()
        await notifier
        receiver.stop()
        await client.aclose()
        await db.close()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=300, help="receipts per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each variant")
    parser.add_argument("--events", type=int, default=2000, help="events in each backlog")
    parser.add_argument("--paced-receipts", type=int, default=451,
                        help="receipts per paced round (451: 3 windows and 1)")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-notifications-") as tmp:
        work = Path(tmp)
        port = free_port()
        sim = start("simulator", [sys.executable, "-m", "sync.simulator", "--port", str(port),
                                  "--email", SIM_EMAIL, "--token", SIM_TOKEN, "--rate-limit",
                                  str(LIMIT), "--window-s", str(WINDOW_S)],
                    work, f"http://127.0.0.1:{port}/_sim/state")
        try:
            r = asyncio.run(bench(args, work, f"http://127.0.0.1:{port}"))
        finally:
            sim.stop()
    without, with_ = statistics.median(r["without"]), statistics.median(r["with"])
    print(f"\nReceipts (cached, no attachment), {args.receipts} per round, {args.rounds} rounds "
          "each, alternating; the notifier running in both")
    print(f"{'':<34}{'median':>10}{'rounds':>30}")
    variants = (("without notifications", r["without"]), ("with notifications", r["with"]))
    for name, values in variants:
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name + ' (receipts/s)':<34}{statistics.median(values):>10.1f}{shown:>30}")
    print(f"with / without: {with_ / without:.1%}")
    paced_without = statistics.median(r["paced_without"])
    paced_with = statistics.median(r["paced_with"])
    print(f"\nAt 150 Alegra requests per {PACED_WINDOW_S:g} s (10× Alegra's pace), "
          f"{args.paced_receipts} receipts per round: without {paced_without:.1f}/s "
          f"({', '.join(f'{v:.1f}' for v in r['paced_without'])}), with {paced_with:.1f}/s "
          f"({', '.join(f'{v:.1f}' for v in r['paced_with'])}): {paced_with / paced_without:.1%}"
          f"; bound {150 / PACED_WINDOW_S:.1f}/s")
    lag = r["lag"]
    print(f"\nCompletion → delivery lag ({len(lag)} receipts, verified): p50 "
          f"{statistics.median(lag):.1f} ms, p99 {pct(lag, 0.99):.1f} ms, max {max(lag):.1f} ms")
    print(f"\nDeliveries per second, a backlog of {args.events} events, every signature verified:"
          f" 1 endpoint {r['one']:.0f}/s; 4 endpoints {r['four']:.0f}/s "
          f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
