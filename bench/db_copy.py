"""`db copy` benchmark: how long moving a SQLite deployment to PostgreSQL takes, by its size.

    .venv/bin/python bench/db_copy.py [--receipts 20000] [--server postgresql://postgres@127.0.0.1:5432/postgres]

Builds a migrated SQLite database shaped like a deployment in use: for every receipt, its three
steps, its bill in the cache and its bill claim; one in 20 with a 50 KiB attachment; five webhook
deliveries (~400 bytes each); half a contact; plus partners, companies with encrypted tokens and
grants. Then runs the real command, `alegra-sync db copy --from sqlite:///… --to …`, as a
process, into a new database on the PostgreSQL server (dropped afterwards), and into a new SQLite
file for comparison; prints rows, megabytes and the time of each, with rows per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from cryptography.fernet import Fernet
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sync.store.db import Database  # noqa: E402

NOW = "2026-12-01T10:00:00.000000+00:00"
COMPANIES = 5
PARTNERS = 10
ATTACHMENT = os.urandom(50 * 1024)


def build_source(path: Path, receipts: int) -> int:
    """A migrated database of `receipts` receipts and what goes with them; its row count."""
    asyncio.run(_migrate(path))
    conn = sqlite3.connect(path)
    try:
        with conn:
            _fill(conn, receipts)
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'schema_migrations'")]
        return sum(conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables)  # noqa: S608
    finally:
        conn.close()


async def _migrate(path: Path) -> None:
    await (await Database.open(path)).close()


def _fill(conn: sqlite3.Connection, receipts: int) -> None:
    fernet = Fernet(Fernet.generate_key())
    companies = [f"company-{n}" for n in range(COMPANIES)]
    conn.executemany(
        "INSERT INTO companies(id, name, email, token_enc, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(c, c, f"{c}@example.com", fernet.encrypt(c.encode()).decode(), NOW, NOW)
         for c in companies])
    conn.executemany(
        "INSERT INTO partners(id, name, key_hash, key_prefix, created_at) VALUES (?, ?, ?, ?, ?)",
        [(f"ptn_{n}", f"Partner {n}", f"{n:064x}", f"as_{n}", NOW) for n in range(PARTNERS)])
    conn.executemany(
        "INSERT INTO partner_grants(partner_id, company_id, granted_at) VALUES (?, ?, ?)",
        [(f"ptn_{n}", c, NOW) for n in range(PARTNERS) for c in companies])
    conn.executemany(_RECEIPT, _receipts(receipts, companies))
    conn.executemany(
        "INSERT INTO receipt_steps(receipt_id, step, state, outcome, alegra_id, detail, attempts,"
        " started_at, updated_at) VALUES (?, ?, 'done', 'found', ?, '{}', 1, ?, ?)",
        ((f"rcp_{n:024x}", step, str(n), NOW, NOW) for n in range(receipts)
         for step in ("supplier", "account:gastos", "bill")))
    conn.executemany(
        "INSERT INTO receipt_attachments(receipt_id, filename, content_type, size, data)"
        " VALUES (?, 'receipt.jpg', 'image/jpeg', ?, ?)",
        ((f"rcp_{n:024x}", len(ATTACHMENT), ATTACHMENT) for n in range(0, receipts, 20)))
    conn.executemany(
        "INSERT INTO bills(alegra_id, provider_id, provider_tax_id, ncf_key, bill_date, total,"
        " status, receipt_id, raw, source, confirmed_at, updated_at, company_id)"
        " VALUES (?, '501', '131246796', ?, '2026-11-30', '236.00', 'open', ?, ?, 'receipt', ?,"
        " ?, ?)",
        ((str(n), f"B01{n:08d}", f"rcp_{n:024x}", f'{{"id": "{n}", "total": 236}}', NOW, NOW,
          companies[n % COMPANIES]) for n in range(receipts)))
    conn.executemany(
        "INSERT INTO bill_claims(claim_key, receipt_id, claimed_at) VALUES (?, ?, ?)",
        ((f"131246796|B01{n:08d}", f"rcp_{n:024x}", NOW) for n in range(receipts)))
    conn.executemany(
        "INSERT INTO inbox(received_at, subject, resource, resource_id, body, shape, state,"
        " applied_at) VALUES (?, 'edit-client', 'client', ?, ?, 'ok', 'applied', ?)",
        ((NOW, str(n), _delivery(n), NOW) for n in range(5 * receipts)))
    conn.executemany(
        "INSERT INTO contacts(alegra_id, name, name_key, tax_id, types, raw, source,"
        " confirmed_at, updated_at, company_id) VALUES (?, ?, ?, ?, '[\"provider\"]', ?,"
        " 'backfill', ?, ?, ?)",
        ((str(n), f"Proveedor {n}", f"proveedor {n}", f"{n:09d}", f'{{"id": "{n}"}}', NOW, NOW,
          companies[n % COMPANIES]) for n in range(receipts // 2)))


_RECEIPT = (
    "INSERT INTO receipts(id, partner_id, idempotency_key, body_hash, payload, status,"
    " supplier_tax_id, supplier_name, ncf, ncf_type, receipt_date, total, bill_id, created_at,"
    " updated_at, completed_at, company_id)"
    " VALUES (?, ?, ?, ?, ?, 'completed', '131246796', 'Ferretería Ochoa', ?, 'B01',"
    " '2026-11-30', '236.00', ?, ?, ?, ?, ?)")


def _receipts(count: int, companies: list[str]) -> Iterator[tuple[str, ...]]:
    payload = '{"version": 1, "supplier": {"name": "Ferretería Ochoa"}, "lines": [' + (
        '{"description": "Cemento gris", "amount": "200.00", "tax": "ITBIS"}, ' * 3) + "{}]}"
    for n in range(count):
        yield (f"rcp_{n:024x}", f"ptn_{n % PARTNERS}", f"key-{n}", f"{n:064x}", payload,
               f"B01{n:08d}", str(n), NOW, NOW, NOW, companies[n % COMPANIES])


def _delivery(n: int) -> bytes:
    return (b'{"subject": "edit-client", "message": {"client": {"id": "%d", "name": '
            b'"Proveedor %d", "identification": "%09d", "type": ["provider"], "address": '
            b'{"city": "Santo Domingo"}, "status": "active"}}, "padding": "%s"}'
            % (n, n, n, b"x" * 200))


def timed_copy(source: Path, target: str) -> float:
    """Run `alegra-sync db copy` as a process; its wall time in seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sync.cli", "db", "copy", "--from", f"sqlite:///{source}",
         "--to", target], cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"db copy failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def scratch_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=20_000)
    parser.add_argument("--server", default=os.environ.get(
        "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "source.db"
        started = time.perf_counter()
        rows = build_source(source, args.receipts)
        megabytes = source.stat().st_size / 1e6
        print(f"source: {args.receipts} receipts, {rows} rows, {megabytes:.0f} MB "
              f"(built in {time.perf_counter() - started:.0f} s)")
        name = f"bench_db_copy_{os.getpid()}"
        target = scratch_database(args.server, name)
        try:
            elapsed = timed_copy(source, target)
        finally:
            drop_database(args.server, name)
        print(f"SQLite → PostgreSQL: {elapsed:.1f} s, {rows / elapsed:,.0f} rows/s, "
              f"{megabytes / elapsed:.1f} MB/s")
        elapsed = timed_copy(source, f"sqlite:///{Path(folder) / 'target.db'}")
        print(f"SQLite → SQLite:     {elapsed:.1f} s, {rows / elapsed:,.0f} rows/s, "
              f"{megabytes / elapsed:.1f} MB/s")


if __name__ == "__main__":
    main()
