"""One rate budget per Alegra account, shared by every request the worker sends: corrected from
Alegra's `X-Rate-Limit-*` headers on every answer, waiters served by priority (receipts, events,
background, with a small reserve), and no waiting once the worker is stopping. `_Ledger` is the
pure accounting. Design: docs/sync.md ("The rate budget and its priorities").
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from sync.alegra.errors import Stopping


class Priority(IntEnum):
    RECEIPT = 0
    EVENT = 1
    BACKGROUND = 2


@dataclass
class _Ledger:
    """The current window as best known: slots left, when it ends, which requests are out.

    Windows are numbered (`epoch`). A ticket numbers a request in the order it was let out; the
    ledger remembers the window each request still out went in. An answer to a request sent in
    an earlier window says nothing reliable about this one (it may have been counted in either),
    so only answers to this window's requests correct the estimate.
    """

    limit: int
    window_s: float
    reserve_given: int | None
    remaining: int = 0
    window_end: float | None = None  # None: no window open (nothing sent since the last one)
    confirmed: bool = False  # window_end came from Alegra's headers, not from our own guess
    epoch: int = 0
    out: dict[int, int] = field(default_factory=dict)  # requests out: ticket -> their epoch
    sent: int = 0  # tickets given so far

    def __post_init__(self) -> None:
        self.remaining = self.limit

    @property
    def reserve(self) -> int:
        wanted = self.reserve_given if self.reserve_given is not None else max(1, self.limit // 30)
        return max(0, min(wanted, self.limit - 1))

    @property
    def margin(self) -> float:
        # [unverified] whether Alegra rounds X-Rate-Limit-Reset (whole seconds) up or down: a
        # window is taken to last up to one second (per minute of window) longer than reported,
        # so a truncated value never makes us start the next window early.
        return min(1.0, self.window_s / 60)

    @property
    def in_flight(self) -> int:
        return len(self.out)

    def _out_after(self, ticket: int | None) -> int:
        """This window's requests still out that were let out after `ticket` (all, for None)."""
        return sum(1 for t, epoch in self.out.items()
                   if epoch == self.epoch and (ticket is None or t > ticket))

    def roll(self, now: float) -> None:
        """Start a fresh window once the current one has ended: assume the full limit, less the
        requests sent in the last window and still out (they may land in this one)."""
        if self.window_end is None or now < self.window_end:
            return
        carried = self._out_after(None)
        self.epoch += 1
        self.confirmed = False
        self.remaining = max(0, self.limit - carried)
        self.window_end = now + self.window_s + self.margin if carried else None

    def may_send(self, priority: Priority, now: float) -> bool:
        self.roll(now)
        floor = 0 if priority == Priority.RECEIPT else self.reserve
        return self.remaining > floor

    def take(self, now: float) -> int:
        """Spend a slot; returns the ticket (the request's place in the order let out)."""
        if self.window_end is None:
            self.window_end = now + self.window_s + self.margin
        self.remaining -= 1
        ticket, self.sent = self.sent, self.sent + 1
        self.out[ticket] = self.epoch
        return ticket

    def settle(self, ticket: int | None) -> int | None:
        """The request is no longer out (answered, lost or never sent); returns the epoch it
        went in. Without a ticket: the oldest request still out."""
        if ticket is None:
            ticket = min(self.out, default=None)
        return None if ticket is None else self.out.pop(ticket, None)

    def give_back(self, ticket: int) -> None:
        """A granted slot that was never used (the waiter was cancelled)."""
        if self.settle(ticket) == self.epoch:
            self.remaining = min(self.limit, self.remaining + 1)

    def observe(
        self, now: float, ticket: int | None, epoch: int | None,
        headers: tuple[int | None, int | None, float | None],
    ) -> None:
        """Fold in one answer's (limit, remaining, reset_s): the answer to request `ticket`, let
        out in window `epoch` (what `settle` returned for it)."""
        limit, remaining, reset_s = headers
        if limit is not None and limit > 0:
            self.limit = limit
        self.roll(now)
        if epoch != self.epoch or remaining is None:
            return
        # Alegra counts requests as they arrive: ours let out before this one are in `remaining`
        # already; those let out after it and still out may not be, so assume they are not.
        # (One that overtook an earlier one on the way makes the estimate one too high until the
        # earlier one's answer: at worst a 429, which is waited out and repeated.) Within one
        # window the true remaining only falls, so the estimate is only ever lowered.
        self.remaining = min(self.remaining, max(0, remaining - self._out_after(ticket)))
        if reset_s is None:
            return
        end = now + max(0.0, reset_s) + self.margin
        if self.window_end is None or not self.confirmed:
            self.window_end, self.confirmed = end, True
        else:
            # Every reported end is at or after the true one (see `margin`): the earliest is best.
            self.window_end = min(self.window_end, end)

    def penalize(self, now: float, reset_after: float) -> None:
        """After a 429: nothing more in this window, which ends `reset_after` from now."""
        floor = min(1.0, self.window_s / 20)  # a reset of 0 must not become a tight loop
        self.window_end = now + max(reset_after, floor) + self.margin
        self.confirmed = True
        self.remaining = 0


@dataclass(order=True)
class _Waiter:
    priority: Priority
    seq: int
    future: asyncio.Future[int] = field(compare=False)


