"""`alegra-sync webhooks register | list | remove [--company ID | --all]`: this service's
subscriptions in Alegra.

`register` subscribes the client and bill events at `PUBLIC_URL/webhooks/alegra/<token>` (the web
process must be reachable there: Alegra checks the URL before subscribing). Running it again
changes nothing; after a key rotation it moves the subscriptions to the new key's URL. `list`
shows every subscription of the account and whether it points here; `remove` deletes ours.
URLs are printed with their token masked.

Each company has its own URL (its token signs the company id) in its own Alegra account. Without
`--company` or `--all` the command works on the company `default` (the account configured in the
environment), as it did before there were companies; `--all` works on every company that is not
removed, one after the other, and fails if any of them failed.

`register` and `remove` hold the company's `subscriptions` job while they work, so they never
race the worker's own check (two processes each finding a subscription missing would both
create it): while the worker runs that job the command waits for it, up to BUSY_WAIT_S.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraClient, build_client
from sync.alegra.errors import AlegraError
from sync.company_account import NoToken, stored_account
from sync.deployment import command_settings
from sync.jobs.runner import JobBusy, hold_job
from sync.jobs.schedule import SUBSCRIPTIONS
from sync.logs import configure_logging, register_secrets
from sync.settings import Settings, SettingsError
from sync.states import CompanyState
from sync.store import jobs as job_store
from sync.store.companies import CompanyRecord, get_company, live_companies
from sync.store.db import DEFAULT_COMPANY, Database, DatabaseUnavailable
from sync.subscriptions import (
    Listed,
    Report,
    ensure_subscriptions,
    list_subscriptions_report,
    remove_subscriptions,
)
from sync.webhook_tokens import all_tokens, mask_url

# An action gets the company's client and the store scoped to the company (`db.company`).
Action = Callable[[AlegraClient, Database, Settings], Awaitable[int]]
# How long `register`/`remove` wait for the worker's run of the subscriptions job to end (one
# list and at most a create per event, each create after Alegra's handshake: seconds).
BUSY_WAIT_S = 60.0
BUSY_POLL_S = 0.5
# The command's own hold: long enough for one ensure, short enough that a command killed -9
# (no release) keeps the worker's check waiting a couple of minutes, not the jobs' 10.
HOLD_S = 120.0


class CompanyUnavailable(Exception):
    """A company the command cannot work on: unknown, removed, or without usable credentials."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("webhooks", help="manage Alegra webhook subscriptions")
    actions = parser.add_subparsers(dest="webhooks_command", required=True)
    for name, text, action in (
        ("register", "subscribe client and bill events at PUBLIC_URL (idempotent)",
         _holding_subscriptions(_register)),
        ("list", "show Alegra's subscriptions and whether each points here", _list),
        ("remove", "delete this service's subscriptions", _holding_subscriptions(_remove)),
    ):
        command = actions.add_parser(name, help=text)
        _company_options(command)
        command.set_defaults(handler=_handler(action))


def _company_options(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--company", metavar="ID", default=None,
                       help=f"this company's subscriptions (default: {DEFAULT_COMPANY!r}, the "
                            "account in the environment)")
    which.add_argument("--all", action="store_true",
                       help="every company that is not removed, one after the other")


def _handler(action: Action) -> Callable[[argparse.Namespace], int]:
    return lambda args: _run(action, args)


def _run(action: Action, args: argparse.Namespace) -> int:
    """Load settings, open the store, run the action for each company asked for, close."""
    settings = command_settings(needs_alegra=True)
    configure_logging(settings.log_format, "warning")
    register_secrets([*(str(k) for k in settings.secret_keys), *all_tokens(settings.secret_keys)])
    if settings.alegra_token is not None:
        register_secrets([str(settings.alegra_token)])

    async def main() -> int:
        db = await Database.open(settings.database_target)
        try:
            companies = await _companies(db, args)
        except CompanyUnavailable as exc:
            print(f"alegra-sync: {exc}", file=sys.stderr)
            await db.close()
            return 1
        try:
            statuses = [
                await _run_for(action, settings, db, company, heading=bool(args.all))
                for company in companies
            ]
        finally:
            await db.close()
        return max(statuses, default=0)

    return asyncio.run(main())


async def _companies(db: Database, args: argparse.Namespace) -> list[CompanyRecord]:
    """The companies to work on: `--all` (default first), `--company`, or `default`.
    Raises CompanyUnavailable for a company that does not exist or is removed."""
    if args.all:
        live = await live_companies(db)
        ids = [c for c in (DEFAULT_COMPANY,) if c in live] + sorted(set(live) - {DEFAULT_COMPANY})
    else:
        ids = [args.company or DEFAULT_COMPANY]
    records = []
    for company in ids:
        record = await get_company(db, company)
        if record is None or record.state == CompanyState.REMOVED:
            raise CompanyUnavailable(
                f"no company {company!r} (or it is removed): see `alegra-sync companies list`")
        records.append(record)
    return records


