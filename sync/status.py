"""The figures behind "can I trust the cache right now?", and the answer: one implementation
for `GET /v1/cache/status` (receiver/inspect.py) and `alegra-sync status` (sync/commands/).
`trustworthy` is true only when none of the rules fires; each firing rule is one `reasons`
entry, `{code, message}`. The rules: docs/sync.md ("Can the cache be trusted?").
Each company has its own cache and its own verdict: `cache_status` judges the company of its
store handle; `companies_status` lists several companies' (the admin's view without a company).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sync.job_records import JobState
from sync.notifications.endpoints import disabled_endpoints, endpoint_counts
from sync.notifications.queue import pending_figures
from sync.settings import Settings
from sync.states import PENDING_INBOX_STATES, JobOutcome
from sync.store import jobs, leases, ops_queries
from sync.store.companies import company_state
from sync.store.db import Database
from sync.store.doctor import doctor_view
from sync.store.inbox import state_counts

WORKER_STALE_S = 30.0
INBOX_BACKLOG_S = 300.0
NEEDS_ATTENTION = "needs_attention"
_DRIFT_KEYS = ("id", "created_at", "complete", "missing", "extra", "different")
_JOB_KEYS = ("name", "last_started_at", "last_finished_at", "last_outcome", "last_duration_s",
             "last_error", "next_run_at", "running", "checkpoint")


@dataclass(frozen=True)
class Limits:
    """How old each kind of evidence may be before the cache stops being trustworthy."""

    worker_stale_s: float
    inbox_backlog_s: float
    full_scan_s: float
    accounts_s: float
    subscriptions_s: float
    bills_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(WORKER_STALE_S, INBOX_BACKLOG_S, 2 * settings.reconcile_s,
                   3 * settings.accounts_poll_s, 3 * settings.subscriptions_check_s,
                   2 * settings.bills_refresh_s)


def age_s(timestamp: str | None, now: datetime) -> float | None:
    """Seconds since a stored timestamp (None stays None)."""
    if timestamp is None:
        return None
    return round((now - datetime.fromisoformat(timestamp)).total_seconds(), 3)


def _reason(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _newest(*stamps: str | None) -> str | None:
    present = [s for s in stamps if s]
    return max(present) if present else None


def _too_old(stamp: str | None, now: datetime, limit: float) -> bool:
    age = age_s(stamp, now)
    return age is None or age > limit


def worker_rule(status: dict[str, Any], limits: Limits) -> list[dict[str, str]]:
    age = status["worker"]["heartbeat_age_s"]
    if age is None:
        return [_reason("worker_down", "the worker has never run against this database")]
    if age > limits.worker_stale_s:
        return [_reason("worker_down", f"no worker heartbeat for {age:.0f} s")]
    return []


def scan_rules(status: dict[str, Any], now: datetime, limits: Limits) -> list[dict[str, str]]:
    done = status["last_success"]
    if "backfill" not in done:
        return [_reason("backfill_incomplete", "the first full copy from Alegra never completed")]
    reasons = []
    if _too_old(_newest(done.get("backfill"), done.get("reconcile")), now, limits.full_scan_s):
        reasons.append(_reason("full_scan_stale", "no complete contact scan for "
                               f"{limits.full_scan_s:.0f} s (2 × RECONCILE_S)"))
    reconcile = next((j for j in status["jobs"] if j["name"] == "reconcile"), None)
    if reconcile is not None and reconcile["last_outcome"] in (
            JobOutcome.INCOMPLETE, JobOutcome.FAILED):
        reasons.append(_reason("reconcile_incomplete",
                               f"the latest reconciliation ended {reconcile['last_outcome']}"))
    if _too_old(_newest(done.get("backfill"), done.get("accounts")), now, limits.accounts_s):
        reasons.append(_reason("accounts_stale", "chart of accounts not fetched for "
                               f"{limits.accounts_s:.0f} s (3 × ACCOUNTS_POLL_S)"))
    if _too_old(_newest(done.get("backfill"), done.get("bills")), now, limits.bills_s):
        reasons.append(_reason("bills_stale", "recent bills not read for "
                               f"{limits.bills_s:.0f} s (2 × BILLS_REFRESH_S)"))
    return reasons


def subscription_rules(
    status: dict[str, Any], now: datetime, limits: Limits
) -> list[dict[str, str]]:
    rows = status["subscriptions"]["rows"]
    missing = [r["event"] for r in rows if not r["present"] and r["missing_since"]]
    if missing or not any(r["present"] for r in rows):
        what = ", ".join(missing) if missing else "none registered"
        return [_reason("subscriptions_missing", f"webhook subscriptions missing: {what}")]
    checked = _newest(*(r["last_checked_at"] for r in rows if r["present"]))
    if _too_old(checked, now, limits.subscriptions_s):
        return [_reason("subscriptions_unchecked", "subscriptions not checked for "
                        f"{limits.subscriptions_s:.0f} s (3 × SUBSCRIPTIONS_CHECK_S)")]
    return []


def inbox_rules(status: dict[str, Any], limits: Limits) -> list[dict[str, str]]:
    reasons = []
    age = status["inbox"]["oldest_pending_age_s"]
    if age is not None and age > limits.inbox_backlog_s:
        reasons.append(_reason("inbox_backlog_old",
                               f"a webhook delivery has waited {age:.0f} s to be applied"))
    if status["inbox"]["parked_since_last_scan"]:
        reasons.append(_reason("events_parked", "deliveries were parked after the last "
                               "complete scan; replay them or wait for the next reconciliation"))
    return reasons


def company_rule(state: tuple[str, str | None] | None) -> list[dict[str, str]]:
    """Alegra refused the company's credentials (401, 402 or 403): nothing reaches its cache."""
    if state is None or state[0] != NEEDS_ATTENTION:
        return []
    return [_reason("company_needs_attention", "Alegra refuses this company's credentials"
                    + (f": {state[1]}" if state[1] else ""))]


