"""The operators' view end to end: real web and worker processes against the simulator.

A receipt, webhook deliveries and a forged token flow through; the metrics move; a stuck receipt
is found through the status endpoint and retried to completion; a failed inbox row is replayed;
and no log line of any process holds a secret.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from sync.simulator.state import SimConfig
from sync.webhook_tokens import make_token
from tests.ops.test_metrics import sample
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
RNC = "1-31-24679-6"
RECEIPT = {
    "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": RNC},
    "date": "2024-05-01", "category": "Gastos de oficina",
    "lines": [{"description": "Tornillos", "amount": "100.00", "tax_rate": 18}],
}



@dataclass
class Stack:
    """The simulator, the web process, the worker, and the keys an operator and a partner hold."""

    sim: RunningSimulator
    env: dict[str, str]
    url: str
    keys: dict[str, str]
    procs: list[ManagedProcess] = field(default_factory=list)
    cli_output: list[str] = field(default_factory=list)

    def http(
        self, method: str, path: str, key: str | None = "ops", **kwargs: Any
    ) -> httpx.Response:
        headers = {**kwargs.pop("headers", {})}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys[key]}"
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def submit(self, idem: str, wait: int = 20) -> httpx.Response:
        return self.http("POST", "/v1/receipts", key="acme", json=RECEIPT,
                         headers={"Idempotency-Key": idem, "Prefer": f"wait={wait}"})

    def status(self) -> dict[str, Any]:
        response = self.http("GET", "/v1/cache/status")
        assert response.status_code == 200
        return dict(response.json())

    def metrics(self) -> str:
        return self.http("GET", "/metrics", key=None).text

    def secrets(self) -> dict[str, str]:
        return {
            "alegra token": self.sim.token, "partner key": self.keys["acme"],
            "admin key": self.keys["ops"], "secret key": TEST_SECRET_KEY,
            "webhook token": make_token([TEST_SECRET_KEY]),
        }

    def logs(self) -> str:
        return "\n".join([*(p.logs() for p in self.procs), *self.cli_output])


def _add_partner(env: dict[str, str], name: str, *flags: str) -> str:
    result = run_cli(["partners", "add", name, *flags], env)
    assert result.returncode == 0, result.stderr
    return re.findall(r"^as_\S+$", result.stdout, re.MULTILINE)[0]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Everything running and registered, with the first backfill done."""
    config = SimConfig(token="tok-" + secrets.token_hex(8), window_s=1.0,
                       delivery_retry_delays=(0.05, 0.05), handshake_timeout_s=5.0)
    with running_simulator(config) as sim:
        port = free_port()
        env = product_env(tmp_path / "e2e.db", alegra_base_url=sim.base_url, email=sim.email,
                          token=sim.token, port=port, ALEGRA_RATE_WINDOW_S="1")
        keys = {"acme": _add_partner(env, "acme"), "ops": _add_partner(env, "ops", "--admin")}
        running = Stack(sim, env, f"http://127.0.0.1:{port}", keys)
        try:
            running.procs.append(start_web(env, tmp_path))
            running.procs.append(start_worker(env, tmp_path))
            registered = run_cli(["webhooks", "register"], env)
            running.cli_output += [registered.stdout, registered.stderr]
            assert registered.returncode == 0, registered.stderr
            eventually(lambda: "backfill" in _successes(running), what="the first backfill")
            yield running
        finally:
            for proc in reversed(running.procs):
                proc.stop()


def _successes(stack: Stack) -> set[str]:
    return {j["name"] for j in stack.status()["jobs"] if j["last_outcome"] == "success"}


def _cached(stack: Stack, tax_id: str, **expected: Any) -> dict[str, Any] | None:
    rows = stack.http("GET", "/v1/cache/contacts", params={"tax_id": tax_id}).json()["data"]
    return next((r for r in rows if all(r[k] == v for k, v in expected.items())), None)


def _assert_no_secret_in_logs(stack: Stack) -> None:
    for proc in stack.procs:
        proc.stop()
    text = stack.logs()
    assert "receipt.completed" in text  # the logs were captured, and are about this run
    for what, value in stack.secrets().items():
        assert value not in text, f"the {what} appears in a log line"


