"""create_simulator(): the simulator's wiring — its accounts, the API behind its gate, `/_sim/`,
deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from sync.simulator.accounts import Accounts
from sync.simulator.api import build_api
from sync.simulator.control import control_routes
from sync.simulator.deliveries import DeliveryRunner
from sync.simulator.gate import ApiGate
from sync.simulator.state import SimConfig, SimState

API_PREFIX = "/api/v1"


class _Http:
    """The one outgoing HTTP client (handshakes, deliveries), alive during the lifespan."""

    client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        if self.client is None:
            raise RuntimeError("the simulator's lifespan has not started")
        return self.client


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Built once per process: building one per simulator costs tens of milliseconds."""
    return ssl.create_default_context()


def create_simulator(config: SimConfig | None = None) -> tuple[Starlette, SimState]:
    """A fresh simulated Alegra and the ASGI app that serves it, with `config`'s account (the
    default one, returned); `app.state.accounts` adds and finds more (see `accounts.py`)."""
    accounts = Accounts(config or SimConfig())
    http = _Http()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(trust_env=False, verify=_tls_context()) as client:
            http.client = client
            task = asyncio.create_task(DeliveryRunner(accounts, client).run())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                http.client = None

    api = ApiGate(build_api(http.get), accounts)
    routes = [*control_routes(accounts), Mount(API_PREFIX, app=api)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = accounts.default
    app.state.accounts = accounts
    return app, accounts.default
