"""When each scheduled job runs (pure): intervals, what is due, the next run after an outcome.

Times are aware UTC datetimes here; the store keeps them as `db.utcnow()` text.
- `backfill` runs on a new database until it succeeds once; the other jobs (but subscription
  health) wait for it, since a reconcile or a poll during a backfill would repeat its work.
- `accounts` (the chart of accounts and taxes, which have no webhooks), `reconcile`, `bills`
  and `subscriptions` repeat every `settings.*_s` after a success, sooner after a failure.
- `retention` (deleting settled inbox rows and final receipts' files, `jobs/retention.py`)
  runs every RETENTION_EVERY_S from start-up on; it needs no Alegra, so not the backfill either.
- A run interrupted by shutdown is due again at once: it resumes from its checkpoint.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sync.job_records import JobState
from sync.settings import Settings
from sync.states import JobOutcome

BACKFILL = "backfill"
ACCOUNTS = "accounts"
RECONCILE = "reconcile"
BILLS = "bills"
SUBSCRIPTIONS = "subscriptions"
RETENTION = "retention"
JOB_NAMES = (BACKFILL, ACCOUNTS, RECONCILE, BILLS, SUBSCRIPTIONS, RETENTION)
# Jobs that may run before the first backfill has completed.
_BEFORE_BACKFILL = frozenset({BACKFILL, SUBSCRIPTIONS, RETENTION})
RETENTION_EVERY_S = 3600.0
# A failed or incomplete run is tried again after about one rate window (at least this long).
MIN_RETRY_S = 10.0


def interval_s(settings: Settings, name: str) -> float | None:
    """Seconds between successful runs; None for the one-off backfill."""
    return {
        ACCOUNTS: settings.accounts_poll_s,
        RECONCILE: settings.reconcile_s,
        BILLS: settings.bills_refresh_s,
        SUBSCRIPTIONS: settings.subscriptions_check_s,
        RETENTION: RETENTION_EVERY_S,
    }.get(name)


def retry_s(settings: Settings, name: str) -> float:
    """Seconds before a failed or incomplete run is tried again: a rate window (within the
    interval), so a 429 storm or an outage is not hammered."""
    wait = max(settings.rate_window_s, MIN_RETRY_S)
    every = interval_s(settings, name)
    return min(wait, every) if every is not None else wait


def first_run_at(settings: Settings, name: str, now: datetime) -> datetime:
    """When a job first runs on a new database: backfill and subscription health at once; the
    others one interval later, since the backfill has just fetched what they would."""
    every = interval_s(settings, name)
    if name in _BEFORE_BACKFILL or every is None:
        return now
    return now + timedelta(seconds=every)


def clamped(settings: Settings, state: JobState, now: datetime) -> datetime | None:
    """The job's next run, no later than one interval from now (the setting may have shortened)."""
    every = interval_s(settings, state.name)
    if state.next_run_at is None or every is None:
        return state.next_run_at
    return min(state.next_run_at, now + timedelta(seconds=every))


def eligible(
    states: Iterable[JobState], *, running: set[str], subscriptions_enabled: bool
) -> list[JobState]:
    """The jobs that may be scheduled now, whatever their time: not running, not switched off,
    and (but backfill and subscription health) not before the first backfill has succeeded."""
    by_name = {s.name: s for s in states}
    backfill = by_name.get(BACKFILL)
    backfilled = backfill is not None and backfill.last_outcome == JobOutcome.SUCCESS
    chosen = []
    for name in JOB_NAMES:
        state = by_name.get(name)
        if state is None or name in running or state.next_run_at is None:
            continue
        if name == SUBSCRIPTIONS and not subscriptions_enabled:
            continue
        if backfilled or name in _BEFORE_BACKFILL:
            chosen.append(state)
    return chosen


def due_jobs(
    states: Iterable[JobState],
    now: datetime,
    *,
    running: set[str],
    subscriptions_enabled: bool,
) -> list[str]:
    """The names of the jobs to start now, in `JOB_NAMES` order."""
    ready = eligible(states, running=running, subscriptions_enabled=subscriptions_enabled)
    return [s.name for s in ready if s.next_run_at is not None and s.next_run_at <= now]


def next_run_after(
    settings: Settings, name: str, outcome: str, finished: datetime, *, interrupted: bool
) -> datetime | None:
    """When the job runs next after a run ending with `outcome` (None: not again)."""
    if interrupted:
        return finished
    if outcome == JobOutcome.SUCCESS:
        every = interval_s(settings, name)
        return None if every is None else finished + timedelta(seconds=every)
    return finished + timedelta(seconds=retry_s(settings, name))


def seconds_until_next(states: Iterable[JobState], now: datetime, cap: float) -> float:
    """How long the scheduler may sleep before one of `states` (the eligible ones) is due."""
    waits = [(s.next_run_at - now).total_seconds() for s in states if s.next_run_at is not None]
    return max(0.0, min([cap, *waits]))


def is_loopback_url(url: str) -> bool:
    """True for a URL Alegra cannot reach: localhost, 127.0.0.0/8, ::1, 0.0.0.0."""
    host = (urlsplit(url).hostname or "").lower()
    if host in {"localhost", ""} or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def subscriptions_enabled(public_url: str, *, registered: bool | None) -> bool:
    """Whether subscription health runs. `registered`: True once subscriptions were registered
    (`alegra-sync webhooks register`, or an earlier check), False when the operator removed them
    on purpose, None when neither ever happened.

    Registered: always. Never registered: only when PUBLIC_URL is one Alegra can reach (then the
    first check registers them); with the default loopback URL it stays off, so a local run never
    asks Alegra to deliver where it cannot. Removed on purpose: off, until registered again."""
    if registered is None:
        return not is_loopback_url(public_url)
    return registered
