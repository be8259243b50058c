"""When scheduled jobs are due, and when they run next (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sync.job_records import JobState
from sync.jobs import schedule
from sync.settings import Settings, load_settings

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings() -> Settings:
    return load_settings(env_file=None, environ={
        "SECRET_KEY": "test-secret-key-0123456789abcdef", "ACCOUNTS_POLL_S": "900",
        "RECONCILE_S": "3600", "SUBSCRIPTIONS_CHECK_S": "600", "ALEGRA_RATE_WINDOW_S": "60",
    })


def states(backfill_outcome: str | None, due_in_s: float = -1) -> list[JobState]:
    at = NOW + timedelta(seconds=due_in_s)
    return [JobState(name, at, backfill_outcome if name == "backfill" else "success")
            for name in schedule.JOB_NAMES]


def test_on_a_new_database_only_backfill_subscription_health_and_retention_are_due(
    settings: Settings,
) -> None:
    """Before the first backfill succeeds, polls and reconciliation wait for it (retention,
    which needs no Alegra, does not)."""
    due = schedule.due_jobs(states(None), NOW, running=set(), subscriptions_enabled=True)
    assert due == ["backfill", "subscriptions", "retention"]


def test_after_the_backfill_every_due_job_starts_except_running_ones(settings: Settings) -> None:
    """Once backfilled, due jobs start in order; one already running is not started twice."""
    due = schedule.due_jobs(states("success"), NOW, running={"reconcile"},
                            subscriptions_enabled=True)
    assert due == ["backfill", "accounts", "bills", "subscriptions", "retention"]


def test_jobs_due_later_or_switched_off_do_not_start(settings: Settings) -> None:
    """A job due in the future waits; subscription health stays off when disabled."""
    assert schedule.due_jobs(states("success", due_in_s=5), NOW, running=set(),
                             subscriptions_enabled=True) == []
    due = schedule.due_jobs(states("success"), NOW, running=set(), subscriptions_enabled=False)
    assert "subscriptions" not in due


def test_a_completed_backfill_never_runs_again(settings: Settings) -> None:
    """Backfill success leaves no next run; the periodic jobs run one interval later."""
    assert schedule.next_run_after(settings, "backfill", "success", NOW, interrupted=False) is None
    assert schedule.next_run_after(settings, "reconcile", "success", NOW, interrupted=False) == (
        NOW + timedelta(seconds=3600))


def test_a_failed_or_incomplete_run_is_retried_after_a_rate_window(settings: Settings) -> None:
    """A run cut short by 429s or errors is tried again a window later, not at the interval."""
    for name in ("backfill", "reconcile", "accounts"):
        at = schedule.next_run_after(settings, name, "incomplete", NOW, interrupted=False)
        assert at == NOW + timedelta(seconds=60)


def test_a_run_stopped_by_shutdown_is_due_at_once(settings: Settings) -> None:
    """An interrupted run resumes as soon as the worker is back."""
    assert schedule.next_run_after(settings, "backfill", "incomplete", NOW, interrupted=True) == NOW


def test_first_runs_and_a_shortened_interval(settings: Settings) -> None:
    """A new database backfills at once and polls one interval later; a next run set under a
    longer interval is pulled in to the current one."""
    assert schedule.first_run_at(settings, "backfill", NOW) == NOW
    assert schedule.first_run_at(settings, "accounts", NOW) == NOW + timedelta(seconds=900)
    far = JobState("reconcile", NOW + timedelta(days=2), "success")
    assert schedule.clamped(settings, far, NOW) == NOW + timedelta(seconds=3600)


def test_the_scheduler_sleeps_until_the_next_due_job() -> None:
    """The sleep is the time to the earliest eligible job, capped, never negative."""
    soon = [JobState("accounts", NOW + timedelta(seconds=0.3), "success")]
    assert schedule.seconds_until_next(soon, NOW, cap=1.0) == pytest.approx(0.3)
    assert schedule.seconds_until_next([], NOW, cap=1.0) == 1.0
    late = [JobState("accounts", NOW - timedelta(seconds=5), "success")]
    assert schedule.seconds_until_next(late, NOW, cap=1.0) == 0.0


@pytest.mark.parametrize(("url", "registered", "enabled"), [
    ("http://127.0.0.1:8000", None, False),
    ("http://localhost:8000", None, False),
    ("https://sync.example.do", None, True),
    ("http://127.0.0.1:8000", True, True),
    ("https://sync.example.do", False, False),
])
def test_subscription_health_runs_when_registered_or_reachable(
    url: str, registered: bool | None, enabled: bool
) -> None:
    """On with subscriptions registered, or a public URL never registered; off on loopback
    with nothing registered, and off after the operator removed them."""
    assert schedule.subscriptions_enabled(url, registered=registered) is enabled