def verdict(status: dict[str, Any], now: datetime, limits: Limits) -> list[dict[str, str]]:
    """Every rule that fires on these figures (pure). No reasons: the cache can be trusted."""
    rules: list[Callable[[], list[dict[str, str]]]] = [
        lambda: worker_rule(status, limits),
        lambda: scan_rules(status, now, limits),
        lambda: subscription_rules(status, now, limits),
        lambda: inbox_rules(status, limits),
    ]
    return [reason for rule in rules for reason in rule()]


async def cache_status(
    db: Database, settings: Settings, now: datetime | None = None
) -> dict[str, Any]:
    """Gather the figures, then judge them (as of `now`, the current time unless given)."""
    now = now or datetime.now(UTC)
    successes = await ops_queries.last_successes(db)
    status: dict[str, Any] = {
        "checked_at": now.isoformat(timespec="microseconds"),
        "counts": await ops_queries.cache_counts(db),
        "jobs": [job_view(j, successes.get(j.name)) for j in await jobs.job_states(db)],
        "last_success": successes,
        "webhooks": await _webhooks(db),
        "subscriptions": await _subscriptions(db),
        "inbox": await _inbox(db, now, _newest(successes.get("backfill"),
                                                successes.get("reconcile"))),
        "receipts": await _receipts(db, now),
        "worker": await worker_summary(db, now),
        "drift": await _drift(db),
        "notifications": await notification_figures(db),
        "doctor": await doctor_view(db),
    }
    reasons = verdict(status, now, Limits.from_settings(settings))
    reasons += company_rule(await company_state(db, db.company))
    del status["last_success"]
    return {"trustworthy": not reasons, "reasons": reasons, **status}


