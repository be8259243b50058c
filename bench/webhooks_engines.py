"""Webhook acknowledgements per second on each engine: the real web process storing into SQLite
(group commit through the committer process) and into PostgreSQL (one INSERT … RETURNING per
batch through the pool, receiver/inbox/pg_channel.py), beside the bare endpoint.

    .venv/bin/python bench/webhooks_engines.py [--seconds 4] [--rounds 3] [--concurrency 16]
                                               [--server postgresql://postgres@127.0.0.1/postgres]

Each run is a fresh uvicorn with the Procfile's flags on a fresh store (a SQLite file, or a new
database on the PostgreSQL server, dropped afterwards), driven by bench/webhooks.py's keep-alive
load generator; no worker runs. After each run the web process is stopped (it commits what is
queued) and every acknowledged delivery is looked up by the id its answer gave: `lost` counts a
2xx without its row. `web CPU ms/ack` is the web process and its children (SQLite's committer);
`server CPU ms/ack` is PostgreSQL's backends serving that database (from /proc: the server must
run on this machine). Variants alternate, round after round; figures are medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import secrets
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sync.webhook_tokens import make_token  # noqa: E402
from tests.support.databases import server_url, with_database  # noqa: E402
from tests.support.procs import (  # noqa: E402
    TEST_SECRET_KEY,
    ManagedProcess,
    free_port,
    product_env,
)

# bench/webhooks.py's load generator and /proc readings (imported by name, as webhooks_wrk.py
# does: mypy sees bench/ as top-level modules)
_BENCH: Any = importlib.import_module("bench.webhooks")
Load = Any
PATH = f"/webhooks/alegra/{make_token([TEST_SECRET_KEY])}"
APPS = {"bare": "bench.webhooks:bare_app", "app": "receiver.app:create_app"}

NO_ALEGRA, NO_TOKEN = "http://127.0.0.1:9/api/v1", "unused"  # the web side never calls Alegra
CONTACTS = [str(n) for n in range(1, 201)]


@dataclass
class Result:
    variant: str
    loads: list[Load] = field(default_factory=list)
    db_cpu_s: list[float] = field(default_factory=list)
    lost: int = 0

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    def line(self, bare: float) -> str:
        per_s = self.median([load.per_s for load in self.loads])
        p50 = self.median([load.pct(0.50) for load in self.loads])
        p99 = self.median([load.pct(0.99) for load in self.loads])
        web_ms = self.median([load.cpu_ms_per_answer for load in self.loads])
        acks = [sum(load.statuses.values()) for load in self.loads]
        db_ms = self.median([cpu * 1000 / n for cpu, n in zip(self.db_cpu_s, acks, strict=False)
                             if n])
        share = f"{per_s / bare:.0%}" if bare else "–"
        server = f"{db_ms:.3f}" if self.db_cpu_s else "–"
        return (f"| {self.variant} | {per_s:.0f} | {share} | {p50:.1f} | {p99:.1f} | "
                f"{web_ms:.3f} | {server} | {self.lost} |")


@dataclass
class Store:
    """A fresh store for one run: DATABASE_URL, and how to check and discard it."""

    url: str
    path: Path | None = None  # SQLite's file
    pg_name: str | None = None  # PostgreSQL's database

    def missing(self, load: Load) -> int:
        if self.path is not None:
            return int(_BENCH.missing_acknowledged(self.path, load))
        with psycopg.connect(self.url) as conn:
            rows = conn.execute("SELECT id, body FROM inbox").fetchall()
        bodies = {int(r[0]): bytes(r[1]) for r in rows}
        return sum(1 for inbox_id, marker in load.acked
                   if marker.encode() not in bodies.get(inbox_id, b""))

    def backend_cpu_s(self) -> float:
        """CPU used so far by PostgreSQL's backends connected to this database."""
        if self.pg_name is None:
            return 0.0
        with psycopg.connect(server_url(), autocommit=True) as conn:
            pids = [int(r[0]) for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.pg_name,))]
        return sum(float(_BENCH._pid_cpu_s(pid)) for pid in pids)


@contextmanager
def fresh_store(variant: str, work: Path, run: int) -> Iterator[Store]:
    if variant != "postgresql":
        path = work / f"run{run}.db"
        yield Store(f"sqlite:///{path}", path=path)
        return
    name = f"alegra_bench_webhooks_{secrets.token_hex(4)}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield Store(with_database(server_url(), name), pg_name=name)
    finally:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def one_run(variant: str, args: argparse.Namespace, work: Path, run: int, result: Result) -> None:
    with fresh_store(variant, work, run) as store:
        port = free_port()
        env = product_env(work / "unused.db", alegra_base_url=NO_ALEGRA, email="b@example.com",
                          token=NO_TOKEN, port=port, DATABASE_URL=store.url, LOG_LEVEL="warning")
        app = APPS["bare" if variant == "bare" else "app"]
        proc = ManagedProcess(f"web-{variant}-{run}", [
            sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log", "--log-level", "warning"], env, work).start()
        url = f"http://127.0.0.1:{port}"
        try:
            proc.wait_http(f"{url}/healthz" if variant != "bare" else f"{url}/")
            httpx.post(f"{url}{PATH}", content=b"{}")  # starts SQLite's committer beforehand
            web_before, db_before = _BENCH.cpu_s(proc), store.backend_cpu_s()
            load = asyncio.run(_BENCH.drive(url, _BENCH.delivery_bodies(CONTACTS),
                                            concurrency=args.concurrency, seconds=args.seconds))
            load.server_cpu_s = _BENCH.cpu_s(proc) - web_before
            if store.pg_name is not None:
                result.db_cpu_s.append(store.backend_cpu_s() - db_before)
        finally:
            proc.stop()
        result.loads.append(load)
        if variant != "bare":
            result.lost += store.missing(load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--variants", default="bare,sqlite,postgresql")
    args = parser.parse_args()
    variants = args.variants.split(",")
    results = {variant: Result(variant) for variant in variants}
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        run = 0
        for _ in range(args.rounds):
            for variant in variants:
                run += 1
                one_run(variant, args, Path(tmp), run, results[variant])
    bare = results["bare"].median([x.per_s for x in results["bare"].loads]) \
        if "bare" in results else 0.0
    print(f"{args.rounds} rounds × {args.seconds:g} s, {args.concurrency} connections, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| variant | acks/s | of bare | p50 ms | p99 ms | web CPU ms/ack "
          "| server CPU ms/ack | lost |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in results.values():
        print(result.line(bare))


if __name__ == "__main__":
    main()
