"""The sync daemon end to end: real worker (and web) processes, the simulator, the operator's CLI.

A kill -9 mid-backfill resumes from the checkpoint; webhooks lost on the way are repaired by one
reconciliation; a subscription Alegra dropped comes back with the changes it missed; receipts
submitted during a backfill go first; `alegra-sync backfill|reconcile` report how it went.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from sync.alegra.records import ContactRecord, contact_from_alegra
from sync.simulator.app import create_simulator
from sync.simulator.state import SimConfig, SimState
from sync.store.contacts import record_from_row
from tests.support.procs import (
    ManagedProcess,
    eventually,
    free_port,
    product_env,
    run_cli,
    start_web,
    start_worker,
)
from tests.support.servers import ServerThread

pytestmark = pytest.mark.e2e
T = TypeVar("T")



@dataclass
class Sync:
    """The simulator (stoppable), the product's environment, and the processes started."""

    state: SimState
    server: ServerThread
    env: dict[str, str]
    db_path: Path
    log_dir: Path
    procs: list[ManagedProcess] = field(default_factory=list)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if not self.db_path.exists():
            return []
        conn = sqlite3.connect(self.db_path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.OperationalError:  # tables not created yet
            return []
        finally:
            conn.close()

    def job(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM jobs WHERE name = ?", (name,))
        if not rows:
            return None
        job = dict(rows[0])
        job["checkpoint"] = json.loads(job["checkpoint"]) if job["checkpoint"] else None
        return job

    def succeeded(self, name: str) -> bool:
        job = self.job(name)
        return job is not None and job["last_outcome"] == "success"

    def contacts_start(self) -> int:
        """The backfill's checkpoint within the contacts phase (0 before it)."""
        checkpoint = (self.job("backfill") or {}).get("checkpoint") or {}
        return int(checkpoint.get("start", 0)) if checkpoint.get("phase") == "contacts" else 0

    def cached(self) -> dict[str, ContactRecord]:
        rows = self.query("SELECT * FROM contacts WHERE deleted = 0")
        return {row["alegra_id"]: record_from_row(row) for row in rows}

    def alegra(self) -> dict[str, ContactRecord]:
        with self.state.lock:
            rows = [dict(row) for row in self.state.contacts.values()]
        return {row["id"]: contact_from_alegra(row) for row in rows}

    def worker(self, name: str = "worker") -> ManagedProcess:
        proc = start_worker(self.env, self.log_dir, name)
        self.procs.append(proc)
        return proc

    def web(self) -> ManagedProcess:
        proc = start_web(self.env, self.log_dir)
        self.procs.append(proc)
        return proc

    def cli(self, *args: str) -> str:
        result = run_cli(list(args), self.env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def logs(self) -> str:
        return "\n".join(p.logs() for p in self.procs)


def start_sync(tmp_path: Path, config: SimConfig, **env: str) -> Iterator[Sync]:
    app, state = create_simulator(config)
    server = ServerThread(app).start()
    port = free_port()
    db_path = tmp_path / "sync.db"
    environment = product_env(
        db_path, alegra_base_url=f"{server.url}/api/v1", email=config.email, token=config.token,
        port=port, ALEGRA_RATE_LIMIT=str(config.rate_limit),
        ALEGRA_RATE_WINDOW_S=str(config.window_s), **env,
    )
    running = Sync(state, server, environment, db_path, tmp_path)
    try:
        yield running
    finally:
        for proc in reversed(running.procs):
            proc.stop()
        server.stop()


@pytest.fixture
def sync_stack(tmp_path: Path) -> Iterator[Sync]:
    """A 30-requests-a-second simulator and the product's environment; nothing started yet."""
    yield from start_sync(tmp_path, SimConfig(rate_limit=30, window_s=1.0))


@pytest.fixture
def tight_stack(tmp_path: Path) -> Iterator[Sync]:
    """A 15-requests-a-second simulator: a 1,800-contact backfill takes several windows."""
    yield from start_sync(tmp_path, SimConfig(rate_limit=15, window_s=1.0))


@pytest.fixture
def roomy_stack(tmp_path: Path) -> Iterator[Sync]:
    """A simulator with room to spare (300 a second), subscription health every second."""
    config = SimConfig(rate_limit=300, window_s=1.0, delivery_retry_delays=(0.05, 0.05),
                       handshake_timeout_s=5.0)
    yield from start_sync(tmp_path, config, SUBSCRIPTIONS_CHECK_S="1")


def test_kill_9_mid_backfill_then_restart_resumes_from_the_checkpoint(sync_stack: Sync) -> None:
    """Killed once the checkpoint is past page 10, the worker loses nothing; restarted, it asks
    Alegra from the checkpoint on (never from zero) and the cache ends equal to Alegra."""
    sync_stack.state.seed_contacts(1500)
    worker = sync_stack.worker()
    eventually(lambda: sync_stack.contacts_start() >= 300, what="checkpoint past page 10")
    worker.kill9()
    resume_at = sync_stack.contacts_start()
    assert len(sync_stack.cached()) == resume_at  # the rows and their checkpoint, together
    sync_stack.state.clear_log()
    sync_stack.worker("worker-again")
    eventually(lambda: sync_stack.succeeded("backfill"), what="the backfill to complete")
    starts = [int(r.query["start"])  # the backfill's pages (the doctor after it reads its own)
              for r in sync_stack.state.matching_requests("GET", "/contacts")
              if r.query.get("metadata") == "true"]
    assert min(starts) == resume_at
    assert sync_stack.cached() == sync_stack.alegra()


def test_lost_webhooks_and_a_lost_subscription_are_repaired(roomy_stack: Sync) -> None:
    """With half the deliveries dropped while contacts change, the cache drifts and one
    `alegra-sync reconcile` prints the drift and makes it equal to Alegra, field by field. Then
    Alegra drops the edit-client subscription: an edit made meanwhile is never delivered, the
    health job re-creates the subscription, counts it, and its reconcile brings the edit."""
    stack = roomy_stack
    ids = [c["id"] for c in stack.state.seed_contacts(150)]
    stack.web()
    stack.worker()
    eventually(lambda: stack.succeeded("backfill"), what="the backfill")
    stack.cli("webhooks", "register")
    _change_contacts_with_half_the_deliveries_lost(stack, ids)
    eventually(lambda: _deliveries_settled(stack), what="deliveries to settle")
    assert stack.cached() != stack.alegra()
    printed = stack.cli("reconcile")
    assert "scan complete" in printed
    assert stack.cached() == stack.alegra()

    stack.state.faults.update({"drop_delivery_rate": 0.0})
    edit = next(s for s in stack.state.snapshot()["subscriptions"] if s["event"] == "edit-client")
    stack.state.drop_subscription(edit["id"])
    stack.state.person_edit_contact(ids[7], email="perdido@example.com.do")
    eventually(lambda: stack.cached()[ids[7]].email == "perdido@example.com.do",
               what="the missed edit to reach the cache")
    [row] = stack.query("SELECT * FROM subscriptions WHERE event = 'edit-client'")
    assert (row["present"], row["recreated_count"]) == (1, 1)
    assert "subscriptions.recreated" in stack.logs()


def _change_contacts_with_half_the_deliveries_lost(stack: Sync, ids: list[str]) -> None:
    state = stack.state
    state.faults.update({"drop_delivery_rate": 0.5})
    for contact_id in ids[:20]:
        state.person_edit_contact(contact_id, email=f"cambio-{contact_id[:8]}@example.com.do")
    for n in range(5):
        state.person_create_contact(name=f"Suplidor Nuevo {n}", type=["provider"])
    for contact_id in ids[-5:]:
        state.person_delete_contact(contact_id)


def _deliveries_settled(stack: Sync) -> bool:
    pending = stack.query("SELECT COUNT(*) AS n FROM inbox WHERE state IN ('received', 'failed')")
    return stack.state.outbox.pending() == 0 and bool(pending) and pending[0]["n"] == 0


def test_receipts_submitted_during_a_backfill_complete_before_it(tight_stack: Sync) -> None:
    """Three receipts sent while a 1,800-contact backfill runs at 15 requests a second (several
    windows of work) are billed before the backfill ends: their Alegra calls go first."""
    stack = tight_stack
    stack.state.seed_contacts(1800)
    key = stack.cli("partners", "add", "Gastos App").splitlines()[1].strip()
    web = stack.web()
    stack.worker()
    eventually(lambda: stack.contacts_start() >= 30, what="the contacts backfill to start")
    url = f"http://127.0.0.1:{web.env['PORT']}/v1/receipts"
    ids = [_submit(url, key, n) for n in range(3)]
    finals = [_wait_final(url, key, receipt_id) for receipt_id in ids]
    assert [r["status"] for r in finals] == ["completed"] * 3, finals
    assert not stack.succeeded("backfill")
    eventually(lambda: stack.succeeded("backfill"), what="the backfill to complete")
    bills_at = [r.at for r in stack.state.matching_requests("POST", "/bills")]
    pages_at = [r.at for r in stack.state.matching_requests("GET", "/contacts")]
    assert len(bills_at) == 3
    assert max(bills_at) < max(pages_at)


def _submit(url: str, key: str, n: int) -> str:
    body = {
        "supplier": {"name": f"Ferretería Ochoa {n}, S.R.L.", "tax_id": "1-31-24679-6"},
        "date": "2024-05-01", "ncf": f"B01000000{n + 10}", "category": "Gastos de oficina",
        "lines": [{"description": "Tornillos", "amount": "100.00", "tax_rate": 18}],
        "total": "118.00",
    }
    response = httpx.post(url, json=body, timeout=10, headers={
        "Authorization": f"Bearer {key}", "Idempotency-Key": f"during-backfill-{n}"})
    assert response.status_code in (201, 202), response.text
    return str(response.json()["id"])


def _wait_final(url: str, key: str, receipt_id: str) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(f"{url}/{receipt_id}", timeout=10,
                                         headers={"Authorization": f"Bearer {key}"}).json()
        return body if body["status"] not in ("queued", "processing") else None
    return eventually(final, timeout=30, what=f"receipt {receipt_id}")


def test_cli_backfill_exits_non_zero_on_wrong_credentials_and_0_when_complete(
    roomy_stack: Sync,
) -> None:
    """With a wrong API token `alegra-sync backfill` fails, names the refusal (never the token)
    and records a failed run; with the right one it fills the cache and says so."""
    roomy_stack.state.seed_contacts(90)
    refused = run_cli(["backfill"], {**roomy_stack.env, "ALEGRA_TOKEN": "wrong-token"})
    assert refused.returncode != 0
    assert "AuthFailed 401" in refused.stderr
    assert "wrong-token" not in refused.stdout + refused.stderr
    job = roomy_stack.job("backfill")
    assert job is not None
    assert job["last_outcome"] == "failed"
    printed = roomy_stack.cli("backfill")
    assert "backfill complete" in printed
    assert roomy_stack.cached() == roomy_stack.alegra()
