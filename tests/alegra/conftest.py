"""Fixtures for the Alegra client's tests: a client factory aimed at pytest-httpserver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraClient

EMAIL = "ops@example.com"
TOKEN = "tok-secret-123456"

MakeClient = Callable[..., AlegraClient]


@pytest.fixture
async def make_client(httpserver: HTTPServer) -> AsyncIterator[MakeClient]:
    """Build clients on the fake Alegra's /api/v1 with fast retries; all closed afterwards."""
    made: list[AlegraClient] = []

    def make(budget: RateBudget | None = None, **options: Any) -> AlegraClient:
        options.setdefault("timeout", httpx.Timeout(2.0))
        options.setdefault("backoff_base_s", 0.01)
        options.setdefault("backoff_cap_s", 0.02)
        options.setdefault("max_attempts", 3)
        # Plain HTTP on loopback: skip loading the CA bundle, which costs ~0.1 s per client.
        options.setdefault("transport", httpx.AsyncHTTPTransport(verify=False))
        base_url = options.pop("base_url", httpserver.url_for("/api/v1"))
        client = AlegraClient(
            base_url, EMAIL, TOKEN, budget or RateBudget(limit=1000, window_s=1.0), **options
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")


def sequence(*responses: Response) -> Callable[[Request], Response]:
    """A handler answering each request with the next response (the last one repeats)."""
    queue = list(responses)

    def handle(_: Request) -> Response:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handle


class WindowedAlegra:
    """A handler that enforces a fixed rate window like Alegra and counts what it saw.

    The window opens at the first request after the previous one ended; `spent_by_others`
    requests of each window are taken by another integration sharing the credentials.
    """

    def __init__(self, limit: int, window_s: float, spent_by_others: int = 0) -> None:
        self.limit, self.window_s, self.others = limit, window_s, spent_by_others
        self.start: float | None = None
        self.per_window: list[int] = []
        self.rejected = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            now = time.monotonic()
            if self.start is None or now >= self.start + self.window_s:
                self.start = now
                self.per_window.append(0)
            used = self.per_window[-1] + self.others
            headers = {
                "X-Rate-Limit-Limit": str(self.limit),
                "X-Rate-Limit-Reset": f"{self.start + self.window_s - now:.3f}",
            }
            if used >= self.limit:
                self.rejected += 1
                headers["X-Rate-Limit-Remaining"] = "0"
                return json_response({"message": "Too many requests", "code": 429}, 429, headers)
            self.per_window[-1] += 1
            headers["X-Rate-Limit-Remaining"] = str(self.limit - used - 1)
            return json_response({"id": str(sum(self.per_window))}, 200, headers)
