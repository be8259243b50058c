"""Webhooks end to end: real web and worker processes, the simulator, and the operator's CLI.

Register (twice), then a person creating, editing and deleting contacts in "Alegra": the cache
follows through deliveries. A forged token stores nothing. A kill -9 of the web process in the
middle of a burst loses no delivery that was answered 2xx.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from cryptography.fernet import Fernet

from sync.simulator.state import SimConfig
from sync.subscriptions import EVENTS
from sync.webhook_tokens import make_token, webhook_url
from tests.support.procs import (
    TEST_SECRET_KEY,
    ManagedProcess,
    eventually,
    free_port,
    product_env,
    run_cli,
    start_web,
    start_worker,
)
from tests.support.servers import RunningSimulator, running_simulator

pytestmark = pytest.mark.e2e
T = TypeVar("T")
TOKEN = make_token([TEST_SECRET_KEY])



@dataclass
class Stack:
    sim: RunningSimulator
    env: dict[str, str]
    db_path: Path
    log_dir: Path
    url: str
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    cli_output: list[str] = field(default_factory=list)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        conn = sqlite3.connect(self.db_path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute(sql, params).fetchall())
        finally:
            conn.close()

    def cli(self, *args: str) -> str:
        result = run_cli(list(args), self.env)
        self.cli_output += [result.stdout, result.stderr]
        assert result.returncode == 0, result.stderr
        return result.stdout

    def cached(self, contact_id: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM contacts WHERE alegra_id = ?", (contact_id,))
        return rows[0] if rows else None

    def logs(self) -> str:
        return "\n".join([*(p.logs() for p in self.procs.values()), *self.cli_output])


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The simulator, the web process and the worker, nothing registered yet."""
    config = SimConfig(token="tok-" + secrets.token_hex(8), window_s=1.0,
                       delivery_retry_delays=(0.05, 0.05), handshake_timeout_s=5.0)
    with running_simulator(config) as sim:
        port = free_port()
        db_path = tmp_path / "e2e.db"
        env = product_env(db_path, alegra_base_url=sim.base_url, email=sim.email,
                          token=sim.token, port=port, ALEGRA_RATE_WINDOW_S="1",
                          CREDENTIALS_KEY=Fernet.generate_key().decode())
        running = Stack(sim, env, db_path, tmp_path, f"http://127.0.0.1:{port}")
        try:
            running.procs["web"] = start_web(env, tmp_path)
            running.procs["worker"] = start_worker(env, tmp_path)
            yield running
        finally:
            for proc in reversed(running.procs.values()):
                proc.stop()


def test_register_twice_then_the_cache_follows_alegra(stack: Stack) -> None:
    """Register subscribes once (handshakes noted); contact changes in Alegra reach the cache."""
    first = stack.cli("webhooks", "register")
    assert first.count("created") == len(EVENTS)
    subscriptions = dict(stack.sim.state.subscriptions)
    assert {s["url"] for s in subscriptions.values()} == {webhook_url(stack.url, [TEST_SECRET_KEY])}
    assert sorted(s["event"] for s in subscriptions.values()) == sorted(EVENTS)
    assert len(stack.query("SELECT * FROM webhook_handshakes")) == len(EVENTS)
    second = stack.cli("webhooks", "register")
    assert "created" not in second
    assert second.count("present") == len(EVENTS)
    assert stack.sim.state.subscriptions == subscriptions
    listing = stack.cli("webhooks", "list")
    assert listing.count("here, newest key") == len(EVENTS)

    state = stack.sim.state
    contact = state.person_create_contact(name="Papelera del Sol", type=["provider"])
    eventually(lambda: stack.cached(contact["id"]), what="the new contact in the cache")
    state.person_edit_contact(contact["id"], name="Papelera del Sol SRL")
    renamed = "Papelera del Sol SRL"
    eventually(lambda: (row := stack.cached(contact["id"])) and row["name"] == renamed,
               what="the edited name in the cache")
    state.person_delete_contact(contact["id"])
    eventually(lambda: (row := stack.cached(contact["id"])) and row["deleted"] == 1,
               what="the deletion in the cache")
    row = stack.cached(contact["id"])
    assert row is not None
    assert row["source"] == "webhook"
    applied = stack.query("SELECT state FROM inbox WHERE resource_id = ?", (contact["id"],))
    assert {r["state"] for r in applied} == {"applied"}

    for proc in stack.procs.values():
        proc.stop()
    logs = stack.logs()
    assert "webhook.stored" in logs
    assert "event.applied" in logs
    assert TOKEN not in logs
    assert TEST_SECRET_KEY not in logs
    assert stack.sim.token not in logs


