"""The one HTTP client for Alegra: auth, timeouts, the shared rate budget, retries, errors.

Every attempt waits for the `RateBudget`, feeds the answer's `X-Rate-Limit-*` headers back to
it, and only the exceptions of `errors.py` leave this module. Reads (GET, and DELETE, which is
idempotent) are retried with capped exponential backoff and full jitter. A write (POST, PUT) is
repeated only when it provably never left (connection refused, pool timeout); once it may have
reached Alegra, a missing or 5xx answer raises `OutcomeUnknown`. A 429 was not processed, so
any method waits out the window and is repeated, a bounded number of times. A worker's client
asks its `guard` before every request (before waiting for the budget, and again right before
sending): once the company's lease may have run out it raises `LeaseExpired` and nothing leaves
(sync/leasing.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from sync.alegra.budget import Priority, RateBudget
from sync.alegra.errors import (
    AlegraError,
    OutcomeUnknown,
    RateLimited,
    Retryable,
    TransportFailed,
    Unavailable,
)
from sync.alegra.pages import UnexpectedListBody, next_start, page_limit, parse_list_body
from sync.alegra.responses import IDEMPOTENT, decipher, rate_headers
from sync.backoff import FULL_JITTER, Backoff
from sync.logs import get_logger
from sync.settings import Settings

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
MAX_RATE_LIMIT_WAITS = 20
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Credentials sent to the built-in simulator when none are configured (settings.simulated).
SIMULATOR_EMAIL = "simulator@localhost"
SIMULATOR_TOKEN = "simulated"  # noqa: S105 - not a secret: only the local simulator accepts it

OnResponse = Callable[[str, str, int | None, float], None]
# Asked right before a request is sent, with its method and path; raises (`LeaseExpired`) when
# the request must not leave this process: the company's lease may have run out (sync/leasing.py).
Guard = Callable[[str, str], None]


@dataclass(frozen=True)
class Page:
    start: int
    rows: list[dict[str, Any]]
    total: int | None


class AlegraClient:
    """One long-lived connection pool per Alegra account; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        email: str,
        token: str,
        budget: RateBudget,
        *,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        on_response: OnResponse | None = None,
        stopping: asyncio.Event | None = None,
        guard: Guard | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=httpx.BasicAuth(email, token),
            timeout=timeout or DEFAULT_TIMEOUT,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._budget = budget
        self._max_attempts = max(1, max_attempts)
        self._backoff = Backoff(backoff_base_s, backoff_cap_s, FULL_JITTER)
        self._on_response = on_response
        self._stopping = stopping  # this client's own stop (a company's): ends budget waits
        self._guard = guard
        self._log = get_logger(component="alegra")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(
        self, path: str, *, priority: Priority, params: dict[str, Any] | None = None
    ) -> Any:
        return await self._request("GET", path, priority, {"params": params})

    async def post(
        self,
        path: str,
        *,
        priority: Priority,
        json: Any = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        return await self._request("POST", path, priority, {"json": json, "files": files})

    async def put(self, path: str, *, priority: Priority, json: Any) -> Any:
        return await self._request("PUT", path, priority, {"json": json})

    async def delete(self, path: str, *, priority: Priority) -> Any:
        return await self._request("DELETE", path, priority, {})

    async def iter_pages(
        self,
        path: str,
        *,
        priority: Priority,
        params: dict[str, Any] | None = None,
        start: int = 0,
        page_size: int = 30,
    ) -> AsyncGenerator[Page, None]:
        """Yield each page of a list from offset `start`. Raises Unavailable on a non-list body."""
        limit = page_limit(page_size)
        following: int | None = start
        while following is not None:
            query = {**(params or {}), "start": following, "limit": limit}
            body = await self.get(path, priority=priority, params=query)
            try:
                rows, total = parse_list_body(body)
            except UnexpectedListBody as exc:
                raise Unavailable(str(exc), status=200, method="GET", path=path) from exc
            yield Page(following, rows, total)
            following = next_start(following, limit, len(rows), total)

    async def _request(
        self, method: str, path: str, priority: Priority, send: dict[str, Any]
    ) -> Any:
        failures = waits = 0
        while True:
            try:
                return await self._attempt(method, path, priority, send)
            except RateLimited as exc:
                waits += 1
                self._rate_limited(exc, waits)
            except Retryable as exc:
                failures += 1
                await self._pause_before_retry(exc, failures)

    def _rate_limited(self, exc: RateLimited, waits: int) -> None:
        """Not processed: stop the whole budget until the reset, then repeat (up to a bound)."""
        self._budget.penalize(exc.reset_after)
        self._log.warning(
            "alegra.rate_limited",
            method=exc.method,
            path=exc.path,
            reset_after=exc.reset_after,
            waits=waits,
        )
        if waits >= MAX_RATE_LIMIT_WAITS:
            raise exc

    async def _pause_before_retry(self, exc: Retryable, failures: int) -> None:
        """Back off before repeating; re-raise when it must not or may no longer be repeated."""
        if isinstance(exc, OutcomeUnknown) or failures >= self._max_attempts:
            raise exc
        delay = self._backoff.delay(failures)
        self._log.info(
            "alegra.retry",
            method=exc.method,
            path=exc.path,
            attempt=failures,
            delay_s=round(delay, 3),
            error=type(exc).__name__,
            status=exc.status,
        )
        await asyncio.sleep(delay)

    async def _attempt(
        self, method: str, path: str, priority: Priority, send: dict[str, Any]
    ) -> Any:
        self._check(method, path)  # not even a wait for the budget once refused
        ticket = await self._budget.acquire(priority, stopping=self._stopping)
        try:
            self._check(method, path)  # the wait may have been long: asked again, right before
        except BaseException:
            self._budget.observe_no_response(ticket)
            raise
        started = time.monotonic()
        try:
            response = await self._http.request(method, path, **send)
        except httpx.RequestError as exc:
            self._budget.observe_no_response(ticket)
            self._report(method, path, None, started)
            raise transport_error(exc, method, path) from exc
        except BaseException:  # cancelled mid-flight: the slot is spent, the request no longer out
            self._budget.observe_no_response(ticket)
            raise
        self._report(method, path, response.status_code, started)
        status, headers = response.status_code, response.headers
        self._budget.observe(status=status, ticket=ticket, **rate_headers(headers))
        return decipher(
            status,
            headers,
            response.content,
            method=method,
            path=path,
            reason=response.reason_phrase,
            default_reset_s=self._budget.window_s,
        )

    def _check(self, method: str, path: str) -> None:
        if self._guard is not None:
            self._guard(method, path)

    def _report(self, method: str, path: str, status: int | None, started: float) -> None:
        seconds = time.monotonic() - started
        self._log.debug(
            "alegra.request", method=method, path=path, status=status, ms=round(seconds * 1000)
        )
        if self._on_response is not None:
            try:
                self._on_response(method, path_template(path), status, seconds)
            except Exception:  # a metrics bug must never turn a created bill into a "failure"
                self._log.exception("alegra.on_response_failed")


def transport_error(exc: httpx.RequestError, method: str, path: str) -> AlegraError:
    """No HTTP answer: safe to repeat if it never left or is a read; otherwise outcome unknown."""
    detail = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, NEVER_SENT) or method in IDEMPOTENT:
        return TransportFailed(f"no answer from Alegra ({detail})", method=method, path=path)
    return OutcomeUnknown(
        f"no answer to a {method}; it may have been applied ({detail})", method=method, path=path
    )


