"""`alegra-sync backfill` and `alegra-sync reconcile`: one run of a job, in the foreground.

Each opens its own store and Alegra client. The worker may be running at the same time: the
two processes share Alegra's rate limit through its `X-Rate-Limit-*` headers (every answer
corrects this process's budget), and a job runs in one process at a time (the other is told).
Both exit 0 only when the run completed; Ctrl-C stores the page in flight and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TextIO

from tqdm import tqdm

from sync.alegra.budget import RateBudget
from sync.alegra.client import build_client
from sync.alegra.pages import MAX_PAGE_SIZE
from sync.context import WorkerContext
from sync.deployment import command_settings
from sync.jobs import backfill, reconcile, schedule
from sync.jobs.runner import JobBusy, JobResult, Progress, run_job
from sync.logs import configure_logging, register_secrets
from sync.settings import Settings
from sync.states import JobOutcome
from sync.store import jobs as job_store
from sync.store.db import Database

# Ids and fields listed per category when printing a drift report (the JSON form has them all).
PRINT_LIMIT = 20
# Rows each Alegra request brings, by progress phase, for the time left (default: a full page).
ROWS_PER_REQUEST = {reconcile.CONFIRM_PHASE: 1}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fill = subparsers.add_parser(
        "backfill", help="fill the cache from Alegra now (resumes an unfinished backfill)"
    )
    fill.add_argument(
        "--restart", action="store_true",
        help="ignore an unfinished backfill's checkpoint and start from the first contact",
    )
    fill.set_defaults(handler=backfill_command)
    check = subparsers.add_parser(
        "reconcile", help="compare cached contacts with Alegra now, repair them, print the drift"
    )
    check.add_argument("--json", action="store_true", help="print the drift report as JSON")
    check.set_defaults(handler=reconcile_command)


def _settings() -> Settings:
    settings = command_settings(needs_alegra=True)
    # Progress goes to the terminal; log lines only when something is wrong (or when debugging).
    configure_logging(settings.log_format, "debug" if settings.log_level == "debug" else "warning")
    register_secrets(str(k) for k in settings.secret_keys)
    if settings.alegra_token is not None:
        register_secrets([str(settings.alegra_token)])
    return settings


@asynccontextmanager
async def foreground(settings: Settings) -> AsyncIterator[WorkerContext]:
    """The store, a client with its own budget, and a stop signal wired to SIGINT/SIGTERM."""
    db = await Database.open(settings.database_target)
    budget = RateBudget(limit=settings.rate_limit, window_s=settings.rate_window_s)
    alegra = build_client(settings, budget)
    ctx = WorkerContext(settings, db, alegra, budget, asyncio.Event())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, ctx.stopping.set)
    try:
        yield ctx
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await alegra.aclose()
        await db.close()


class ProgressBar:
    """tqdm over the rows of the current phase, labelled `job phase`, with one ETA: the time
    left at the full rate budget (tqdm's own estimate, from the rate so far, is left out)."""

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
    FORMAT_NO_TOTAL = "{desc}: {n_fmt} rows [{elapsed}]"

    def __init__(self, budget: RateBudget, job: str, file: TextIO | None = None) -> None:
        self.budget = budget
        self.job = job
        self.phase: str | None = None
        self.bar = tqdm(unit=" rows", desc=job, file=file or sys.stderr, dynamic_ncols=True,
                        bar_format=self.FORMAT_NO_TOTAL)

    def __call__(self, progress: Progress) -> None:
        if self.phase != progress.phase:  # a new phase: its label and total, then its count
            self.phase = progress.phase
            self.bar.set_description_str(f"{self.job} {progress.phase}", refresh=False)
            self.bar.set_postfix_str("", refresh=False)
            self._total(progress.total)
            self.bar.reset()  # redraws: at 0 of the new phase, under the new label
        self._total(progress.total)
        self.bar.n = progress.done
        self.bar.set_postfix_str(_left(self._eta(progress)), refresh=True)

    def _total(self, total: int | None) -> None:
        self.bar.total = total
        self.bar.bar_format = self.FORMAT if total is not None else self.FORMAT_NO_TOTAL

    def _eta(self, progress: Progress) -> float | None:
        limit = int(self.budget.snapshot()["limit"])
        per_request = ROWS_PER_REQUEST.get(progress.phase, MAX_PAGE_SIZE)
        return backfill.eta_s(progress.done, progress.total, limit=limit,
                              window_s=self.budget.window_s, per_request=per_request)

    def close(self) -> None:
        self.bar.close()


def _left(eta_s: float | None) -> str:
    """The time left at the rate limit, as an operator reads it (the postfix after `, `)."""
    if eta_s is None:
        return ""
    return f"≈{eta_s / 60:.0f} min left" if eta_s >= 90 else f"≈{eta_s:.0f} s left"


async def _backfill(settings: Settings, *, restart: bool) -> int:
    async with foreground(settings) as ctx:
        state = await job_store.job_state(ctx.db, schedule.BACKFILL)
        checkpoint = (state.checkpoint if state else None) or {}
        if restart or checkpoint.get("phase") == "done":
            await backfill.reset(ctx.db)
        bar = ProgressBar(ctx.budget, "backfill")
        try:
            result = await run_job(ctx, schedule.BACKFILL, backfill.run, on_progress=bar)
        finally:
            bar.close()
        return _report_backfill(result)


def _report_backfill(result: JobResult) -> int:
    if result.outcome == JobOutcome.SUCCESS:
        counts = {k: v for k, v in result.detail.items() if k != "resumed_from"}
        print("backfill complete: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return 0
    print(f"alegra-sync: backfill {result.outcome}: {result.error}. Run it again to resume "
          "from its checkpoint.", file=sys.stderr)
    return 1


def backfill_command(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        return asyncio.run(_backfill(settings, restart=bool(args.restart)))
    except JobBusy as exc:
        print(f"alegra-sync: {exc}; it resumes there, or try again once it ends.", file=sys.stderr)
        return 1


async def _reconcile(settings: Settings, as_json: bool) -> int:
    async with foreground(settings) as ctx:
        bar = ProgressBar(ctx.budget, "reconcile")
        try:
            result = await run_job(ctx, schedule.RECONCILE, reconcile.run, on_progress=bar)
        finally:
            bar.close()
        report_id = result.detail.get("drift_report_id")
        report = await job_store.get_drift_report(ctx.db, int(report_id)) if report_id else None
    if report is None:
        print(f"alegra-sync: reconcile {result.outcome}: {result.error}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, ensure_ascii=False) if as_json else format_report(report))
    if result.outcome != JobOutcome.SUCCESS:
        print(f"alegra-sync: reconcile {result.outcome}: {result.error}; nothing was marked "
              "deleted.", file=sys.stderr)
    return 0 if result.outcome == JobOutcome.SUCCESS else 1


def reconcile_command(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        return asyncio.run(_reconcile(settings, bool(args.json)))
    except JobBusy as exc:
        print(f"alegra-sync: {exc}; try again once it ends.", file=sys.stderr)
        return 1


def _named(alegra_id: str, names: dict[str, str]) -> str:
    """`91 (Ferretería Ochoa)`; the bare id when the report has no name (older reports)."""
    name = names.get(alegra_id)
    return f"{alegra_id} ({name})" if name else alegra_id


def _ids(ids: list[str], count: int, names: dict[str, str]) -> str:
    shown = ", ".join(_named(i, names) for i in ids[:PRINT_LIMIT])
    more = count - min(len(ids), PRINT_LIMIT)
    return shown + (f" … and {more} more" if more > 0 else "")


def format_report(report: dict[str, Any]) -> str:
    """A drift report as an operator reads it (pure)."""
    state = "complete" if report["complete"] else "INCOMPLETE (extra contacts not determined)"
    lines = [
        f"Drift report #{report['id']} ({report['created_at']}): scan {state}",
        f"  contacts in Alegra scanned: {report.get('scanned', 0)}",
        f"  missing   (in Alegra, not cached; now cached):   {report['missing']}",
        f"  extra     (cached, gone from Alegra; now deleted): {report['extra']}",
        f"  different (cached fields differed; now updated):  {report['different']}",
    ]
    names = report.get("names") or {}
    for kind in ("missing", "extra"):
        if report[kind]:
            listed = _ids(report.get(f"{kind}_ids", []), report[kind], names)
            lines.append(f"  {kind} ids: {listed}")
    for alegra_id, fields in list(report.get("differences", {}).items())[:PRINT_LIMIT]:
        changes = "; ".join(f"{name}: {old!r} → {new!r}" for name, (old, new) in fields.items())
        lines.append(f"  {_named(alegra_id, names)}: {changes}")
    if report["different"] > PRINT_LIMIT:
        lines.append(f"  … and {report['different'] - PRINT_LIMIT} more (--json lists them)")
    return "\n".join(lines)
