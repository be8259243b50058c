"""The shared rate budget: windows, headers as the truth, priorities and the receipt reserve."""

from __future__ import annotations

import asyncio
import json

import pytest

from sync.alegra.budget import Priority, RateBudget
from sync.alegra.errors import Stopping

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def is_held(budget: RateBudget, priority: Priority) -> bool:
    """True when an acquire of this priority does not go through at once (it is withdrawn)."""
    task = asyncio.create_task(budget.acquire(priority))
    await asyncio.sleep(0.01)
    held = not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return held


async def spend(budget: RateBudget, count: int, priority: Priority = Priority.RECEIPT) -> list[int]:
    return [await budget.acquire(priority) for _ in range(count)]


def answered(budget: RateBudget, tickets: list[int]) -> None:
    """The requests sent with these tickets were answered, without rate headers."""
    for ticket in tickets:
        budget.observe(status=200, limit=None, remaining=None, reset_s=None, ticket=ticket)


async def test_a_fresh_budget_lets_the_limit_through_then_holds() -> None:
    """Exactly `limit` requests go out in a window; the next one waits."""
    budget = RateBudget(limit=5, window_s=60.0, clock=FakeClock())
    await spend(budget, 5)
    assert await is_held(budget, Priority.RECEIPT)
    assert budget.snapshot()["remaining"] == 0
    assert budget.snapshot()["sent_total"] == 5


async def test_background_and_events_leave_the_reserve_for_receipts() -> None:
    """Of 150, background work gets 145 (under 4% less); the last 5 go to receipts at once."""
    budget = RateBudget(clock=FakeClock())
    await spend(budget, 145, Priority.BACKGROUND)
    assert await is_held(budget, Priority.BACKGROUND)
    assert await is_held(budget, Priority.EVENT)
    await spend(budget, 5, Priority.RECEIPT)
    assert await is_held(budget, Priority.RECEIPT)


async def test_waiters_are_served_by_priority_then_in_arrival_order() -> None:
    """When the window resets, receipts that arrived later go before waiting background work."""
    budget = RateBudget(limit=4, window_s=0.2, reserve=0)
    answered(budget, await spend(budget, 4))
    order: list[str] = []

    async def wait(name: str, priority: Priority) -> None:
        await budget.acquire(priority)
        order.append(name)

    tasks = []
    for name, priority in [("bg1", 2), ("r1", 0), ("bg2", 2), ("ev1", 1), ("r2", 0)]:
        tasks.append(asyncio.create_task(wait(name, Priority(priority))))
        await asyncio.sleep(0)
    assert budget.snapshot()["waiting"] == {"RECEIPT": 2, "EVENT": 1, "BACKGROUND": 2}
    await asyncio.wait_for(asyncio.gather(*tasks[:2], *tasks[3:]), timeout=2.0)
    assert order == ["r1", "r2", "ev1", "bg1"]
    tasks[2].cancel()
    await asyncio.gather(tasks[2], return_exceptions=True)


async def test_a_waiter_wakes_when_the_window_ends() -> None:
    """A request over the limit goes out as soon as the window has reset, not before."""
    clock = FakeClock()
    budget = RateBudget(limit=2, window_s=0.2, clock=clock)
    answered(budget, await spend(budget, 2))
    waiter = asyncio.create_task(budget.acquire(Priority.RECEIPT))
    clock.advance(0.19)
    await asyncio.sleep(0.25)  # the budget's wake-up for the window's end has come and gone
    assert not waiter.done()  # … but by its clock the window has not ended
    clock.advance(0.01 + budget.reset_margin_s)
    await asyncio.wait_for(waiter, timeout=5.0)


async def test_after_a_window_ends_without_news_the_full_limit_is_assumed() -> None:
    """With no header since the reset, the whole limit is available again."""
    clock = FakeClock()
    budget = RateBudget(limit=10, window_s=60.0, clock=clock)
    answered(budget, await spend(budget, 10))
    clock.advance(60.0 + budget.reset_margin_s)
    assert budget.snapshot()["remaining"] == 10
    await spend(budget, 10)


async def test_answers_correct_the_estimate_when_another_user_spent_part_of_the_budget() -> None:
    """Alegra's remaining (less our requests still out) replaces a higher local estimate."""
    clock = FakeClock()
    budget = RateBudget(clock=clock)
    tickets = await spend(budget, 3)
    budget.observe(status=200, limit=150, remaining=40, reset_s=30.0, ticket=tickets[0])
    snapshot = budget.snapshot()
    assert snapshot["remaining"] == 38  # two of ours are still out and may not be counted yet
    assert snapshot["in_flight"] == 2
    assert snapshot["reset_in_s"] == pytest.approx(30.0 + budget.reset_margin_s)
    # An older answer overtaken on the way reports more; the estimate never goes back up.
    budget.observe(status=200, limit=150, remaining=45, reset_s=31.0, ticket=tickets[1])
    assert budget.snapshot()["remaining"] == 38


async def test_the_reported_reset_ends_the_window() -> None:
    """The window ends when Alegra says, then the full limit is assumed."""
    clock = FakeClock()
    budget = RateBudget(limit=20, window_s=60.0, clock=clock)
    (ticket,) = await spend(budget, 1)
    budget.observe(status=200, limit=20, remaining=0, reset_s=5.0, ticket=ticket)
    assert await is_held(budget, Priority.RECEIPT)
    clock.advance(5.0 + budget.reset_margin_s)
    assert budget.snapshot()["remaining"] == 20
    await spend(budget, 20)


