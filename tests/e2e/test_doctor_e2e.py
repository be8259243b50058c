"""`alegra-sync doctor` end to end: the real web process and worker against the simulator.

Contrary mode (an Alegra that answers the other way on each guess): the first backfill's doctor
finds nothing to learn in an empty company; a receipt for a new supplier with a cédula fails with
Alegra's 400 and an error that names the identification type; once contacts and bills are typed
in Alegra's web app, `doctor` learns the company's codes and NCF field, status and `companies
list` say so, and the operator's retry creates the supplier with the company's own code and its
bill with the NCF where the company's bills keep it. Normal mode: `doctor` confirms every guess
it has evidence for and exits 0.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.simulator import contrary
from sync.simulator.state import SimConfig
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.doctor.test_cli import seed_everything
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
WINDOW_S = 2.0
CEDULA = "001-0075993-2"
NCF = "B0100000123"
# The checks that need the company's own records (the others read headers and the chart).
DATA_CHECKS = {"identification_types", "ncf_field", "identification_search", "name_search",
               "date_filter", "currency_shape"}


NORMAL = SimConfig(window_s=WINDOW_S)


@pytest.fixture
def sim_config() -> SimConfig:
    """Contrary mode, without the hand-typed data: the test types it in when it needs it."""
    return SimConfig(window_s=WINDOW_S, contrary=True, contrary_seed=False)


def receipt() -> dict[str, Any]:
    return {"supplier": {"name": "Pedro Ramírez Tavárez", "tax_id": CEDULA}, "date": "2024-05-01",
            "ncf": NCF, "category": "Gastos de ferretería",
            "lines": [{"description": "Tornillos", "amount": "100.00", "quantity": 2,
                       "tax_rate": 18}]}


@dataclass
class Stack:
    sim: RunningSimulator
    env: dict[str, str]
    db_path: Path
    keys: dict[str, str]
    web: ManagedProcess
    worker: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def post(self, body: dict[str, Any], idem: str) -> dict[str, Any]:
        answer = httpx.post(f"{self.url}/v1/receipts", json=body, timeout=40,
                            headers={**self.headers("acme"), "Idempotency-Key": idem,
                                     "Prefer": "wait=15"})
        assert answer.status_code in (201, 202), answer.text
        return dict(answer.json())

    def final(self, receipt_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            got = httpx.get(f"{self.url}/v1/receipts/{receipt_id}", headers=self.headers("acme"),
                            timeout=10).json()
            return got if got["status"] in ("completed", "failed") else None

        return eventually(done, 30, f"receipt {receipt_id} to finish")

    def doctor_status(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/v1/cache/status", headers=self.headers("ops"), timeout=10)
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["doctor"])

    def cli(self, *args: str) -> tuple[int, str]:
        """The exit status and what was printed (stdout; stderr follows a failure)."""
        done = run_cli(list(args), self.env)
        return done.returncode, done.stdout if done.returncode in (0, 1) else done.stderr

    def backfilled(self) -> bool:
        return self.doctor_status()["checked_at"] is not None

    def logs(self) -> str:
        return "\n".join(p.logs() for p in (self.web, self.worker))


@pytest.fixture
def stack(tmp_path: Path, simulator: RunningSimulator) -> Iterator[Stack]:
    db_path = tmp_path / "e2e.db"

    async def make_partners() -> dict[str, str]:
        db = await Database.open(db_path)
        try:
            return {"acme": (await create_partner(db, "acme"))[1],
                    "ops": (await create_partner(db, "ops", is_admin=True))[1]}
        finally:
            await db.close()

    keys = asyncio.run(make_partners())
    env = product_env(db_path, alegra_base_url=simulator.base_url, email=simulator.email,
                      token=simulator.token, port=free_port(),
                      ALEGRA_RATE_WINDOW_S=str(WINDOW_S), LOG_LEVEL="info")
    web = start_web(env, tmp_path)
    worker = start_worker(env, tmp_path)
    running = Stack(simulator, env, db_path, keys, web, worker)
    try:
        yield running
    finally:
        running.worker.stop()
        running.web.stop()


def _verdicts(doctor: dict[str, Any]) -> dict[str, str]:
    return {f["check_name"]: f["verdict"] for f in doctor["findings"]}


def test_contrary_alegra_refuses_our_guess_then_doctor_learns_and_the_retry_succeeds(
    stack: Stack,
) -> None:
    eventually(stack.backfilled, 30, "the first backfill and its doctor")
    first = stack.doctor_status()
    assert {f["ran_by"] for f in first["findings"]} == {"backfill"}
    assert {_verdicts(first)[c] for c in DATA_CHECKS} == {"no evidence"}
    assert first["learned"] == []

    failed = stack.final(stack.post(receipt(), "r1")["id"])
    assert failed["status"] == "failed", stack.logs()
    error = failed["error"]
    assert (error["code"], error["status"]) == ("identification_type_refused", 400)
    assert "tipo de identificación 'CED'" in error["alegra_message"]
    assert "alegra-sync doctor --company default" in error["message"]
    assert stack.sim.state.calls("POST", "/contacts", status=400) == 1

    contrary.seed(stack.sim.state)  # a person types suppliers and bills in Alegra's web app
    status, out = stack.cli("doctor")
    assert status == 1, out
    assert "learned: default now writes identification_type.CEDULA = 'CE'" in out
    assert "learned: default now writes ncf_field = 'numberTemplate.fullNumber'" in out
    learned = {s["setting"]: s["value"] for s in stack.doctor_status()["learned"]}
    assert learned == {"identification_type.RNC": "RN", "identification_type.CEDULA": "CE",
                       "ncf_field": "numberTemplate.fullNumber"}
    status, listed = stack.cli("companies", "list")
    assert status == 0
    assert "identification_type.CEDULA=CE" in listed

    status, out = stack.cli("receipts", "retry", failed["id"])
    assert status == 0, out
    done = stack.final(failed["id"])
    assert done["status"] == "completed", stack.logs()
    with stack.sim.state.lock:
        [created] = [c for c in stack.sim.state.contacts.values()
                     if c["identification"] == "00100759932"]
        [bill] = [b for b in stack.sim.state.bills.values()
                  if failed["id"] in str(b.get("observations"))]
    assert created["identificationObject"]["type"] == "CE"
    assert bill["numberTemplate"] == [{contrary.NCF_KEY: NCF}]


@pytest.mark.parametrize("sim_config", [NORMAL])
def test_normal_alegra_doctor_confirms_every_guess_it_has_evidence_for(stack: Stack) -> None:
    seed_everything(stack.sim)
    eventually(stack.backfilled, 30, "the first backfill and its doctor")
    eventually(lambda: stack.sim.state.subscriptions, 30, "the worker's subscriptions")
    status, out = stack.cli("doctor", "--json")
    assert status == 0, out
    found = {f["check"]: f for f in json.loads(out)}
    assert "contradicted" not in {f["verdict"] for f in found.values()}
    assert {found[c]["verdict"] for c in DATA_CHECKS} == {"confirmed"}
    assert found["subscription_urls"]["verdict"] == "confirmed"
    assert stack.doctor_status()["learned"] == []
