"""The store layer's cost per call on each engine: SQLite and PostgreSQL, one process.

    .venv/bin/python bench/store_engines.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
                                            [--calls 2000] [--rounds 5]

`--url` names a server and a database the user may create databases from: a scratch database
is made, migrated, measured and dropped. Figures are medians over the rounds, in µs per call,
calls one after another (latency, not throughput):

    fetchone       Database.fetchone of one row by primary key (a pooled connection on PostgreSQL)
    psycopg        the same query on one bare psycopg connection: what the layer adds is the
                   difference (pool checkout and return, `?` translation, sqlite3.Row rows)
    execute        Database.execute of a one-row UPDATE: its own transaction (PostgreSQL: BEGIN
                   with the company's advisory lock in one round trip, then the UPDATE, COMMIT;
                   SQLite: BEGIN IMMEDIATE, UPDATE, COMMIT with synchronous=FULL)
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from sync.store.db import Database

QUERY = "SELECT id, name, state FROM companies WHERE id = ?"
UPDATE = "UPDATE companies SET state_reason = ? WHERE id = ?"


async def per_call(call: Callable[[], Awaitable[object]], calls: int) -> float:
    for _ in range(min(200, calls)):
        await call()
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - started) / calls * 1e6


async def measure(db: Database, calls: int, url: str) -> dict[str, float]:
    figures = {"fetchone": await per_call(lambda: db.fetchone(QUERY, ("default",)), calls),
               "execute": await per_call(lambda: db.execute(UPDATE, ("x", "default")),
                                         calls // 4)}
    if db.engine == "postgresql":
        raw = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            async def bare() -> object:
                cursor = await raw.execute(QUERY.replace("?", "%s"), ("default",))
                return await cursor.fetchone()

            figures["psycopg"] = await per_call(bare, calls)
        finally:
            await raw.close()
    return figures


def scratch(url: str) -> str:
    name = f"alegra_bench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def drop(server: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


async def main(server: str, calls: int, rounds: int) -> None:
    url = scratch(server)
    try:
        with tempfile.TemporaryDirectory() as folder:
            lite = await Database.open(Path(folder) / "bench.db")
            pg = await Database.open(url)
            results: dict[str, dict[str, list[float]]] = {"sqlite": {}, "postgresql": {}}
            try:
                for _ in range(rounds):  # interleaved: both engines see the same machine load
                    for db in (lite, pg):
                        for name, value in (await measure(db, calls, url)).items():
                            results[db.engine].setdefault(name, []).append(value)
            finally:
                await lite.close()
                await pg.close()
    finally:
        drop(server, url)
    for engine, figures in results.items():
        shown = ", ".join(f"{name} {statistics.median(values):.0f} µs"
                          for name, values in figures.items())
        print(f"{engine:10s} {shown}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.calls, args.rounds))