async def test_requests_still_out_count_against_a_new_window() -> None:
    """Requests sent just before a reset may land in the new window, so they are held back."""
    clock = FakeClock()
    budget = RateBudget(limit=10, window_s=60.0, clock=clock)
    await spend(budget, 4)
    clock.advance(61.0 + budget.reset_margin_s)
    assert budget.snapshot()["remaining"] == 6
    assert budget.snapshot()["in_flight"] == 4


async def test_an_answer_from_an_earlier_window_does_not_lower_the_new_one() -> None:
    """A late answer reporting the old window's remaining says nothing about the new window."""
    clock = FakeClock()
    budget = RateBudget(limit=10, window_s=60.0, clock=clock)
    old = await spend(budget, 2)
    clock.advance(61.0 + budget.reset_margin_s)
    await spend(budget, 1)
    budget.observe(status=200, limit=10, remaining=0, reset_s=0.0, ticket=old[0])
    assert budget.snapshot()["remaining"] == 7


async def test_a_429_holds_every_priority_until_the_reset() -> None:
    """After a 429 not even a receipt is sent before the reset; then the full limit returns."""
    clock = FakeClock()
    budget = RateBudget(limit=10, window_s=60.0, clock=clock)
    budget.penalize(2.0)
    assert await is_held(budget, Priority.RECEIPT)
    assert budget.snapshot()["rate_limited_total"] == 1
    clock.advance(2.0 + budget.reset_margin_s)
    await spend(budget, 10)


async def test_a_cancelled_waiter_spends_nothing() -> None:
    """A waiter that gives up before its turn takes no slot in the next window."""
    clock = FakeClock()
    budget = RateBudget(limit=1, window_s=0.1, clock=clock)
    await spend(budget, 1)
    assert await is_held(budget, Priority.RECEIPT)
    clock.advance(0.1 + budget.reset_margin_s)
    snapshot = budget.snapshot()
    assert (snapshot["remaining"], snapshot["sent_total"]) == (0, 1)  # one still out, carried
    assert snapshot["waiting"] == {"RECEIPT": 0, "EVENT": 0, "BACKGROUND": 0}


async def test_a_waiter_stops_waiting_when_the_worker_stops() -> None:
    """With the window spent, waiters of every priority raise Stopping once stopping is set,
    long before the window ends, and spend nothing of the next window."""
    clock, stopping = FakeClock(), asyncio.Event()
    budget = RateBudget(limit=3, window_s=60.0, reserve=0, clock=clock)
    budget.stop_waiting_on(stopping)
    tickets = await spend(budget, 3)
    waiters = [asyncio.create_task(budget.acquire(p)) for p in Priority]
    await asyncio.sleep(0)
    assert budget.snapshot()["waiting"] == {"RECEIPT": 1, "EVENT": 1, "BACKGROUND": 1}

    stopping.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)

    assert [type(o) for o in outcomes] == [Stopping] * 3
    assert budget.snapshot()["waiting"] == {"RECEIPT": 0, "EVENT": 0, "BACKGROUND": 0}
    assert budget.snapshot()["sent_total"] == 3
    with pytest.raises(Stopping):  # still within the spent window: refused at once
        await budget.acquire(Priority.RECEIPT)
    answered(budget, tickets)
    clock.advance(60.0 + budget.reset_margin_s)
    assert budget.snapshot()["remaining"] == 3


async def test_once_stopping_a_free_slot_is_still_granted() -> None:
    """Stopping only ends waiting: a request that may go at once still gets its slot."""
    stopping = asyncio.Event()
    stopping.set()
    budget = RateBudget(limit=2, window_s=60.0, reserve=0, clock=FakeClock())
    budget.stop_waiting_on(stopping)
    await spend(budget, 2)
    with pytest.raises(Stopping):
        await budget.acquire(Priority.BACKGROUND)
    assert budget.snapshot()["sent_total"] == 2


async def test_the_limit_follows_the_header() -> None:
    """X-Rate-Limit-Limit replaces the configured limit (a plan may allow more or less)."""
    budget = RateBudget(limit=150, window_s=60.0, clock=FakeClock())
    (ticket,) = await spend(budget, 1)
    budget.observe(status=200, limit=300, remaining=299, reset_s=59.0, ticket=ticket)
    assert budget.snapshot()["limit"] == 300


def test_the_snapshot_is_json() -> None:
    """/metrics and /v1/cache/status serialise the snapshot as it is."""
    snapshot = RateBudget(clock=FakeClock()).snapshot()
    assert json.loads(json.dumps(snapshot)) == {
        "limit": 150,
        "remaining": 150,
        "reset_in_s": 0.0,
        "in_flight": 0,
        "waiting": {"RECEIPT": 0, "EVENT": 0, "BACKGROUND": 0},
        "sent_total": 0,
        "rate_limited_total": 0,
    }


async def test_answers_arriving_out_of_order_do_not_lose_slots() -> None:
    """Four requests counted by Alegra in the order sent, answered in reverse: the estimate is
    what the last-counted one reports (its predecessors are in it), so the window's other four
    slots stay usable."""
    clock = FakeClock()
    budget = RateBudget(limit=8, window_s=60.0, reserve=0, clock=clock)
    tickets = await spend(budget, 4)
    for ticket, remaining in reversed(list(zip(tickets, (7, 6, 5, 4), strict=True))):
        budget.observe(status=200, limit=8, remaining=remaining, reset_s=30.0, ticket=ticket)
    assert budget.snapshot()["remaining"] == 4
    await spend(budget, 4)
    assert await is_held(budget, Priority.RECEIPT)
