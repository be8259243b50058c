"""The web process on PostgreSQL, end to end: real uvicorn processes on loopback, a real server.

It stores deliveries and receipts; two web processes on one database serve the same data (no
state of one is needed by the other; `Prefer: wait` on one sees a receipt finished by another
process). With the database gone in the middle of a webhook burst, every delivery answered 2xx
is in the inbox afterwards, the ones answered 503 are stored once their sender delivers them
again, nothing is ever answered 500, `/readyz` says 503 with the reason while it is gone, and the
process serves again by itself once it is back; so does a worker beside it (a receipt sent after
the outage is billed, nothing restarted).

The outage is `ALTER DATABASE … ALLOW_CONNECTIONS false` plus every backend of the test's own
database terminated (conftest.py): what a restart does to the web process, without restarting a
server other suites share.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.commands.run import sample_receipt
from sync.store.db import Database
from sync.store.partners import create_partner
from sync.webhook_tokens import make_token
from tests.pg_web.conftest import ScratchDatabase
from tests.support.procs import (
    TEST_SECRET_KEY,
    ManagedProcess,
    eventually,
    free_port,
    product_env,
    start_web,
    start_worker,
)
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.e2e
TOKEN = make_token([TEST_SECRET_KEY])
ACME = {"name": "Acme", "email": "acme@example.com", "token": "acme-token"}
RETRY_FOR_S = 60.0  # a sender gives a delivery up after this long (the test then fails)


@dataclass
class Web:
    proc: ManagedProcess
    url: str


@dataclass
class Deployment:
    pg: ScratchDatabase
    key: str
    admin_key: str
    env: dict[str, str]
    log_dir: Path
    webs: list[Web] = field(default_factory=list)

    def start_web(self) -> Web:
        port = free_port()
        env = {**self.env, "PORT": str(port), "PUBLIC_URL": f"http://127.0.0.1:{port}"}
        log_dir = self.log_dir / f"web{len(self.webs)}"
        log_dir.mkdir()
        web = Web(start_web(env, log_dir), f"http://127.0.0.1:{port}")
        self.webs.append(web)
        return web

    def headers(self, idem: str | None = None, **more: str) -> dict[str, str]:
        found = {"Authorization": f"Bearer {self.key}", **more}
        if idem is not None:
            found["Idempotency-Key"] = idem
        return found

    def logs(self) -> str:
        return "\n".join(web.proc.logs() for web in self.webs)


@pytest.fixture
def deployment(pg: ScratchDatabase, tmp_path: Path,
               simulator: RunningSimulator) -> Iterator[Deployment]:
    """A migrated scratch database with a partner; web processes are started by each test."""

    async def make_partners() -> tuple[str, str]:
        db = await Database.open(pg.url)
        try:
            partner = (await create_partner(db, "acme"))[1]
            return partner, (await create_partner(db, "ops", is_admin=True))[1]
        finally:
            await db.close()

    key, admin_key = asyncio.run(make_partners())
    env = product_env(tmp_path / "unused.db", alegra_base_url=simulator.base_url,
                      email=simulator.email, token=simulator.token, port=free_port(),
                      DATABASE_URL=pg.url, LOG_LEVEL="info")
    running = Deployment(pg, key, admin_key, env, tmp_path)
    try:
        yield running
    finally:
        for web in running.webs:
            web.proc.stop()


def delivery(marker: str) -> bytes:
    return json.dumps({"subject": "edit-client", "message": {"client": {"id": marker}}}).encode()


def test_deliveries_and_receipts_are_stored_and_any_web_process_serves_them(
    deployment: Deployment,
) -> None:
    a, b = deployment.start_web(), deployment.start_web()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda n: httpx.post(f"{(a, b)[n % 2].url}/webhooks/alegra/{TOKEN}",
                                 content=delivery(f"c{n}"), timeout=10), range(40)))
    assert [r.status_code for r in answers] == [200] * 40
    stored = dict(deployment.pg.rows("SELECT id, body FROM inbox"))
    assert [stored[r.json()["id"]] for r in answers] == [delivery(f"c{n}") for n in range(40)]
    handshake = httpx.post(f"{b.url}/webhooks/alegra/{TOKEN}", content=b"", timeout=10)
    assert handshake.status_code == 200
    assert deployment.pg.rows("SELECT key_index FROM webhook_handshakes") == [(0,)]

    receipt = sample_receipt()
    created = httpx.post(f"{a.url}/v1/receipts", json=receipt, timeout=10,
                         headers=deployment.headers("r-1"))
    assert created.status_code == 202, created.text
    replayed = httpx.post(f"{b.url}/v1/receipts", json=receipt, timeout=10,
                          headers=deployment.headers("r-1"))
    assert replayed.status_code == 202, replayed.text  # a replay, through the other process
    assert replayed.headers["Idempotent-Replayed"] == "true"
    receipt_id = created.json()["id"]
    assert replayed.json()["id"] == receipt_id

    # `Prefer: wait` on B learns of an outcome written by another process (as a worker on
    # another host would write it) by reading the database, not from anything in B's memory.
    def finish_elsewhere() -> None:
        time.sleep(0.5)
        error = {"step": "bill", "status": 400, "code": "refused", "message": "refused",
                 "retryable": False}
        deployment.pg.rows("UPDATE receipts SET status = 'failed', error = %s WHERE id = %s"
                           " RETURNING id", (json.dumps(error), receipt_id))

    finisher = threading.Thread(target=finish_elsewhere)
    finisher.start()
    waited = httpx.get(f"{b.url}/v1/receipts/{receipt_id}", timeout=40,
                       headers=deployment.headers(Prefer="wait=20"))
    finisher.join()
    assert waited.status_code == 200
    assert waited.json()["status"] == "failed"


@dataclass
class Burst:
    """Senders that deliver like Alegra: each delivery again after a non-2xx until it is 2xx."""

    url: str
    acked: dict[str, int] = field(default_factory=dict)  # marker → the id its 2xx gave
    statuses: dict[int, int] = field(default_factory=dict)  # status → how many answers
    given_up: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def send(self, sender: int) -> None:
        with httpx.Client(timeout=10.0) as client:
            n = 0
            while not self.stop.is_set():
                self.deliver(client, f"s{sender}-{n}")
                n += 1

    def deliver(self, client: httpx.Client, marker: str) -> None:
        give_up_at = time.monotonic() + RETRY_FOR_S
        while time.monotonic() < give_up_at:
            try:
                response = client.post(f"{self.url}/webhooks/alegra/{TOKEN}",
                                       content=delivery(marker))
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            with self.lock:
                self.statuses[response.status_code] = self.statuses.get(
                    response.status_code, 0) + 1
                if response.status_code == 200:
                    self.acked[marker] = int(response.json()["id"])
                    return
            time.sleep(0.1)  # Retry-After: 1 in earnest; shorter keeps the test short
        with self.lock:
            self.given_up.append(marker)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def ready(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/readyz", timeout=10)
    return {**response.json(), "http_status": response.status_code}


def test_the_database_gone_in_a_webhook_burst_loses_nothing_and_the_web_process_recovers(
    deployment: Deployment,
) -> None:
    web = deployment.start_web()
    burst = Burst(web.url)
    senders = [threading.Thread(target=burst.send, args=(i,)) for i in range(8)]
    for sender in senders:
        sender.start()
    try:
        eventually(lambda: burst.count() >= 300, what="300 deliveries acknowledged")
        with deployment.pg.down():
            readiness = eventually(lambda: (r := ready(web.url))["http_status"] == 503 and r,
                                   what="/readyz to say 503")
            refused = httpx.post(f"{web.url}/v1/receipts", json=sample_receipt(), timeout=30,
                                 headers=deployment.headers("during-outage"))
            company = httpx.post(f"{web.url}/v1/companies", timeout=30, json=ACME,
                                 headers={"Authorization": f"Bearer {deployment.admin_key}"})
            time.sleep(1.0)  # the burst meets the outage for a while longer
        before = burst.count()
        eventually(lambda: burst.count() >= before + 300,
                   what="300 more deliveries acknowledged after the database is back")
    finally:
        burst.stop.set()
        for sender in senders:
            sender.join(timeout=RETRY_FOR_S + 10)

    assert any(r.startswith("database unreachable") for r in readiness["reasons"]), readiness
    assert readiness["checks"]["database"] is False
    for answer in (refused, company):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "database_unavailable"
        assert answer.headers["Retry-After"]
    assert set(burst.statuses) <= {200, 503}, burst.statuses  # never a 500
    assert burst.statuses.get(503), "the outage was never met: the test proves nothing"
    assert burst.given_up == []
    stored = {int(inbox_id): str(marker) for inbox_id, marker in
              deployment.pg.rows("SELECT id, resource_id FROM inbox")}
    lost = [m for m, inbox_id in burst.acked.items() if stored.get(inbox_id) != m]
    assert not lost, f"{len(lost)} acknowledged deliveries not stored as answered: {lost[:5]}"

    after = ready(web.url)
    assert after["checks"]["database"] is True, after
    assert not any(r.startswith("database unreachable") for r in after["reasons"])
    again = httpx.post(f"{web.url}/v1/receipts", json=sample_receipt(), timeout=10,
                       headers=deployment.headers("during-outage"))
    assert again.status_code in (200, 202), again.text
    added = httpx.post(f"{web.url}/v1/companies", json=ACME, timeout=10,
                       headers={"Authorization": f"Bearer {deployment.admin_key}"})
    assert added.status_code == 201, added.text
    assert "Traceback" not in deployment.logs()


def test_readyz_names_migrations_not_applied(deployment: Deployment) -> None:
    """A database whose migration records are gone (as one a newer release has not migrated)
    is named, not taken for ready."""
    web = deployment.start_web()
    assert not any(r.startswith("migrations") for r in ready(web.url)["reasons"])
    deployment.pg.rows("DELETE FROM schema_migrations RETURNING version")
    readiness = ready(web.url)
    assert readiness["http_status"] == 503
    assert any(r.startswith("migrations not applied: ") for r in readiness["reasons"]), readiness
    assert readiness["checks"]["pending_migrations"]


def test_the_worker_and_the_web_process_carry_on_by_themselves_after_an_outage(
    deployment: Deployment,
) -> None:
    """With a worker on the same database: ready, then not while the database is gone, then
    ready again with nothing restarted, and a receipt sent afterwards is billed."""
    web = deployment.start_web()
    worker = start_worker(deployment.env, deployment.log_dir)
    try:
        eventually(lambda: ready(web.url)["http_status"] == 200, timeout=60,
                   what="/readyz 200 with the worker's heartbeat")
        with deployment.pg.down():
            gone = eventually(lambda: (r := ready(web.url))["http_status"] == 503 and r,
                              what="/readyz to say 503")
            time.sleep(2.0)
        eventually(lambda: ready(web.url)["http_status"] == 200, timeout=60,
                   what="/readyz 200 again")
        sent = httpx.post(f"{web.url}/v1/receipts", json=sample_receipt(), timeout=60,
                          headers=deployment.headers("after-outage", Prefer="wait=30"))
        assert sent.status_code in (201, 202), sent.text
        receipt_url = f"{web.url}/v1/receipts/{sent.json()['id']}"
        final = eventually(lambda: (r := httpx.get(
            receipt_url, headers=deployment.headers(), timeout=10).json())["status"] in (
                "completed", "failed", "duplicate") and r, timeout=60,
            what="the receipt sent after the outage to be final")
        assert worker.alive
    finally:
        worker.stop()
    assert any(r.startswith("database unreachable") for r in gone["reasons"]), gone
    assert final["status"] == "completed", f"{final}\n{worker.logs()[-3000:]}"
