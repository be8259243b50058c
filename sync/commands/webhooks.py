"""`alegra-sync webhooks register | list | remove`: this service's subscriptions in Alegra.

`register` subscribes the client and bill events at `PUBLIC_URL/webhooks/alegra/<token>` (the web
process must be reachable there: Alegra checks the URL before subscribing). Running it again
changes nothing; after a key rotation it moves the subscriptions to the new key's URL. `list`
shows every subscription of the account and whether it points here; `remove` deletes ours.
URLs are printed with their token masked.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraClient, build_client
from sync.alegra.errors import AlegraError
from sync.deployment import command_settings
from sync.logs import configure_logging, register_secrets
from sync.settings import Settings
from sync.store.db import Database
from sync.subscriptions import (
    Listed,
    Report,
    ensure_subscriptions,
    list_subscriptions_report,
    remove_subscriptions,
)
from sync.webhook_tokens import all_tokens, mask_url

Action = Callable[[AlegraClient, Database, Settings], Awaitable[int]]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("webhooks", help="manage Alegra webhook subscriptions")
    actions = parser.add_subparsers(dest="webhooks_command", required=True)
    actions.add_parser(
        "register", help="subscribe client and bill events at PUBLIC_URL (idempotent)"
    ).set_defaults(handler=lambda _: _run(_register))
    actions.add_parser(
        "list", help="show Alegra's subscriptions and whether each points here"
    ).set_defaults(handler=lambda _: _run(_list))
    actions.add_parser(
        "remove", help="delete this service's subscriptions"
    ).set_defaults(handler=lambda _: _run(_remove))


def _run(action: Action) -> int:
    """Load settings, open the store and an Alegra client, run one action, close."""
    settings = command_settings(needs_alegra=True)
    configure_logging(settings.log_format, "warning")
    register_secrets([*(str(k) for k in settings.secret_keys), *all_tokens(settings.secret_keys)])
    if settings.alegra_token is not None:
        register_secrets([str(settings.alegra_token)])

    async def main() -> int:
        db = await Database.open(settings.database_path)
        client = build_client(settings, RateBudget(settings.rate_limit, settings.rate_window_s))
        try:
            return await action(client, db, settings)
        except AlegraError as exc:
            print(f"alegra-sync: Alegra refused or failed: {exc.message}", file=sys.stderr)
            return 1
        finally:
            await client.aclose()
            await db.close()

    return asyncio.run(main())


async def _register(client: AlegraClient, db: Database, settings: Settings) -> int:
    report = await ensure_subscriptions(client, db, settings)
    _print_report(report)
    if not report.ok:
        print("alegra-sync: some subscriptions are missing; is the web process reachable at "
              f"{settings.public_url}?", file=sys.stderr)
    return 0 if report.ok else 1


async def _list(client: AlegraClient, _: Database, settings: Settings) -> int:
    listed = await list_subscriptions_report(client, settings)
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
