"""The receipt flow in-process: a real store (SQLite and PostgreSQL), the real client, the
simulator on loopback."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraClient
from sync.flow.context import FlowEnv
from sync.flow.lease import new_owner
from sync.flow.run_receipt import run_receipt
from sync.receipt_model import parse_submission
from sync.receipt_resource import receipt_resource
from sync.settings import load_settings
from sync.store import receipt_work, receipts
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.support.databases import url_of
from tests.support.servers import RunningSimulator

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
RNC = "131246796"  # 1-31-24679-6, a valid RNC
OTHER_RNC = "101010632"


def receipt_body(**changes: Any) -> dict[str, Any]:
    """A valid receipt for a new supplier and a new expense account, one line at 18 % ITBIS."""
    body: dict[str, Any] = {
        "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
        "date": "2024-05-01",
        "ncf": "B0100000001",
        "category": "Gastos de ferretería",
        "lines": [{"description": "Tornillos", "amount": "100.00", "quantity": 2,
                   "tax_rate": 18}],
    }
    body.update(changes)
    return body


def with_png(body: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64encode(PNG).decode()
    return {**body, "attachment": {"filename": "receipt.png", "content_type": "image/png",
                                   "data_base64": data}}


@dataclass
class Flow:
    """The flow's environment plus helpers to store receipts and run them like the lane does."""

    env: FlowEnv
    sim: RunningSimulator
    partner_id: str
    owner: str
    _n: int = 0

    @property
    def db(self) -> Database:
        return self.env.db

    async def submit(self, body: dict[str, Any]) -> str:
        self._n += 1
        submission = parse_submission(body, max_attachment_bytes=1 << 20)
        receipt_id, _ = await receipts.insert_receipt(
            self.db, partner_id=self.partner_id, idempotency_key=f"k{self._n}",
            submission=submission,
        )
        return receipt_id

    async def run_next(self) -> str | None:
        """Claim the next ready receipt and run it; its state afterwards, None if none ready."""
        claimed = await receipt_work.claim_next(self.db, owner=self.owner, lease_s=60)
        if claimed is None:
            return None
        return await run_receipt(self.env, claimed, self.owner)

    async def process(self, body: dict[str, Any]) -> str:
        receipt_id = await self.submit(body)
        await self.run_next()
        return receipt_id

    async def resource(self, receipt_id: str) -> dict[str, Any]:
        row = await receipts.get_receipt(self.db, receipt_id, None)
        assert row is not None
        return receipt_resource(row, await receipts.get_steps(self.db, receipt_id))

    async def make_ready(self, receipt_id: str) -> None:
        """Skip a rescheduled receipt's backoff (the test does not wait for the clock)."""
        await self.db.execute(
            "UPDATE receipts SET next_attempt_at = NULL WHERE id = ?", (receipt_id,)
        )

    def calls(self, method: str | None = None, prefix: str | None = None) -> int:
        return self.sim.state.calls(method, prefix)


def outcomes(resource: dict[str, Any]) -> dict[str, str]:
    return {step["step"].split(":")[0]: step["outcome"] for step in resource["steps"]}


def error_of(resource: dict[str, Any]) -> dict[str, Any]:
    assert resource["error"] is not None
    return dict(resource["error"])


@pytest.fixture
async def flow(database_target: Path | str, simulator: RunningSimulator) -> AsyncIterator[Flow]:
    """A FlowEnv on a fresh store of each engine (`engine`), talking to the simulator with a
    short read timeout."""
    settings = load_settings(env_file=None, environ={
        "SECRET_KEY": "x" * 32, "DATABASE_URL": url_of(database_target),
        "ALEGRA_BASE_URL": simulator.base_url,
        "ALEGRA_EMAIL": simulator.email, "ALEGRA_TOKEN": simulator.token,
    })
    db = await Database.open(settings.database_target)
    budget = RateBudget(limit=simulator.config.rate_limit, window_s=simulator.config.window_s)
    client = AlegraClient(
        simulator.base_url, simulator.email, simulator.token, budget,
        timeout=httpx.Timeout(1.0), backoff_base_s=0.01, backoff_cap_s=0.05,
    )
    partner, _ = await create_partner(db, "acme")
    env = FlowEnv(settings, db, client, asyncio.Event())
    try:
        yield Flow(env, simulator, partner.id, new_owner())
    finally:
        await client.aclose()
        await db.close()

