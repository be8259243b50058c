"""The one backoff formula, and the three places that use it with their own base, cap, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.backoff import FULL_JITTER, Backoff
from sync.events.apply import RetryPolicy
from sync.flow.run_receipt import retry_delay


def test_the_delay_doubles_from_the_base_up_to_the_cap() -> None:
    """1, 2, 4, 8, then the cap; a first failure (or none) waits the base."""
    backoff = Backoff(base_s=1.0, cap_s=10.0)
    assert [backoff.delay(n) for n in range(7)] == [1.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_any_number_of_failures_gives_the_cap() -> None:
    """However many failures, the delay is the cap (no overflow)."""
    assert Backoff(base_s=5.0, cap_s=1800.0).delay(100_000) == 1800.0


def test_jitter_stays_within_its_factors() -> None:
    """Full jitter: anywhere in [0, delay]; ±20 %: within [0.8, 1.2] × delay."""
    full = [Backoff(2.0, 60.0, FULL_JITTER).delay(3) for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in full)
    assert len(set(full)) > 1
    spread = [Backoff(2.0, 60.0, (0.8, 1.2)).delay(3) for _ in range(200)]
    assert all(6.4 <= d <= 9.6 for d in spread)


def test_a_receipt_waits_the_backoff_or_the_rate_limits_reset_if_longer() -> None:
    """A rescheduled receipt: 1 s doubling to 15 min, ±20 %, at least the 429's reset."""
    assert 0.8 <= retry_delay(1) <= 1.2
    assert 720.0 <= retry_delay(30) <= 1080.0
    assert retry_delay(1, reset_after=42.0) == 42.0


def test_a_failed_delivery_waits_the_backoff_exactly_then_is_parked() -> None:
    """Deliveries: base × 2^(attempts − 1) without jitter, capped; parked at max_attempts."""
    policy = RetryPolicy(max_attempts=12, base_s=5.0, cap_s=1800.0)
    now = datetime(2024, 5, 1, tzinfo=UTC)
    waits = []
    for before in range(11):
        state, at = policy.next_state(before, now)
        assert state == "failed"
        assert at is not None
        waits.append((datetime.fromisoformat(at) - now) / timedelta(seconds=1))
    assert waits == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 1800.0, 1800.0]
    assert policy.next_state(11, now) == ("parked", None)
