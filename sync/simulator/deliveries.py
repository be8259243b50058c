"""Webhook traffic: the subscription handshake and the deliveries, sent in the background.

Changes queue deliveries in their account's `Outbox` (from any thread: API handlers or a test's
person hooks). `DeliveryRunner.run`, started in the app's lifespan, sends every account's
deliveries to that account's subscribers, in order per subscription, with httpx: a non-2xx or a
timeout is retried after each of `delivery_retry_delays`; every failed attempt counts toward the
subscription's consecutive failures, a success resets the count, and `max_consecutive_failures`
in a row delete the subscription.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from sync.simulator.accounts import Accounts
    from sync.simulator.state import SimState


@dataclass(frozen=True)
class DeliveryAttempt:
    """One delivery attempt; `status` is None when no answer came (timeout, refused)."""

    subscription_id: str
    event: str
    status: int | None
    ok: bool
    at: float


@dataclass(frozen=True)
class Pending:
    event: str
    body: dict[str, Any]


class Outbox:
    """Deliveries waiting to be sent, in order per subscription; safe to fill from any thread."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Pending]] = {}
        self._lock = threading.Lock()
        self._wake: Callable[[], None] | None = None

    def bind(self, wake: Callable[[], None] | None) -> None:
        """Set (or clear) what to call when a delivery is queued."""
        with self._lock:
            self._wake = wake

    def put(self, sub_id: str, event: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._queues.setdefault(sub_id, deque()).append(Pending(event, body))
            if self._wake is not None:
                self._wake()

    def take(self, sub_id: str) -> Pending | None:
        with self._lock:
            queue = self._queues.get(sub_id)
            return queue.popleft() if queue else None

    def discard(self, sub_id: str) -> None:
        with self._lock:
            self._queues.pop(sub_id, None)

    def waiting(self) -> list[str]:
        """Subscriptions with deliveries queued."""
        with self._lock:
            return [sub_id for sub_id, queue in self._queues.items() if queue]

    def pending(self) -> int:
        with self._lock:
            return sum(len(queue) for queue in self._queues.values())


async def handshake(client: httpx.AsyncClient, url: str, timeout_s: float) -> bool:
    """POST an empty body to `url`, as Alegra does before subscribing; True on a timely 2xx."""
    try:
        response = await client.post(url, content=b"", timeout=timeout_s)
    except (httpx.HTTPError, httpx.InvalidURL):
        return False
    return response.is_success


class DeliveryRunner:
    """Sends every account's deliveries: one worker task per subscription with work queued."""

    def __init__(self, accounts: Accounts, client: httpx.AsyncClient) -> None:
        self.accounts = accounts
        self.client = client
        self._workers: dict[tuple[SimState, str], asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Until cancelled: wake on every queued delivery and start idle subscriptions' workers."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def wake_up() -> None:  # called from whichever thread queued the delivery
            loop.call_soon_threadsafe(wake.set)

        self.accounts.bind(wake_up)
        try:
            while True:
                wake.clear()
                self._start_workers()
                await wake.wait()
        finally:
            self.accounts.bind(None)
            for task in self._workers.values():
                task.cancel()
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    def _start_workers(self) -> None:
        for state in self.accounts.all():
            for sub_id in state.outbox.waiting():
                worker = self._workers.get((state, sub_id))
                if worker is None or worker.done():
                    self._workers[state, sub_id] = asyncio.create_task(self._work(state, sub_id))

    async def _work(self, state: SimState, sub_id: str) -> None:
        while (pending := state.outbox.take(sub_id)) is not None:
            await self._deliver(state, sub_id, pending)

    async def _deliver(self, state: SimState, sub_id: str, pending: Pending) -> None:
        if state.faults.roll_drop():
            with state.lock:
                state.dropped_deliveries += 1
            return
        for delay in (0.0, *state.config.delivery_retry_delays):
            await asyncio.sleep(delay)
            subscription = state.subscriptions.get(sub_id)
            if subscription is None:
                return
            status = await self._post(state, subscription["url"], pending.body)
            ok = status is not None and 200 <= status < 300
            _record(state, sub_id, pending.event, status, ok)
            if ok or sub_id not in state.subscriptions:
                return

    async def _post(self, state: SimState, url: str, body: dict[str, Any]) -> int | None:
        timeout = state.config.delivery_timeout_s
        try:
            response = await self.client.post(url, json=body, timeout=timeout)
        except (httpx.HTTPError, httpx.InvalidURL):
            return None
        return response.status_code


def _record(state: SimState, sub_id: str, event: str, status: int | None, ok: bool) -> None:
    with state.lock:
        state.deliveries.append(DeliveryAttempt(sub_id, event, status, ok, time.time()))
        failures = 0 if ok else state.subscription_failures.get(sub_id, 0) + 1
        state.subscription_failures[sub_id] = failures
        if failures >= state.config.max_consecutive_failures:
            state.drop_subscription(sub_id)
