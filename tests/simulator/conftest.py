"""Fixtures for the simulator's own tests: an authenticated client and a webhook receiver."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import RunningSimulator, ServerThread

# One TLS context for every client: httpx builds a new one per client otherwise (~50 ms each).
TLS = ssl.create_default_context()


@pytest.fixture
def api(simulator: RunningSimulator) -> Iterator[httpx.Client]:
    """An httpx client on the simulator's /api/v1 with the right credentials."""
    with httpx.Client(base_url=simulator.base_url, auth=(simulator.email, simulator.token),
                      timeout=5.0, verify=TLS) as client:
        yield client


@pytest.fixture
def control(simulator: RunningSimulator) -> Iterator[httpx.Client]:
    """An httpx client on the simulator's root, for the /_sim/ control API."""
    with httpx.Client(base_url=simulator.root_url, timeout=5.0, verify=TLS) as client:
        yield client


class Receiver:
    """A webhook endpoint that records what it gets and answers the statuses it is told to."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.statuses: deque[int] = deque()  # answered in turn; 200 once empty
        self.delay_s = 0.0
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self.url = ""

    async def _hook(self, request: Request) -> Response:
        self.received.append(await request.body())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return Response(status_code=self.statuses.popleft() if self.statuses else 200)

    def deliveries(self) -> list[dict[str, Any]]:
        """The JSON bodies received so far (the handshake's empty body left out)."""
        return [json.loads(body) for body in self.received if body]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a loopback port; its URL is `receiver.url`."""
    hook = Receiver()
    server = ServerThread(hook.app).start()
    hook.url = f"{server.url}/hook"
    yield hook
    server.stop()


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll `condition` until true; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.01)
