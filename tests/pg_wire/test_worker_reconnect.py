"""A worker on PostgreSQL whose database goes away mid-run keeps running: it says so in one line,
retries, and carries on by itself when the database is back (the pool reconnects).

The outage is `ALTER DATABASE … ALLOW_CONNECTIONS false` and every backend of the test's own
database terminated (what a PostgreSQL restart or a network cut does to the worker), longer
than the worker's lease, so its companies' leases run out and are taken again afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from sync.commands.run import sample_receipt
from sync.receipt_model import parse_submission
from sync.store import receipts
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.support.databases import PgServer, server_url
from tests.support.procs import eventually, free_port, product_env, start_worker
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.e2e
OUTAGE_S = 8.0  # longer than WORKER_LEASE_S below: the leases run out meanwhile


@dataclass(frozen=True)
class Store:
    url: str
    partner_id: str

    @property
    def name(self) -> str:
        return urlsplit(self.url).path.lstrip("/")

    def submit(self, idempotency_key: str) -> str:
        async def go() -> str:
            db = await Database.open(self.url)
            try:
                body = {**sample_receipt(), "ncf": f"B01{secrets.randbelow(10**8):08d}"}
                submission = parse_submission(body, max_attachment_bytes=1 << 20)
                receipt_id, _ = await receipts.insert_receipt(
                    db, partner_id=self.partner_id, idempotency_key=idempotency_key,
                    submission=submission)
                return receipt_id
            finally:
                await db.close()

        return asyncio.run(go())

    def status(self, receipt_id: str) -> str | None:
        with psycopg.connect(self.url, connect_timeout=5) as conn:
            row = conn.execute("SELECT status FROM receipts WHERE id = %s",
                               (receipt_id,)).fetchone()
        return str(row[0]) if row else None

    def set_connections(self, allowed: bool) -> None:
        """Let connections in, or refuse new ones and end every open one."""
        with psycopg.connect(server_url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(self.name), sql.SQL("true" if allowed else "false")))
            if not allowed:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              " WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,))


@pytest.fixture
def store(pg_server: PgServer) -> Iterator[Store]:
    url = pg_server.create()

    async def partner() -> str:
        db = await Database.open(url)
        try:
            return (await create_partner(db, "acme"))[0].id
        finally:
            await db.close()

    made = Store(url, asyncio.run(partner()))
    try:
        yield made
    finally:
        made.set_connections(True)
        pg_server.drop(url)


def test_a_worker_carries_on_by_itself_after_the_database_went_away(
    store: Store, simulator: RunningSimulator, tmp_path: Path
) -> None:
    """A receipt billed; the database gone for longer than the lease: the worker is still
    running, has logged the outage once (no lane crashed, no look failed with a traceback) and
    its return; a receipt stored afterwards is billed, with nothing restarted."""
    env = product_env(tmp_path / "unused.db", alegra_base_url=simulator.base_url,
                      email=simulator.email, token=simulator.token, port=free_port(),
                      DATABASE_URL=store.url, LOG_LEVEL="info",
                      WORKER_LEASE_S="4", WORKER_LEASE_RENEW_S="1")
    worker = start_worker(env, tmp_path)
    try:
        before = store.submit("before")
        eventually(lambda: store.status(before) == "completed", 60, "the first receipt billed")

        store.set_connections(False)
        time.sleep(OUTAGE_S)
        assert worker.alive, worker.logs()
        store.set_connections(True)

        after = store.submit("after")
        eventually(lambda: store.status(after) == "completed", 90, "a receipt after the outage")
        # The return is logged by the first heartbeat or look that succeeds, which may come
        # after the receipt (the heartbeat writes every two seconds).
        eventually(lambda: '"database.back"' in worker.logs(), 30, "the return logged")
        assert worker.alive
    finally:
        code = worker.stop()
    logs = worker.logs()
    assert logs.count('"database.unavailable"') == 1, logs
    assert '"database.back"' in logs
    assert "worker.lane_crashed" not in logs
    assert "fleet.look_failed" not in logs
    assert code == 0, logs