async def _run_for(
    action: Action, settings: Settings, db: Database, company: CompanyRecord, *, heading: bool
) -> int:
    """The action for one company, with its own client; a failure is printed, not raised."""
    if heading:
        print(f"== {company.id}")
    register_secrets(all_tokens(settings.secret_keys, company=company.id))
    prefix = "" if company.is_default else f"{company.id}: "
    try:
        client = await _client(settings, db, company)
    except CompanyUnavailable as exc:
        print(f"alegra-sync: {prefix}{exc}", file=sys.stderr)
        return 1
    try:
        return await action(client, db.for_company(company.id), settings)
    except AlegraError as exc:
        print(f"alegra-sync: {prefix}Alegra refused or failed: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()


async def _client(settings: Settings, db: Database, company: CompanyRecord) -> AlegraClient:
    """A client calling Alegra as the company's account, with a budget of its own.
    Raises CompanyUnavailable when the company's credentials cannot be had."""
    try:
        account = await stored_account(settings, db, company)
    except (NoToken, SettingsError) as exc:
        raise CompanyUnavailable(str(exc)) from exc
    budget = RateBudget(settings.rate_limit, settings.rate_window_s)
    return build_client(settings, budget, account=account)


async def _hold_subscriptions(db: Database, settings: Settings) -> str | None:
    """The company's subscriptions job, held for this command (its owner), once the worker's
    run of it has ended; None, with a message, if that took longer than BUSY_WAIT_S."""
    prefix = "" if db.company == DEFAULT_COMPANY else f"{db.company}: "
    deadline = time.monotonic() + BUSY_WAIT_S
    told = False
    while True:
        try:
            return await hold_job(db, settings, SUBSCRIPTIONS, lease_s=HOLD_S)
        except JobBusy as exc:
            if time.monotonic() >= deadline:
                print(f"alegra-sync: {prefix}{exc}; it did not end within {BUSY_WAIT_S:.0f} s "
                      "(a holder that died lets go when its lease runs out: see `alegra-sync "
                      "status`); nothing was changed, try again later", file=sys.stderr)
                return None
            if not told:
                print(f"alegra-sync: {prefix}waiting for {exc.holder} to finish checking the "
                      "subscriptions", file=sys.stderr)
                told = True
        await asyncio.sleep(BUSY_POLL_S)


def _holding_subscriptions(action: Action) -> Action:
    """`action` run while this command holds the company's subscriptions job."""
    async def held(client: AlegraClient, db: Database, settings: Settings) -> int:
        owner = await _hold_subscriptions(db, settings)
        if owner is None:
            return 1
        try:
            return await action(client, db, settings)
        finally:
            try:
                await job_store.release_job(db, SUBSCRIPTIONS, owner=owner)
            except DatabaseUnavailable:  # the hold runs out by itself after HOLD_S
                print("alegra-sync: the database went away; the worker's subscriptions check "
                      f"waits until this command's hold runs out ({HOLD_S:.0f} s)",
                      file=sys.stderr)

    return held


async def _register(client: AlegraClient, db: Database, settings: Settings) -> int:
    report = await ensure_subscriptions(client, db, settings)
    _print_report(report)
    if not report.ok:
        print("alegra-sync: some subscriptions are missing; is the web process reachable at "
              f"{settings.public_url}?", file=sys.stderr)
    return 0 if report.ok else 1


async def _list(client: AlegraClient, db: Database, settings: Settings) -> int:
    listed = await list_subscriptions_report(client, settings, company=db.company)
    print(format_listing(listed))
    return 0


async def _remove(client: AlegraClient, db: Database, settings: Settings) -> int:
    report = await remove_subscriptions(client, db, settings)
    _print_report(report)
    return 0 if report.ok else 1


def _print_report(report: Report) -> None:
    for event in report.created:
        note = " (it had vanished from Alegra)" if event in report.recreated else ""
        print(f"created   {event}{note}")
    for event in report.kept:
        print(f"present   {event}")
    for entry in report.deleted:
        print(f"deleted   {entry.event} {entry.alegra_id} at {mask_url(entry.url)}"
              f" ({where(entry)})")
    for what, reason in report.failed.items():
        print(f"FAILED    {what}: {reason}")


def where(entry: Listed) -> str:
    """Whether a subscription points here, and with which key."""
    if entry.key_index is None:
        return "not this service"
    key = "newest key" if entry.key_index == 0 else f"old key {entry.key_index}"
    return f"here, {key}" if entry.current else f"this service's token, other URL ({key})"


def format_listing(listed: list[Listed]) -> str:
    """A table of subscriptions; tokens masked."""
    if not listed:
        return "no subscriptions in Alegra"
    rows = [("ID", "EVENT", "POINTS", "URL")]
    rows += [(s.alegra_id, s.event, where(s), mask_url(s.url)) for s in listed]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in rows
    )