async def companies_status(
    db: Database, settings: Settings, companies: list[str], now: datetime | None = None
) -> dict[str, Any]:
    """Each company's `cache_status` with its id and state; trustworthy when every one is."""
    now = now or datetime.now(UTC)
    entries = []
    for company in companies:
        scoped = db.for_company(company)
        state = await company_state(scoped, company)
        body = await cache_status(scoped, settings, now)
        entries.append({"company": company, "state": None if state is None else state[0],
                        **body})
    return {"checked_at": now.isoformat(timespec="microseconds"),
            "trustworthy": all(entry["trustworthy"] for entry in entries),
            "companies": entries}


def job_view(job: JobState, last_success_at: str | None) -> dict[str, Any]:
    """A job as the status shows it, times in the store's text form (pure)."""
    view = {key: getattr(job, key) for key in _JOB_KEYS}
    return {**{key: _text(value) for key, value in view.items()},
            "last_success_at": last_success_at}


def _text(value: object) -> object:
    return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value


async def worker_summary(db: Database, now: datetime) -> dict[str, Any]:
    """The last heartbeat, and which worker holds the company's lease (runs its lanes) among
    the live ones (sync/leasing.py)."""
    held = await _holder(db, now)
    row = await ops_queries.worker_state(db)
    if row is None:
        return {"pid": None, "heartbeat_at": None, "heartbeat_age_s": None, "budget": None,
                **held}
    return {"pid": row["pid"], "heartbeat_at": row["beat_at"],
            "heartbeat_age_s": age_s(row["beat_at"], now), "budget": json.loads(row["budget"]),
            **held}


async def _holder(db: Database, now: datetime) -> dict[str, Any]:
    stamp = now.isoformat(timespec="microseconds")
    lease = await leases.lease_of(db, db.company)
    live = await leases.live_workers(db, stamp)
    if lease is None or lease.holder is None or (lease.expires_at or "") < stamp:
        return {"holder": None, "lease_expires_at": None, "live_workers": len(live)}
    return {"holder": lease.holder, "lease_expires_at": lease.expires_at,
            "live_workers": len(live)}


async def _webhooks(db: Database) -> dict[str, Any]:
    rows = await ops_queries.last_webhooks(db)
    return {"last_handshake_at": await ops_queries.last_handshake_at(db),
            "by_subject": [dict(r) for r in rows]}


async def _subscriptions(db: Database) -> dict[str, Any]:
    rows = [{**dict(r), "present": bool(r["present"])}
            for r in await ops_queries.subscription_rows(db)]
    for row in rows:
        row.pop("url_key_index", None)
    return {"present": sum(r["present"] for r in rows),
            "missing": sum(not r["present"] and bool(r["missing_since"]) for r in rows),
            "rows": rows}


async def _inbox(db: Database, now: datetime, last_scan: str | None) -> dict[str, Any]:
    counts = await state_counts(db)
    oldest = await ops_queries.oldest_pending_event_at(db)
    pending = sum(counts.get(state, 0) for state in PENDING_INBOX_STATES)
    return {"by_state": counts, "pending": pending,
            "oldest_pending_at": oldest, "oldest_pending_age_s": age_s(oldest, now),
            "parked_since_last_scan": await ops_queries.parked_events_since(db, last_scan)}


async def _receipts(db: Database, now: datetime) -> dict[str, Any]:
    oldest = await ops_queries.oldest_waiting_receipt_at(db)
    failed = [{**dict(r), "error": json.loads(r["error"]) if r["error"] else None}
              for r in await ops_queries.recent_failed_receipts(db)]
    return {"by_status": await ops_queries.receipt_counts(db), "oldest_waiting_at": oldest,
            "oldest_waiting_age_s": age_s(oldest, now), "recent_failed": failed}


async def _drift(db: Database) -> dict[str, Any] | None:
    report = await jobs.last_drift_report(db)
    return None if report is None else {k: report.get(k) for k in _DRIFT_KEYS}


async def notification_figures(db: Database) -> dict[str, Any]:
    """Partners' notifications across the deployment: endpoints by state, the disabled ones
    (by partner name, with why), deliveries pending and the oldest one's age."""
    return {"endpoints": await endpoint_counts(db), "disabled": await disabled_endpoints(db),
            **await pending_figures(db)}
