"""`alegra-sync status [--json]`: can the cache be trusted right now, and the figures behind it.

The same verdict and figures as `GET /v1/cache/status` (`sync.status`), read from the database
directly (no web process needed) and printed for a terminal. Exit code 0 when trustworthy, 1
when not, so a script or a monitoring check can use it as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from sync.commands.store import run_on_store
from sync.commands.terminal import Paint, colour_wanted, duration, since
from sync.settings import Settings
from sync.states import InboxState
from sync.status import cache_status
from sync.store.db import Database

FAILED_SHOWN = 5


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status", help="can the cache be trusted right now? (exit 1 when not)"
    )
    parser.add_argument("--json", action="store_true", help="the figures as GET /v1/cache/status")
    parser.set_defaults(handler=status_command)


def status_command(args: argparse.Namespace) -> int:
    async def show(settings: Settings, db: Database) -> int:
        status = await cache_status(db, settings)
        if args.json:
            print(json.dumps(status, indent=2, ensure_ascii=False))
        else:
            now = datetime.fromisoformat(status["checked_at"])
            print(format_status(status, now, Paint(colour_wanted(sys.stdout))))
        return 0 if status["trustworthy"] else 1

    return run_on_store(show)


def format_status(status: dict[str, Any], now: datetime, paint: Paint) -> str:
    """The status as an operator reads it in a terminal (pure)."""
    sections = [
        _verdict(status, paint),
        _line("Worker", _worker(status["worker"], now)),
        _jobs(status["jobs"], now, paint),
        _line("Cached", _counts(status["counts"])),
        _line("Inbox", _inbox(status["inbox"])),
        _line("Webhooks", _webhooks(status["webhooks"], status["subscriptions"], now)),
        _receipts(status["receipts"], now, paint),
        _line("Drift", _drift(status["drift"], now)),
        _line("Notify", _notifications(status.get("notifications"))),
    ]
    return "\n".join(sections)


def _notifications(figures: dict[str, Any] | None) -> str:
    """Partners' notifications: endpoints, pending deliveries, each disabled endpoint."""
    if not figures:
        return "none"
    counts = figures["endpoints"]
    text = (f"{counts.get('enabled', 0)} endpoints enabled, {counts.get('disabled', 0)} "
            f"disabled; {figures['pending']} deliveries pending")
    if figures["pending"]:
        text += f" (oldest {figures['oldest_pending_age_s']:.0f} s)"
    for gone in figures["disabled"]:
        text += f"\n           disabled {gone['id']} ({gone['partner']}): {gone['reason']}"
    return text


def _line(label: str, text: str) -> str:
    return f"{label:<10} {text}"


def _verdict(status: dict[str, Any], paint: Paint) -> str:
    if status["trustworthy"]:
        return paint("Cache: trustworthy", "green")
    lines = [paint("Cache: NOT trustworthy", "red")]
    lines += [f"  {paint('✗', 'red')} {r['code']}: {r['message']}" for r in status["reasons"]]
    return "\n".join(lines)


def _worker(worker: dict[str, Any], now: datetime) -> str:
    if worker["heartbeat_at"] is None:
        return "never ran against this database"
    text = f"pid {worker['pid']}, heartbeat {since(worker['heartbeat_at'], now)}"
    budget = worker["budget"] or {}
    if "remaining" in budget and "limit" in budget:
        text += f"; Alegra budget {budget['remaining']}/{budget['limit']} left in this window"
    if worker.get("live_workers", 0) > 1:  # several workers: say which one runs this company
        text += f"; held by worker {worker.get('holder') or '(none now)'}"
        text += f" of {worker['live_workers']} live"
    return text


def _jobs(jobs: list[dict[str, Any]], now: datetime, paint: Paint) -> str:
    if not jobs:
        return _line("Jobs", "none has run yet")
    rows = [_line("Jobs", f"{'name':<14}{'last run':<34}next run")]
    for job in jobs:
        rows.append(" " * 11 + f"{job['name']:<14}{_last_run(job, now, paint)}"
                    f"{_next_run(job, now)}")
        if job["last_outcome"] not in (None, "success") and job["last_error"]:
            rows.append(" " * 13 + paint(str(job["last_error"]), "dim"))
    return "\n".join(rows)


def _next_run(job: dict[str, Any], now: datetime) -> str:
    if job["running"]:
        return "running now"
    due = job["next_run_at"]
    return "due now" if due and datetime.fromisoformat(due) <= now else since(due, now)


def _last_run(job: dict[str, Any], now: datetime, paint: Paint) -> str:
    outcome = job["last_outcome"]
    if outcome is None:
        return f"{'never':<34}"
    took = f" ({duration(job['last_duration_s'])})" if job["last_duration_s"] is not None else ""
    text = f"{outcome} {since(job['last_finished_at'], now)}{took}"
    # Padded before painting: colour codes would count as width.
    return paint(f"{text:<34}", "green" if outcome == "success" else "yellow")


def _counts(counts: dict[str, dict[str, int]]) -> str:
    parts = []
    for table, by in counts.items():
        deleted = f" (+{by['deleted']} deleted)" if by["deleted"] else ""
        parts.append(f"{table} {by['live']}{deleted}")
    return ", ".join(parts)


def _inbox(inbox: dict[str, Any]) -> str:
    text = f"{inbox['pending']} waiting to be applied"
    if inbox["oldest_pending_age_s"] is not None:
        text += f" (oldest {duration(inbox['oldest_pending_age_s'])})"
    parked = inbox["by_state"].get(InboxState.PARKED, 0)
    if parked:
        text += f"; {parked} parked ({inbox['parked_since_last_scan']} since the last full scan)"
    return text


def _webhooks(webhooks: dict[str, Any], subscriptions: dict[str, Any], now: datetime) -> str:
    last = max((w["last_received_at"] for w in webhooks["by_subject"] if w["last_received_at"]),
               default=None)
    return (f"last delivery {since(last, now)}; subscriptions {subscriptions['present']} present,"
            f" {subscriptions['missing']} missing")


def _receipts(receipts: dict[str, Any], now: datetime, paint: Paint) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(receipts["by_status"].items())) or "none yet"
    if receipts["oldest_waiting_age_s"] is not None:
        counts += f"; oldest waiting {duration(receipts['oldest_waiting_age_s'])}"
    lines = [_line("Receipts", counts)]
    for failed in receipts["recent_failed"][:FAILED_SHOWN]:
        error = failed["error"] or {}
        lines.append(" " * 11 + paint("failed", "red") + f" {failed['id']} "
                     f"{since(failed['updated_at'], now)}: {_error_line(error)}")
    if receipts["recent_failed"]:
        lines.append(" " * 11 + "why and what to do: alegra-sync receipts show ID")
    return "\n".join(lines)


def _error_line(error: dict[str, Any]) -> str:
    where = f"{error['step']}: " if error.get("step") else ""
    status = f" {error['status']}" if error.get("status") else ""
    code = f" code {error['code']}" if error.get("code") is not None else ""
    return f"{where}{error.get('kind', 'error')}{status}{code}: {error.get('message', '')}"


def _drift(drift: dict[str, Any] | None, now: datetime) -> str:
    if drift is None:
        return "no reconciliation yet"
    scan = "complete" if drift["complete"] else "INCOMPLETE"
    return (f"report #{drift['id']} ({scan}, {since(drift['created_at'], now)}): missing "
            f"{drift['missing']}, extra {drift['extra']}, different {drift['different']}")
