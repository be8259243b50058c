"""The duplicate check in-process: the real flow on each engine's store, the simulator on loopback.

`Flow`, `receipt_body` and `with_png` come from the flow suite; `make_flow` builds one with the
settings a test needs (strict mode), and can give a second "worker" on the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraClient
from sync.events.apply import confirm_bill
from sync.flow.context import FlowEnv
from sync.flow.lease import new_owner
from sync.settings import load_settings
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.flow.conftest import Flow
from tests.support.databases import url_of
from tests.support.servers import RunningSimulator

MakeFlow = Callable[..., Awaitable[Flow]]


@pytest.fixture
async def make_flow(database_target: Path | str, simulator: RunningSimulator
                    ) -> AsyncIterator[MakeFlow]:
    """Build `Flow`s on one database file: each has its own connection, client and locks, as
    separate worker processes would; `strict=True` turns on STRICT_DUPLICATE_CHECK."""
    async with AsyncExitStack() as stack:
        partner_id: list[str] = []

        async def make(*, strict: bool = False) -> Flow:
            settings = load_settings(env_file=None, environ={
                "SECRET_KEY": "x" * 32, "DATABASE_URL": url_of(database_target),
                "ALEGRA_BASE_URL": simulator.base_url, "ALEGRA_EMAIL": simulator.email,
                "ALEGRA_TOKEN": simulator.token, "STRICT_DUPLICATE_CHECK": str(strict).lower(),
            })
            db = await Database.open(settings.database_target)
            stack.push_async_callback(db.close)
            budget = RateBudget(limit=simulator.config.rate_limit,
                                window_s=simulator.config.window_s)
            client = AlegraClient(
                simulator.base_url, simulator.email, simulator.token, budget,
                timeout=httpx.Timeout(1.0), backoff_base_s=0.01, backoff_cap_s=0.05,
            )
            stack.push_async_callback(client.aclose)
            if not partner_id:
                partner_id.append((await create_partner(db, "acme"))[0].id)
            env = FlowEnv(settings, db, client, asyncio.Event())
            return Flow(env, simulator, partner_id[0], new_owner())

        yield make


@pytest.fixture
async def flow(make_flow: MakeFlow) -> Flow:
    """The flow as the worker runs it by default (strict mode off)."""
    return await make_flow()


async def learn_bill(flow: Flow, bill_id: str) -> str:
    """What the worker does for a `new-/edit-/delete-bill` webhook: fetch the bill and store it."""
    return await confirm_bill(flow.env.alegra, flow.db, bill_id)