def test_full_run_moves_the_metrics_and_logs_no_secret(stack: Stack) -> None:
    """A receipt, a webhook and a forged token: metrics count them and no log line leaks."""
    before = stack.metrics()
    assert (sample(before, "alegra_sync_receipts_processed_total", outcome="completed",
                   company="default") or 0) == 0
    receipt = stack.submit("r-1")
    assert (receipt.status_code, receipt.json()["status"]) == (201, "completed")
    contact = stack.sim.state.person_create_contact(
        name="Papelera del Sol", identification="101-01010-1", type=["provider"])
    cached = eventually(lambda: _cached(stack, "101010101", source="webhook"),
                        what="the webhook to reach the cache")
    assert cached["id"] == contact["id"]
    forged = httpx.post(f"{stack.url}/webhooks/alegra/not-our-token", json={"subject": "x"})
    assert forged.status_code in (401, 404)

    def moved() -> str | None:
        text = stack.metrics()
        bills = sample(text, "alegra_sync_alegra_requests_total", method="POST", company="default",
                       endpoint="/bills", status="201")
        applied = sample(text, "alegra_sync_inbox_settled_total", state="applied",
                         company="default") or 0
        return text if bills == 1 and applied >= 1 else None

    after = eventually(moved, what="the worker's counters to reach /metrics")
    assert sample(after, "alegra_sync_receipts_processed_total", outcome="completed",
                  company="default") == 1
    assert sample(after, "alegra_sync_receipts", status="queued", company="default") == 0
    assert (sample(after, "alegra_sync_webhook_deliveries_total") or 0) >= 1
    assert sample(after, "alegra_sync_webhook_cache_lag_seconds", quantile="0.5",
                  company="default") is not None
    assert (sample(after, "alegra_sync_rate_budget_limit") or 0) > 0
    assert sample(after, "alegra_sync_subscription_present", event="edit-client",
                  company="default") == 1
    _assert_no_secret_in_logs(stack)


def test_stuck_receipt_and_failed_event_are_repaired(stack: Stack) -> None:
    """A failed receipt found via /v1/cache/status is retried to one bill; a failed event is
    replayed into the cache."""
    assert stack.submit("warm-up").json()["status"] == "completed"  # supplier and account cached
    stack.sim.state.faults.update({"error_rate": 1.0, "error_status": 400})
    stuck = stack.submit("r-2").json()
    assert stuck["status"] == "failed"
    status = stack.status()
    assert status["receipts"]["by_status"]["failed"] == 1
    assert [r["id"] for r in status["receipts"]["recent_failed"]] == [stuck["id"]]
    stack.sim.state.faults.update({"error_rate": 0.0})
    retried = stack.http("POST", f"/v1/receipts/{stuck['id']}/retry")
    assert (retried.status_code, retried.json()["status"]) == (202, "queued")

    def finished() -> dict[str, Any] | None:
        body = stack.http("GET", f"/v1/receipts/{stuck['id']}", key="acme").json()
        return body if body["status"] == "completed" else None

    done = eventually(finished, what="the retried receipt to complete")
    assert done["alegra"]["bill_id"] is not None
    assert stack.sim.state.calls("POST", "/contacts") == 1  # the supplier was created once
    assert stack.sim.state.snapshot()["bills"] == 2  # warm-up and the retried receipt, no more

    contact_id = done["alegra"]["contact_id"]
    stack.sim.state.faults.update({"error_rate": 1.0, "error_status": 400})
    stack.sim.state.person_edit_contact(contact_id, email="compras@ochoa.do")
    failed = eventually(
        lambda: stack.http("GET", "/v1/events", params={"state": "failed"}).json()["data"],
        what="the confirmation to fail")
    stack.sim.state.faults.update({"error_rate": 0.0})
    replayed = stack.http("POST", f"/v1/events/{failed[0]['id']}/replay")
    assert (replayed.status_code, replayed.json()["attempts"]) == (200, 1)
    eventually(lambda: _cached(stack, "131246796", email="compras@ochoa.do"),
               what="the replayed event to reach the cache")
    applied = stack.http("GET", "/v1/events", params={"state": "applied"}).json()["data"]
    assert failed[0]["id"] in {e["id"] for e in applied}
    _assert_no_secret_in_logs(stack)
