"""Partner notifications end to end: the real web process and worker against the simulator, and
a partner's receiver on loopback that verifies every delivery with `standardwebhooks`
(PARTNER_WEBHOOKS_ALLOW_PRIVATE=true, as loopback is private; short retry delays).

A receipt's events arrive once each, in order; a bill deleted in Alegra reaches the partner
(through Alegra's webhook to this service); a receiver down for a while, and a worker killed
with SIGKILL meanwhile, still gets every event later with its first `webhook-id`; a rotated
secret verifies with both secrets during the overlap.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from sync.simulator.state import SimConfig
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.notifications.conftest import Receiver
from tests.support.procs import (
    ManagedProcess,
    eventually,
    free_port,
    product_env,
    run_cli,
    start_web,
    start_worker,
)
from tests.support.servers import RunningSimulator, ServerThread, running_simulator

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECEIPT: dict[str, Any] = {
    "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
    "date": "2024-05-01", "ncf": "B0100000001", "category": "Gastos de ferretería",
    "lines": [{"description": "Tornillos", "amount": "100.00", "quantity": 2, "tax_rate": 18}],
}


@dataclass
class Stack:
    sim: RunningSimulator
    env: dict[str, str]
    tmp: Path
    key: str
    receiver: Receiver
    procs: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=40,
                             headers={"Authorization": f"Bearer {self.key}",
                                      **kwargs.pop("headers", {})}, **kwargs)

    def register(self, **body: Any) -> dict[str, Any]:
        response = self.call("POST", "/v1/webhook-endpoints",
                             json={"url": self.receiver.url, **body})
        assert response.status_code == 201, response.text
        made = dict(response.json())
        self.receiver.secrets.append(made["secret"])
        return made

    def submit(self, idem: str, **changes: Any) -> dict[str, Any]:
        response = self.call("POST", "/v1/receipts", json={**RECEIPT, **changes},
                             headers={"Idempotency-Key": idem, "Prefer": "wait=20"})
        assert response.status_code in (201, 202), response.text
        return dict(response.json())

    def logs(self) -> str:
        return "\n".join(p.logs() for p in self.procs.values())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    config = SimConfig(token="tok-" + secrets.token_hex(8), window_s=1.0,
                       delivery_retry_delays=(0.05, 0.05), handshake_timeout_s=5.0)
    receiver = Receiver()
    server = ServerThread(Starlette(routes=[Route("/hook", receiver.endpoint,
                                                  methods=["POST"])])).start()
    receiver.url = server.url + "/hook"
    db_path = tmp_path / "e2e.db"

    async def make_partner() -> str:
        db = await Database.open(db_path)
        try:
            return (await create_partner(db, "acme"))[1]
        finally:
            await db.close()

    key = asyncio.run(make_partner())
    with running_simulator(config) as sim:
        env = product_env(db_path, alegra_base_url=sim.base_url, email=sim.email,
                          token=sim.token, port=free_port(), ALEGRA_RATE_WINDOW_S="1",
                          LOG_LEVEL="info", PARTNER_WEBHOOKS_ALLOW_PRIVATE="true",
                          PARTNER_WEBHOOKS_RETRY_S="0.3,0.6,0.9,1.2,1.5,1.8,2.1,2.4,60")
        running = Stack(sim, env, tmp_path, key, receiver)
        try:
            running.procs["web"] = start_web(env, tmp_path)
            running.procs["worker"] = start_worker(env, tmp_path)
            yield running
        finally:
            for proc in reversed(running.procs.values()):
                proc.stop()
            server.stop()


def test_a_receipts_events_arrive_once_each_in_order_and_a_deleted_bill_reaches_the_partner(
    stack: Stack,
) -> None:
    """A receipts events arrive once each in order and a deleted bill reaches the partner."""
    result = run_cli(["webhooks", "register"], stack.env)  # Alegra's webhooks → this service
    assert result.returncode == 0, result.stderr
    endpoint = stack.register()
    receipt = stack.submit("n-1")
    assert receipt["status"] == "completed", receipt
    bill_id = receipt["alegra"]["bill_id"]
    eventually(lambda: stack.receiver.types() == ["receipt.completed"], 20, "receipt.completed")
    completed = stack.receiver.got[0].body["data"]
    assert (completed["receipt_id"], completed["bill"]["id"]) == (receipt["id"], bill_id)

    stack.sim.state.person_delete_bill(bill_id)  # someone deletes it in Alegra

    eventually(lambda: stack.receiver.types() == ["receipt.completed", "bill.deleted"], 30,
               "bill.deleted (delivered: " + ", ".join(stack.receiver.types()) + ")")
    deleted = stack.receiver.got[1].body["data"]
    assert (deleted["receipt_id"], deleted["bill"]["id"]) == (receipt["id"], bill_id)
    assert stack.receiver.bad_signatures == 0
    assert len({r.webhook_id for r in stack.receiver.got}) == 2

    def states() -> list[str]:
        answer = stack.call("GET", f"/v1/webhook-endpoints/{endpoint['id']}/deliveries")
        return [d["state"] for d in answer.json()["data"]]

    eventually(lambda: states() == ["delivered", "delivered"], 10, "both recorded delivered")
    assert stack.procs["worker"].logs().count("notification.delivered") == 2


def test_a_receiver_down_while_the_worker_is_killed_gets_every_event_later_with_its_id(
    stack: Stack,
) -> None:
    """A receiver down while the worker is killed gets every event later with its id."""
    refused: list[str] = []

    def down(seen: Any) -> int:
        refused.append(seen.webhook_id)
        return 503

    stack.receiver.answer = down
    stack.register()
    receipts = [stack.submit(f"k-{n}", ncf=f"B010000001{n}")["id"] for n in range(3)]
    eventually(lambda: len(set(refused)) == 3 and len(refused) >= 4, 20, "refused attempts")
    stack.procs["worker"].kill9()
    stack.procs["worker"] = start_worker(stack.env, stack.tmp, name="worker2")
    stack.receiver.answer = lambda _: 200  # the receiver is back
    eventually(lambda: len(stack.receiver.got) == 3, 30, "the retries")
    assert {r.webhook_id for r in stack.receiver.got} == set(refused)
    assert sorted(r.body["data"]["receipt_id"] for r in stack.receiver.got) == sorted(receipts)
    assert stack.receiver.bad_signatures == 0


def test_a_rotated_secret_verifies_with_both_secrets_during_the_overlap(stack: Stack) -> None:
    """A rotated secret verifies with both secrets during the overlap."""
    endpoint = stack.register(events=["receipt.failed"])
    old = stack.receiver.secrets[0]
    rotated = stack.call("POST", f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret").json()
    for n, known in enumerate(([old], [rotated["secret"]]), 1):
        stack.receiver.secrets = known  # a partner that knows one of the two
        ping = stack.call("POST", f"/v1/webhook-endpoints/{endpoint['id']}/test")
        assert ping.status_code == 202
        eventually(lambda n=n: len(stack.receiver.got) == n, 20, f"ping {n}")  # type: ignore[misc]
    assert stack.receiver.types() == ["ping", "ping"]
    assert [r.signatures for r in stack.receiver.got] == [2, 2]
    assert stack.receiver.bad_signatures == 0
