"""/metrics benchmark: what a scrape costs at a small and a large table size, and what scrapers
do to the partner API.

    .venv/bin/python bench/metrics.py [--small 10000] [--large 1000000] [--seconds 8]
                                      [--scrapers 4] [--rounds 2]

1. Two databases are filled with fast SQL inserts: the small one with `--small` applied inbox
   rows, the large one with `--large` (receipts, contacts and job runs a tenth, a fiftieth and a
   fiftieth of that). On each, the time to compute one scrape is measured in this process:
       old      the queries /metrics ran before (every inbox row and receipt counted by state,
                the cached tables' deleted rows summed, every job run grouped), plus today's
       new      today's computation (`receiver.prometheus.scrape`): index searches only
       cached   a scrape within `MAX_AGE_S` of the last computation (`Scrapes.text`)
2. On the large database, the real web process under uvicorn (the Procfile's flags) takes
   `POST /v1/receipts` from 2 clients for `--seconds` per run: alone (the baseline); with
   `--scrapers` scrapers on /healthz (a control: what the scrapers' own requests cost on this
   machine, nothing of /metrics); on today's /metrics; and on the old /metrics (the real app
   with the old endpoint on its shared connection, `old_metrics_app`), alternating for
   `--rounds`. Each scraper asks again 0.1 s after each answer: far more often than any
   Prometheus does. Besides the pooled p99, the median of the rounds' p99s (steadier on a
   machine doing other work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from receiver.app import create_app  # noqa: E402
from receiver.prometheus import Scrapes, scrape  # noqa: E402
from sync.store.db import Database  # noqa: E402
from sync.store.partners import create_partner  # noqa: E402
from tests.support.procs import ManagedProcess, free_port, product_env  # noqa: E402

EMAIL, TOKEN = "bench@example.com", "bench-token"  # the web process never calls Alegra
# What /metrics asked the tables before (the other queries it ran are today's, and still run).
OLD_QUERIES = (
    "SELECT status, COUNT(*) FROM receipts GROUP BY status",
    "SELECT state, COUNT(*) FROM inbox GROUP BY state",
    "SELECT (julianday(applied_at) - julianday(received_at)) * 86400.0 FROM inbox"
    " WHERE id > (SELECT COALESCE(MAX(id), 0) FROM inbox) - 500"
    " AND state = 'applied' AND applied_at IS NOT NULL",
    "SELECT name, MAX(finished_at) FROM job_runs WHERE outcome = 'success' GROUP BY name",
    *(f"SELECT COUNT(*) - COALESCE(SUM(deleted), 0), COALESCE(SUM(deleted), 0) FROM {table}"  # noqa: S608 -- constants
      for table in ("contacts", "accounts", "taxes", "bills")),
)
RECEIPT = {
    "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
    "date": "2026-11-26", "ncf": "B0100000005", "category": "Combustible y lubricantes",
    "lines": [{"description": "Gasoil regular", "amount": "1000.00", "quantity": 2,
               "tax_rate": 18}],
}
BODY = json.dumps({"subject": "edit-client", "message": {"client": {
    "id": "1234", "name": "Ferretería Ochoa, S.R.L.", "identification": "131246796"}}})


async def old_scrape(db: Database) -> bytes:
    """A scrape as /metrics computed it before."""
    for sql in OLD_QUERIES:
        await db.fetchall(sql)
    return await scrape(db, datetime.now(UTC))


def old_metrics_app() -> Starlette:
    """The real app with /metrics as it was: computed at every scrape, on the shared connection."""
    async def metrics(request: Request) -> Response:
        return Response(await old_scrape(request.app.state.db),
                        media_type=CONTENT_TYPE_PLAIN_0_0_4)

    app = create_app()
    app.router.routes.insert(0, Route("/metrics", metrics, methods=["GET"]))
    return app


# --- the data -----------------------------------------------------------------------------

# Rows 1…:count, each with a timestamp :count - i seconds ago, in the store's format.
SERIES = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count),"
    " s(i, at) AS (SELECT i, strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now',"
    " '-' || (:count - i) || ' seconds') FROM n) "
)
FILL = {
    "inbox": "INSERT INTO inbox(received_at, subject, resource, resource_id, body, shape, state,"
             " applied_at, key_index) SELECT at, 'edit-client', 'client', CAST(i % 5000 AS TEXT),"
             " CAST(:body AS BLOB), 'ok', 'applied', at, 0 FROM s",
    "receipts": "INSERT INTO receipts(id, partner_id, idempotency_key, body_hash, payload, status,"
                " receipt_date, created_at, updated_at, completed_at) SELECT 'rcp_' || i,"
                " :partner, 'k' || i, 'h', :payload, 'completed', '2026-01-01', at, at, at FROM s",
    "contacts": "INSERT INTO contacts(alegra_id, name, name_key, types, raw, source, deleted,"
                " confirmed_at, updated_at) SELECT CAST(i AS TEXT), 'Proveedor ' || i,"
                " 'proveedor ' || i, '[\"provider\"]', :raw, 'backfill', i % 20 = 0, at, at"
                " FROM s",
    "job_runs": "INSERT INTO job_runs(name, started_at, finished_at, outcome, detail)"
                " SELECT 'accounts', at, at, 'success', '{}' FROM s",
}


async def fill(path: Path, inbox_rows: int) -> str:
    """A database with `inbox_rows` applied deliveries, and receipts (a tenth of that), contacts
    and job runs (a fiftieth) to go with them; returns a partner key."""
    db = await Database.open(path)
    try:
        partner, key = await create_partner(db, "bench")
        counts = {"inbox": inbox_rows, "receipts": inbox_rows // 10,
                  "contacts": inbox_rows // 50, "job_runs": inbox_rows // 50}
        params = {"body": BODY, "partner": partner.id, "payload": json.dumps(RECEIPT),
                  "raw": BODY * 4}
        async with db.transaction() as conn:
            for table, count in counts.items():
                await conn.execute(SERIES + FILL[table], {"count": count, **params})
            await conn.execute("INSERT INTO jobs(name) VALUES ('accounts')")
        await db.fetchall("PRAGMA wal_checkpoint(TRUNCATE)")  # not left for a measured run
        return key
    finally:
        await db.close()


def timed_ms(samples: list[float], began: float) -> None:
    samples.append((time.perf_counter() - began) * 1000)


@dataclass
class Costs:
    """Milliseconds to compute one scrape at one size: each a list of samples."""

    rows: int
    old: list[float] = field(default_factory=list)
    new: list[float] = field(default_factory=list)
    cached: list[float] = field(default_factory=list)


async def scrape_costs(paths: dict[int, Path], times: int = 15) -> list[Costs]:
    """Every way of computing a scrape on every database, interleaved `times` over (so that a
    busy moment of the machine falls on all of them alike)."""
    dbs = {rows: await Database.open(path, migrate=False) for rows, path in paths.items()}
    try:
        costs = {rows: Costs(rows) for rows in dbs}
        scrapes = {rows: Scrapes(db) for rows, db in dbs.items()}
        for rows in dbs:
            await scrapes[rows].text()  # the cache is warm, and so are the pages
        for _ in range(times):
            for rows, db in dbs.items():
                began = time.perf_counter()
                await old_scrape(db)
                timed_ms(costs[rows].old, began)
                began = time.perf_counter()
                await scrape(db, datetime.now(UTC))
                timed_ms(costs[rows].new, began)
                began = time.perf_counter()
                await scrapes[rows].text()
                timed_ms(costs[rows].cached, began)
        return list(costs.values())
    finally:
        for db in dbs.values():
            await db.close()


# --- the partner API under scrapers -------------------------------------------------------

def scraper_process(url: str, count: int, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """`count` scrapers (threads) asking `url` back to back for `seconds`; puts the latencies."""
    latencies: list[float] = []
    end = time.monotonic() + seconds

    def loop() -> None:
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < end:
                began = time.perf_counter()
                client.get(url).raise_for_status()
                latencies.append(time.perf_counter() - began)
                time.sleep(0.1)

    threads = [threading.Thread(target=loop) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(latencies)


async def post_receipts(url: str, key: str, seconds: float, clients: int = 2) -> list[float]:
    """`clients` partners posting receipts back to back for `seconds`; 202 latencies."""
    latencies: list[float] = []
    end = time.monotonic() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < end:
            began = time.perf_counter()
            answer = await client.post(
                f"{url}/v1/receipts", json=RECEIPT,
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex})
            if answer.status_code != 202:
                raise RuntimeError(f"POST /v1/receipts answered {answer.status_code}: "
                                   f"{answer.text[:200]}")
            latencies.append(time.perf_counter() - began)

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


@dataclass
class Phase:
    name: str
    receipts: list[float] = field(default_factory=list)
    scrapes: list[float] = field(default_factory=list)
    round_p99s: list[float] = field(default_factory=list)


def partner_api(args: argparse.Namespace, path: Path, key: str, work: Path) -> list[Phase]:
    """Each variant in turn, `--rounds` times, on a fresh uvicorn; latencies pooled."""
    n, app, old_app = args.scrapers, "receiver.app:create_app", "bench.metrics:old_metrics_app"
    variants = {
        "no scraper (baseline)": (app, 0, "/healthz"),
        f"{n} scrapers on /healthz (control)": (app, n, "/healthz"),
        f"{n} scrapers, today's /metrics": (app, n, "/metrics"),
        f"{n} scrapers, the old /metrics": (old_app, n, "/metrics"),
    }
    phases = {name: Phase(name) for name in variants}
    for round_no in range(1, args.rounds + 1):
        for name, (factory, scrapers, target) in variants.items():
            receipts, scrapes = one_run(args, path, key, work, factory=factory,
                                        scrapers=scrapers, target=target)
            phases[name].receipts.extend(receipts)
            phases[name].scrapes.extend(scrapes)
            phases[name].round_p99s.append(pct(receipts, 0.99))
            print(f"  round {round_no} {name:<36} POST /v1/receipts p99"
                  f" {pct(receipts, 0.99):7.1f} ms", flush=True)
    return list(phases.values())


def one_run(args: argparse.Namespace, path: Path, key: str, work: Path, *, factory: str,
            scrapers: int, target: str) -> tuple[list[float], list[float]]:
    """One uvicorn (the Procfile's flags) taking receipts for `--seconds`, with `scrapers` on
    `target`."""
    port = free_port()
    env = product_env(path, alegra_base_url="http://127.0.0.1:9/api/v1", email=EMAIL,
                      token=TOKEN, port=port, LOG_LEVEL="warning")
    proc = ManagedProcess(
        f"web-{port}",
        [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--log-level", "warning"], env, work).start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{url}/healthz")
        asyncio.run(post_receipts(url, key, 1.0))  # warm up
        out: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
        scraper = multiprocessing.Process(
            target=scraper_process, args=(f"{url}{target}", scrapers, args.seconds, out))
        if scrapers:
            scraper.start()
        receipts = asyncio.run(post_receipts(url, key, args.seconds))
        scrapes = out.get() if scrapers else []
        if scrapers:
            scraper.join()
    finally:
        proc.stop()
    return receipts, scrapes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--scrapers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        work = Path(tmp)
        paths, key = {rows: work / f"{rows}.db" for rows in (args.small, args.large)}, ""
        for rows, path in paths.items():
            began = time.perf_counter()
            key = asyncio.run(fill(path, rows))
            print(f"filled {rows:,} inbox rows (and the rest) in "
                  f"{time.perf_counter() - began:.1f} s", flush=True)
        costs = asyncio.run(scrape_costs(paths))
        phases = partner_api(args, paths[args.large], key, work)
    print("\nComputing one scrape (median of 15, interleaved; old = the queries before, new ="
          " today's, cached = within MAX_AGE_S):")
    print(f"{'inbox rows':>12} {'old ms':>9} {'new ms':>9} {'cached ms':>10}")
    medians = [(c.rows, *(statistics.median(x) for x in (c.old, c.new, c.cached))) for c in costs]
    for rows, old_ms, new_ms, cached_ms in medians:
        print(f"{rows:>12,} {old_ms:>9.1f} {new_ms:>9.2f} {cached_ms:>10.3f}")
    (_, old_small, new_small, _), (_, old_large, new_large, _) = medians[0], medians[-1]
    print(f"growth small → large: old ×{old_large / old_small:.1f}, "
          f"new ×{new_large / new_small:.1f}")
    print(f"\nPOST /v1/receipts from 2 clients, {args.rounds} rounds of {args.seconds:.0f} s"
          f" per variant, on the {args.large:,}-row database:")
    print(f"{'':<36} {'receipts':>8} {'p50 ms':>7} {'p99 ms':>7} {'rounds p99':>10}"
          f" {'max ms':>7} {'scrapes':>8} {'scrape p50 ms':>13}")
    for p in phases:
        print(f"{p.name:<36} {len(p.receipts):>8} {pct(p.receipts, 0.5):>7.1f}"
              f" {pct(p.receipts, 0.99):>7.1f} {statistics.median(p.round_p99s):>10.1f}"
              f" {pct(p.receipts, 1.0):>7.1f}"
              f" {len(p.scrapes):>8} {pct(p.scrapes, 0.5) if p.scrapes else 0:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