def path_template(path: str) -> str:
    """`/contacts/123` → `/contacts/{id}`: any path segment holding a digit is an id."""
    segments = path.split("?", 1)[0].split("/")
    return "/".join("{id}" if any(ch.isdigit() for ch in seg) else seg for seg in segments)


@dataclass(frozen=True)
class AlegraAccount:
    """Where and as whom to call Alegra: one company's credentials. Never printed whole."""

    base_url: str
    email: str
    token: str

    def __repr__(self) -> str:
        return f"AlegraAccount(base_url={self.base_url!r}, email={self.email!r})"

    @property
    def user(self) -> tuple[str, str]:
        """Alegra counts its rate limit per user: companies with the same user share a budget."""
        return (self.base_url.rstrip("/"), self.email.strip().lower())


def settings_account(settings: Settings) -> AlegraAccount:
    """The environment's account (the company `default`); the simulator's without credentials."""
    email = settings.alegra_email or SIMULATOR_EMAIL
    token = str(settings.alegra_token) if settings.alegra_token is not None else SIMULATOR_TOKEN
    return AlegraAccount(settings.alegra_base_url, email, token)


def build_client(
    settings: Settings,
    budget: RateBudget,
    *,
    on_response: OnResponse | None = None,
    account: AlegraAccount | None = None,
    stopping: asyncio.Event | None = None,
    guard: Guard | None = None,
) -> AlegraClient:
    """A client for `account` (default: the environment's, or the simulator without one).
    `stopping`: its caller's own stop signal, which ends a wait on the (shared) budget.
    `guard`: asked before every request is sent (the worker's company lease, sync/leasing.py)."""
    account = account or settings_account(settings)
    return AlegraClient(
        account.base_url, account.email, account.token, budget, on_response=on_response,
        stopping=stopping, guard=guard,
    )
