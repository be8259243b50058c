"""The notifier: the worker's task that sends due deliveries to partners' endpoints.

Worker side (the web process never imports it), and no Alegra budget: it is not a company lane,
only a task beside the fleet. At most `PARTNER_WEBHOOKS_CONCURRENCY` attempts at once, at most
`PER_ENDPOINT_CONCURRENCY` to one endpoint, each bounded by `ATTEMPT_TIMEOUT_S`: a slow or dead
endpoint fills its own slots only, never a receipt's time nor another endpoint's.

Each attempt resolves the endpoint's name afresh, refuses private addresses (unless
PARTNER_WEBHOOKS_ALLOW_PRIVATE), connects to the address it checked (TLS still verifies the
name), follows no redirect, and reads at most MAX_ANSWER_BYTES of the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from sync import credentials
from sync.logs import get_logger
from sync.notifications import queue, signer
from sync.notifications.addresses import Target, UnsafeUrl, check_url
from sync.notifications.queue import Attempt
from sync.notifications.records import (
    ATTEMPT_TIMEOUT_S,
    MAX_ANSWER_BYTES,
    PER_ENDPOINT_CONCURRENCY,
    Outgoing,
)
from sync.settings import Settings, SettingsError
from sync.store.db import Database

POLL_S = 0.1  # how often the queue is read when nothing finished meanwhile
USER_AGENT = "alegra-sync-webhooks/1"


@dataclass
class Notifier:
    """Sends what is due, in slots; `run` until `stopping` is set.

    A delivery stays in `running` (and its endpoint's slot taken) from the moment it is read
    until its attempt is recorded: until then the row is still due, and must not be sent twice.
    Attempts that end meanwhile are recorded together, one transaction (one commit) per batch."""

    settings: Settings
    db: Database
    client: httpx.AsyncClient
    concurrency: int
    schedule: tuple[float, ...]
    in_flight: Counter[str] = field(default_factory=Counter)
    running: set[str] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ended: list[tuple[Outgoing, Attempt]] = field(default_factory=list)
    ended_wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False
    on_settled: Callable[[str, queue.Settled], None] | None = None
    scope: Callable[[], queue.Scope] | None = None  # None: every delivery (one worker)

    async def run(self, stopping: asyncio.Event) -> None:
        log = get_logger(lane="notifications")
        recorder = asyncio.create_task(self._recorder())
        try:
            async with asyncio.TaskGroup() as group:
                while not stopping.is_set():
                    try:
                        for outgoing in await self._take_due():
                            group.create_task(self._send(outgoing))
                    except Exception:  # the store hiccupped: try again at the next poll
                        log.exception("notifications.poll_failed")
                    self.wake.clear()
                    waits = [asyncio.ensure_future(self.wake.wait()),
                             asyncio.ensure_future(stopping.wait())]
                    await asyncio.wait(waits, timeout=POLL_S,
                                       return_when=asyncio.FIRST_COMPLETED)
                    for waiting in waits:
                        waiting.cancel()
            # the attempts under way have finished (each bounded by ATTEMPT_TIMEOUT_S)
        finally:
            self.closing = True
            self.ended_wake.set()
            await recorder

    async def _take_due(self) -> list[Outgoing]:
        free = self.concurrency - len(self.running)
        if free <= 0:
            return []
        busy = [e for e, n in self.in_flight.items() if n >= PER_ENDPOINT_CONCURRENCY]
        chosen: list[str] = []
        slots = Counter(self.in_flight)
        due = await queue.due(self.db, limit=free * 4 + len(self.running), busy=busy,
                              scope=None if self.scope is None else self.scope())
        for delivery_id, endpoint_id in due:
            if len(chosen) >= free:
                break
            if delivery_id in self.running or slots[endpoint_id] >= PER_ENDPOINT_CONCURRENCY:
                continue
            slots[endpoint_id] += 1
            chosen.append(delivery_id)
        taken = await queue.take(self.db, chosen)
        for outgoing in taken:
            self.running.add(outgoing.delivery_id)
            self.in_flight[outgoing.endpoint_id] += 1
        return taken

    async def _send(self, outgoing: Outgoing) -> None:
        try:
            attempt = await attempt_delivery(self.client, self.settings, outgoing)
        except Exception as exc:  # a bug: recorded as a failed attempt, retried by schedule
            get_logger(delivery_id=outgoing.delivery_id).exception("notification.attempt_error")
            attempt = Attempt(None, 0, f"internal error: {type(exc).__name__}")
        self.ended.append((outgoing, attempt))
        self.ended_wake.set()

    async def _recorder(self) -> None:
        """Record the attempts that ended, a batch per transaction, until closing."""
        while True:
            await self.ended_wake.wait()
            self.ended_wake.clear()
            batch, self.ended = self.ended, []
            if batch:
                await self._record(batch)
            if self.closing and not self.ended:
                return

    async def _record(self, batch: list[tuple[Outgoing, Attempt]]) -> None:
        try:
            settled = await queue.settle_many(self.db, batch, schedule=self.schedule)
        except Exception:  # not recorded: the rows are still due and are sent again
            get_logger(lane="notifications").exception("notifications.record_failed")
            settled = []
        for (outgoing, attempt), result in zip(batch, settled, strict=False):
            log = get_logger(delivery_id=outgoing.delivery_id, webhook_id=outgoing.event_id,
                             endpoint_id=outgoing.endpoint_id)
            _log_settled(log, outgoing, attempt, result)
            if self.on_settled is not None:
                self.on_settled(outgoing.delivery_id, result)
        for outgoing, _ in batch:
            self.running.discard(outgoing.delivery_id)
            self.in_flight[outgoing.endpoint_id] -= 1
            if self.in_flight[outgoing.endpoint_id] <= 0:
                del self.in_flight[outgoing.endpoint_id]
        self.wake.set()


def _log_settled(log: Any, outgoing: Outgoing, attempt: Attempt,
                 settled: queue.Settled) -> None:
    fields = {"status": attempt.status, "latency_ms": attempt.latency_ms,
              "attempt": outgoing.attempts + 1, "state": settled.state.value}
    if attempt.delivered:
        log.info("notification.delivered", **fields)
        return
    log.warning("notification.attempt_failed", error=attempt.error,
                next_attempt_at=settled.next_attempt_at, **fields)
    if settled.disabled is not None:
        log.error("notification.endpoint_disabled", reason=settled.disabled)


def signing_secrets(settings: Settings, outgoing: Outgoing, now: datetime) -> list[str]:
    """The endpoint's secret, and the one a rotation replaced while their overlap lasts."""
    found = [credentials.decrypt(settings, outgoing.secret_enc)]
    expires = outgoing.old_secret_expires_at
    if outgoing.old_secret_enc and expires and datetime.fromisoformat(expires) > now:
        found.append(credentials.decrypt(settings, outgoing.old_secret_enc))
    return found


async def attempt_delivery(
    client: httpx.AsyncClient, settings: Settings, outgoing: Outgoing
) -> Attempt:
    """One signed POST of the event's body; how it went (never raises for the endpoint's
    sake: a refused address, a timeout or a reset is a failed attempt with its reason)."""
    started = time.perf_counter()

    def took() -> int:
        return round((time.perf_counter() - started) * 1000)

    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
            target = await check_url(
                outgoing.url, allow_private=settings.partner_webhooks_allow_private)
            body = outgoing.body.encode("utf-8")
            now = datetime.now(UTC)
            headers = signer.headers(outgoing.event_id, body,
                                     signing_secrets(settings, outgoing, now), now)
            status, answer = await _post(client, target, body, headers)
    except UnsafeUrl as exc:
        return Attempt(None, took(), f"refused: {exc}")
    except SettingsError as exc:
        return Attempt(None, took(), f"cannot sign: {exc.name}")
    except TimeoutError:
        return Attempt(None, took(), f"no answer within {ATTEMPT_TIMEOUT_S:.0f} s")
    except httpx.HTTPError as exc:
        return Attempt(None, took(), f"{type(exc).__name__}: {exc}"[:MAX_ANSWER_BYTES])
    error = None if 200 <= status < 300 else f"HTTP {status}: {answer}"[:MAX_ANSWER_BYTES]
    return Attempt(status, took(), error)


def connect_url(target: Target) -> str:
    """The URL with its host replaced by the checked address (the Host header keeps the name)."""
    parts = urlsplit(target.url)
    host = f"[{target.address}]" if ":" in target.address else target.address
    return urlunsplit((parts.scheme, f"{host}:{target.port}", parts.path or "/", parts.query, ""))


async def _post(
    client: httpx.AsyncClient, target: Target, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    parts = urlsplit(target.url)
    host_header = parts.netloc.rpartition("@")[2]
    request = client.build_request(
        "POST", connect_url(target), content=body,
        headers={**headers, "content-type": "application/json", "user-agent": USER_AGENT,
                 "host": host_header},
        extensions={"sni_hostname": target.host},
    )
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        answer = b""
        async for chunk in response.aiter_raw():
            answer += chunk
            if len(answer) >= MAX_ANSWER_BYTES:
                break
    finally:
        await response.aclose()
    return response.status_code, answer[:MAX_ANSWER_BYTES].decode("utf-8", errors="replace")


def build_client() -> httpx.AsyncClient:
    """No proxies from the environment, no redirects, no cookies kept."""
    return httpx.AsyncClient(
        trust_env=False, follow_redirects=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        timeout=httpx.Timeout(ATTEMPT_TIMEOUT_S, connect=5.0),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
    )


async def run(settings: Settings, db: Database, stopping: asyncio.Event,
              scope: Callable[[], queue.Scope] | None = None) -> None:
    """The notifier until `stopping` (`sync/worker.py` runs it beside the fleet; `scope`: which
    deliveries this worker sends, its leased companies')."""
    if settings.partner_webhooks_allow_private:
        get_logger(lane="notifications").warning(
            "notifications.private_addresses_allowed",
            setting="PARTNER_WEBHOOKS_ALLOW_PRIVATE",
            meaning="http:// and private, loopback and link-local addresses may be called",
        )
    async with build_client() as client:
        notifier = Notifier(settings, db, client, settings.partner_webhooks_concurrency,
                            settings.partner_webhooks_retry_s, scope=scope)
        await notifier.run(stopping)