class RateBudget:
    """Shared by every Alegra call of one account; its design: docs/sync.md.

    `acquire` returns a ticket; hand it back to `observe` / `observe_no_response` so an answer
    is matched to the window its request was sent in (without one, the current window is meant).
    """

    def __init__(
        self,
        limit: int = 150,
        window_s: float = 60.0,
        *,
        reserve: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a rate budget needs limit >= 1 and window_s > 0")
        self._ledger = _Ledger(limit=limit, window_s=window_s, reserve_given=reserve)
        self._clock = clock
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Event | None = None
        self.sent_total = 0
        self.rate_limited_total = 0

    @property
    def window_s(self) -> float:
        return self._ledger.window_s

    @property
    def reset_margin_s(self) -> float:
        """How much longer than reported a window is assumed to last."""
        return self._ledger.margin

    def stop_waiting_on(self, stopping: asyncio.Event) -> None:
        """Once `stopping` is set, `acquire` no longer waits: docs/sync.md, "Shutdown"."""
        self._stopping = stopping

    async def acquire(self, priority: Priority, *, stopping: asyncio.Event | None = None) -> int:
        """Wait until a request of this priority may be sent; the slot is then spent. Raises
        `Stopping` instead of waiting (or while waiting) once the worker is stopping, or once
        `stopping` is set: the caller's own signal (one company's lanes, on a budget its Alegra
        user shares with other companies)."""
        head = self._head()
        if (head is None or head.priority > priority) and self._may_send(priority):
            return self._grant()
        signals = [s for s in (self._stopping, stopping) if s is not None]
        if any(s.is_set() for s in signals):
            raise Stopping("the worker is stopping: not waiting for the rate budget")
        waiter = _Waiter(priority, next(self._seq), asyncio.get_running_loop().create_future())
        heapq.heappush(self._queue, waiter)
        self._arm_timer()
        try:
            return await self._wait(waiter, signals)
        except (asyncio.CancelledError, Stopping):
            waiter.future.cancel()  # no-op if it was granted: `_withdraw` gives that slot back
            self._withdraw(waiter)
            raise

    async def _wait(self, waiter: _Waiter, signals: list[asyncio.Event]) -> int:
        """The waiter's slot, or `Stopping` as soon as a stop signal comes first."""
        if not signals:
            return await waiter.future
        stops = [asyncio.ensure_future(s.wait()) for s in signals]
        either: set[asyncio.Future[Any]] = {waiter.future, *stops}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for stop in stops:
                stop.cancel()
        if waiter.future.done():
            return waiter.future.result()
        raise Stopping("the worker is stopping: not waiting for the rate budget")

    def observe(
        self,
        *,
        status: int,
        limit: int | None,
        remaining: int | None,
        reset_s: float | None,
        ticket: int | None = None,
    ) -> None:
        """Fold in the `X-Rate-Limit-*` headers of an answer to a request this budget let out."""
        epoch = self._ledger.settle(ticket)
        self._ledger.observe(self._clock(), ticket, epoch, (limit, remaining, reset_s))
        self._dispatch()

    def observe_no_response(self, ticket: int | None = None) -> None:
        """A request this budget let out got no answer (transport error, cancelled)."""
        self._ledger.settle(ticket)
        self._dispatch()

    def penalize(self, reset_after: float) -> None:
        """After a 429: nothing is sent, whatever its priority, until `reset_after` has passed."""
        self.rate_limited_total += 1
        self._ledger.penalize(self._clock(), reset_after)
        self._dispatch()

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for /metrics and /v1/cache/status (`reset_in_s` 0: no window open)."""
        now = self._clock()
        self._ledger.roll(now)
        end = self._ledger.window_end
        waiting = {p.name: 0 for p in Priority}
        for waiter in self._queue:
            if not waiter.future.done():
                waiting[waiter.priority.name] += 1
        return {
            "limit": self._ledger.limit,
            "remaining": self._ledger.remaining,
            "reset_in_s": round(max(0.0, end - now), 3) if end is not None else 0.0,
            "in_flight": self._ledger.in_flight,
            "waiting": waiting,
            "sent_total": self.sent_total,
            "rate_limited_total": self.rate_limited_total,
        }

    def _may_send(self, priority: Priority) -> bool:
        return self._ledger.may_send(priority, self._clock())

    def _grant(self) -> int:
        self.sent_total += 1
        return self._ledger.take(self._clock())

    def _head(self) -> _Waiter | None:
        """The first waiter still waiting (cancelled ones are dropped on the way)."""
        while self._queue and self._queue[0].future.done():
            heapq.heappop(self._queue)
        return self._queue[0] if self._queue else None

    def _dispatch(self) -> None:
        """Grant slots to waiters, strictly in priority order, while the ledger allows."""
        while (head := self._head()) is not None and self._may_send(head.priority):
            heapq.heappop(self._queue)
            head.future.set_result(self._grant())
        self._arm_timer()

    def _withdraw(self, waiter: _Waiter) -> None:
        if waiter.future.done() and not waiter.future.cancelled():
            self._ledger.give_back(waiter.future.result())  # granted, then cancelled: unused
            self.sent_total -= 1
        elif waiter in self._queue:
            self._queue.remove(waiter)
            heapq.heapify(self._queue)
        self._dispatch()

    def _arm_timer(self) -> None:
        """Wake the queue when the current window ends (answers wake it through `observe`)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        end = self._ledger.window_end
        if self._head() is None or end is None:
            return
        delay = max(0.0, end - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._dispatch)