def test_bad_token_and_malformed_body(stack: Stack) -> None:
    """A forged token is 404 and stores nothing; a malformed body is stored, 2xx, then skipped."""
    forged = httpx.post(f"{stack.url}/webhooks/alegra/{TOKEN[:-2]}xx",
                        json={"subject": "edit-client", "message": {"client": {"id": "1"}}})
    assert forged.status_code == 404
    assert stack.query("SELECT * FROM inbox") == []
    garbled = httpx.post(f"{stack.url}/webhooks/alegra/{TOKEN}", content=b"{not json")
    assert garbled.status_code == 200
    row = eventually(lambda: [r for r in stack.query("SELECT * FROM inbox")
                              if r["state"] == "skipped"], what="the worker to skip it")[0]
    assert (row["shape"], bytes(row["body"])) == ("malformed", b"{not json")


def test_kill_9_during_a_burst_loses_no_acknowledged_delivery(stack: Stack) -> None:
    """Deliveries answered 2xx before a SIGKILL of the web process are all in the inbox after."""
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        with httpx.Client(timeout=5.0) as client:
            for n in range(100_000):
                if stop.is_set():
                    return
                marker = f"w{worker}-{n}"
                body = json.dumps({"subject": "edit-client",
                                   "message": {"client": {"id": marker}}})
                try:
                    response = client.post(f"{stack.url}/webhooks/alegra/{TOKEN}", content=body)
                except httpx.HTTPError:
                    return  # the process is gone: this one was never acknowledged
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(marker)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    eventually(lambda: len(acknowledged) >= 300, what="a few hundred acknowledged deliveries")
    stack.procs["web"].kill9()
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    stored = {r["resource_id"] for r in stack.query("SELECT resource_id FROM inbox")}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged deliveries lost, e.g. {sorted(missing)[:5]}"
    assert len(acknowledged) >= 300


def test_two_companies_each_get_their_own_deliveries(stack: Stack) -> None:
    """With a second company, `webhooks register --all` subscribes each account at its own URL,
    and a contact typed in either account reaches that company's cache only; a delivery on
    acme's URL never lands in default's inbox."""
    acme = stack.sim.add_account("acme@example.com", "acme-" + secrets.token_hex(8))
    stack.cli("companies", "add", "Acme", "--email", acme.email, "--token", acme.token,
              "--base-url", acme.base_url)
    registered = stack.cli("webhooks", "register", "--all")
    # Each event once per company: "created", or "present" when the worker's subscriptions job
    # (started by the first rows this command wrote) made it first; never two in one account.
    assert registered.count("created") + registered.count("present") == 2 * len(EVENTS)
    assert len(acme.state.subscriptions) == len(stack.sim.state.subscriptions) == len(EVENTS)
    acme_url = webhook_url(stack.url, [TEST_SECRET_KEY], company="acme")
    assert {s["url"] for s in acme.state.subscriptions.values()} == {acme_url}
    assert {s["url"] for s in stack.sim.state.subscriptions.values()} == {
        webhook_url(stack.url, [TEST_SECRET_KEY])}

    theirs = acme.state.person_create_contact(name="Ferretería Acme", type=["provider"])
    ours = stack.sim.state.person_create_contact(name="Papelera del Sol", type=["provider"])

    def cached_in(company: str, name: str) -> list[sqlite3.Row]:
        return stack.query("SELECT * FROM contacts WHERE company_id = ? AND name = ?",
                           (company, name))

    eventually(lambda: cached_in("acme", "Ferretería Acme"), what="acme's contact in its cache")
    eventually(lambda: cached_in("default", "Papelera del Sol"), what="default's contact")
    assert cached_in("default", "Ferretería Acme") == []
    assert cached_in("acme", "Papelera del Sol") == []
    inbox = stack.query("SELECT company_id, resource_id FROM inbox ORDER BY id")
    assert {(r["company_id"], r["resource_id"]) for r in inbox} == {
        ("acme", theirs["id"]), ("default", ours["id"])}
    for proc in stack.procs.values():
        proc.stop()
    assert acme.token not in stack.logs()
    assert make_token([TEST_SECRET_KEY], company="acme") not in stack.logs()
