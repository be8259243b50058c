"""The main paths end to end on both engines (`engine`: SQLite and PostgreSQL): the real web
process, worker and CLI against the simulator, DATABASE_URL a SQLite file or a PostgreSQL URL,
nothing else different. A receipt POSTed becomes exactly one bill; webhooks registered, a
contact made in "Alegra" reaches the cache; `status` reads the running deployment.

These and the receipts' e2e tests (test_receipts_e2e.py) show the whole service (web, worker,
CLI) works unchanged on PostgreSQL, test_several_machines.py what only PostgreSQL allows; the
other e2e modules run on SQLite, their store code covered on both engines by the component
suites.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.commands.run import sample_receipt
from sync.simulator.state import SimConfig
from sync.store.db import Database, Row
from sync.store.partners import create_partner
from sync.subscriptions import EVENTS
from tests.support.databases import run_async, url_of
from tests.support.procs import (
    ManagedProcess,
    eventually,
    free_port,
    product_env,
    run_cli,
    start_web,
    start_worker,
)
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim_config() -> SimConfig:
    """Short windows and quick webhook handshakes and retries."""
    return SimConfig(window_s=1.0, delivery_retry_delays=(0.05, 0.05), handshake_timeout_s=5.0)


async def _rows(target: Path | str, sql: str, params: tuple[Any, ...]) -> list[Row]:
    db = await Database.open(target, migrate=False)
    try:
        return await db.fetchall(sql, params)
    finally:
        await db.close()


@dataclass
class Stack:
    sim: RunningSimulator
    target: Path | str
    env: dict[str, str]
    key: str
    procs: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        return run_async(_rows(self.target, sql, params))

    def cli(self, *args: str) -> tuple[int, str, str]:
        result = run_cli(list(args), self.env)
        return result.returncode, result.stdout, result.stderr

    def post(self, body: dict[str, Any], idem: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": idem,
                   "Prefer": "wait=30"}
        return httpx.post(f"{self.url}/v1/receipts", json=body, headers=headers, timeout=60)

    def bills_of(self, receipt_id: str) -> list[dict[str, Any]]:
        with self.sim.state.lock:
            bills = list(self.sim.state.bills.values())
        return [b for b in bills if receipt_id in str(b.get("observations") or "")]

    def logs(self) -> str:
        return "\n".join(p.logs() for p in self.procs.values())


@pytest.fixture
def stack(database_target: Path | str, simulator: RunningSimulator,
          tmp_path: Path) -> Iterator[Stack]:
    """A partner in a fresh store on the engine, then the web process and the worker."""
    async def make_partner() -> str:
        db = await Database.open(database_target)
        try:
            return (await create_partner(db, "acme"))[1]
        finally:
            await db.close()

    key = run_async(make_partner())
    env = product_env(tmp_path / "unused.db", alegra_base_url=simulator.base_url,
                      email=simulator.email, token=simulator.token, port=free_port(),
                      DATABASE_URL=url_of(database_target), ALEGRA_RATE_WINDOW_S="1",
                      LOG_LEVEL="info")
    running = Stack(simulator, database_target, env, key)
    try:
        running.procs["web"] = start_web(env, tmp_path)
        running.procs["worker"] = start_worker(env, tmp_path)
        yield running
    finally:
        for proc in reversed(running.procs.values()):
            proc.stop()


def unique_receipt() -> dict[str, Any]:
    return {**sample_receipt(), "ncf": f"B01{secrets.randbelow(10**8):08d}"}


def test_a_posted_receipt_becomes_exactly_one_bill(stack: Stack) -> None:
    """POST with `Prefer: wait`: 201 completed, the bill in Alegra once, the steps stored."""
    response = stack.post(unique_receipt(), "first")

    assert response.status_code == 201, response.text + stack.logs()
    resource = response.json()
    assert resource["status"] == "completed", resource
    assert len(stack.bills_of(resource["id"])) == 1
    replay = stack.post(unique_receipt(), "first")
    assert replay.status_code == 422  # the key holds another receipt: nothing written
    assert replay.json()["error"]["code"] == "idempotency_key_reused"
    rows = stack.query("SELECT status, bill_id FROM receipts WHERE id = ?", (resource["id"],))
    bill_id = resource["alegra"]["bill_id"]
    assert [(r["status"], r["bill_id"]) for r in rows] == [("completed", bill_id)]


def test_webhooks_registered_then_a_contact_made_in_alegra_reaches_the_cache(
    stack: Stack,
) -> None:
    """`webhooks register` subscribes every event; a contact a person creates in Alegra is
    delivered, stored and applied: it is in the cache, from the webhook."""
    code, out, err = stack.cli("webhooks", "register")
    assert code == 0, err
    # "present": the worker's subscriptions job, started by the command's first rows, made it.
    assert out.count("created") + out.count("present") == len(EVENTS)

    contact = stack.sim.state.person_create_contact(name="Papelera del Sol", type=["provider"])

    def cached() -> Row | None:
        rows = stack.query("SELECT * FROM contacts WHERE alegra_id = ?", (str(contact["id"]),))
        return rows[0] if rows else None

    row = eventually(cached, 30, "the new contact in the cache")
    # The worker's first backfill, when still running as the contact is made, may read it first;
    # the delivery is applied either way (below).
    assert row["source"] in {"webhook", "backfill"}
    assert row["name"] == "Papelera del Sol"

    def inbox_states() -> set[str]:
        rows = stack.query("SELECT state FROM inbox WHERE resource_id = ?", (str(contact["id"]),))
        return {r["state"] for r in rows}

    eventually(lambda: inbox_states() == {"applied"}, 20, "the delivery applied")


def test_status_reads_the_running_deployment(stack: Stack) -> None:
    """`status --json`: the worker's heartbeat (its pid), the receipt completed; the terminal
    form names no file on PostgreSQL (it is not "no database at /dev/null")."""
    response = stack.post(unique_receipt(), "for-status")
    assert response.status_code == 201, response.text
    worker_pid = stack.procs["worker"].proc.pid if stack.procs["worker"].proc else None

    def beating() -> dict[str, Any] | None:
        code, out, err = stack.cli("status", "--json")
        assert code in (0, 1), err
        status: dict[str, Any] = json.loads(out)
        return status if status["worker"]["pid"] == worker_pid else None

    status = eventually(beating, 30, "status to show the worker's heartbeat")
    assert status["receipts"]["by_status"].get("completed") == 1
    code, out, err = stack.cli("status")
    assert code in (0, 1), err
    assert "Cache:" in out
    assert f"pid {worker_pid}" in out
    assert "no database" not in out + err
