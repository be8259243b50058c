"""`alegra-sync partners add NAME [--admin] [--company ID ...] | list | rotate NAME [--grace 24h]
| revoke NAME | grant NAME --company ID | revoke-grant NAME --company ID`.

`add` prints the new key once (only its hash is stored: a lost key is replaced, never recovered);
`list` shows each key's first characters only; `rotate` prints a new key once and keeps the old
one valid for a grace period (24 h unless `--grace` says otherwise; `0` ends it at once); on a
revoked partner it is how the partner gets a key again. `revoke` stops a partner's keys at once.
A partner reaches the companies it is granted: `default` unless `add --company` names others;
`grant` and `revoke-grant` change that (an admin key reaches every company). `list` shows the
grants once a company other than `default` exists.
Without Alegra credentials these act on the demo's database (`sync/deployment.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sys
from collections.abc import Awaitable, Callable

from sync.deployment import command_settings
from sync.store.companies import (
    CompanyNotFound,
    grant,
    grants_by_partner,
    is_multi_company,
    revoke_grant,
)
from sync.store.db import DEFAULT_COMPANY, Database
from sync.store.partners import (
    Partner,
    PartnerExists,
    PartnerListing,
    PartnerNotFound,
    create_partner,
    list_partners,
    partner_named,
    revoke_partner,
    rotate_partner,
)

DEFAULT_GRACE = "24h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def grace_period(text: str) -> dt.timedelta:
    """`90s`, `30m`, `24h`, `7d` or `0` → a duration (argparse type)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if found is None or (not found.group(2) and float(found.group(1)) != 0):
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 30m, 24h or 7d (or 0), got {text!r}"
        )
    return dt.timedelta(seconds=float(found.group(1)) * _UNITS.get(found.group(2), 1))


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("partners", help="manage partner API keys")
    actions = parser.add_subparsers(dest="partners_command", required=True)
    add = actions.add_parser("add", help="create a partner and print its key once")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="the key may read every receipt")
    add.add_argument("--company", action="append", metavar="ID",
                     help=f"a company the key may reach (repeat for several; default "
                          f"{DEFAULT_COMPANY!r})")
    add.set_defaults(handler=lambda args: _run(_add, args))
    show = actions.add_parser("list", help="list partners (never their keys)")
    show.set_defaults(handler=lambda args: _run(_list, args))
    rotate = actions.add_parser(
        "rotate", help="give a partner a new key (printed once); a revoked partner too"
    )
    rotate.add_argument("name")
    rotate.add_argument(
        "--grace", type=grace_period, default=grace_period(DEFAULT_GRACE), metavar="DURATION",
        help=f"how long the old key keeps working, e.g. 30m, 24h, 7d, 0 (default {DEFAULT_GRACE})",
    )
    rotate.set_defaults(handler=lambda args: _run(_rotate, args))
    revoke = actions.add_parser("revoke", help="revoke a partner's keys at once")
    revoke.add_argument("name")
    revoke.set_defaults(handler=lambda args: _run(_revoke, args))
    for command, action, text in (
        ("grant", _grant, "let a partner's key reach a company"),
        ("revoke-grant", _revoke_grant, "stop a partner's key reaching a company"),
    ):
        grants = actions.add_parser(command, help=text)
        grants.add_argument("name")
        grants.add_argument("--company", action="append", required=True, metavar="ID",
                            help="the company's id (`companies list`); repeat for several")
        grants.set_defaults(handler=lambda args, action=action: _run(action, args))


Action = Callable[[Database, argparse.Namespace], Awaitable[int]]


def _run(action: Action, args: argparse.Namespace) -> int:
    """Load the deployment's settings, open the store, run one action, close."""
    settings = command_settings(needs_alegra=False)

    async def main() -> int:
        db = await Database.open(settings.database_target)
        try:
            return await action(db, args)
        finally:
            await db.close()

    return asyncio.run(main())


async def _add(db: Database, args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not name:
        print("alegra-sync: the partner name must not be empty", file=sys.stderr)
        return 2
    companies = args.company or [DEFAULT_COMPANY]
    try:
        partner, key = await create_partner(db, name, bool(args.admin), companies)
    except (PartnerExists, CompanyNotFound) as exc:
        print(f"alegra-sync: {exc}", file=sys.stderr)
        return 1
    kind = "admin" if partner.is_admin else "partner"
    print(f"Created {kind} {partner.name} ({partner.id}). Its key:")
    print(key)
    print("Store it now: it is not kept and will not be shown again.")
    if args.company:
        print(f"It reaches {', '.join(dict.fromkeys(companies))}.")
    return 0


async def _list(db: Database, _: argparse.Namespace) -> int:
    partners = await list_partners(db)
    if not partners:
        print("No partners yet: alegra-sync partners add NAME")
        return 0
    grants = await grants_by_partner(db) if await is_multi_company(db) else None
    print(format_partners(partners, grants))
    return 0


def format_partners(
    partners: list[PartnerListing], grants: dict[str, list[str]] | None = None
) -> str:
    """A table with a header row: names, ids, key prefixes (never keys), role, state; with
    `grants` (a deployment of several companies), also the companies each one reaches."""
    header = ("NAME", "ID", "KEY", "ROLE", *(("COMPANIES",) if grants is not None else ()),
              "STATE", "CREATED")
    rows = [header]
    for p in partners:
        role = "admin" if p.is_admin else "partner"
        reach = () if grants is None else (_reach(p, grants),)
        rows.append((p.name, p.id, f"{p.key_prefix}…", role, *reach, _state(p), p.created_at))
    return _table(rows)


def _state(p: PartnerListing) -> str:
    if p.revoked_at:
        return f"revoked {p.revoked_at}"
    if p.old_key_prefix:
        return f"active; old key {p.old_key_prefix}… valid until {p.old_key_expires_at}"
    return "active"


def _reach(p: PartnerListing, grants: dict[str, list[str]]) -> str:
    if p.is_admin:
        return "all (admin)"
    return ",".join(grants.get(p.id, [])) or "none"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  " + row[-1]
        for row in rows
    )


async def _rotate(db: Database, args: argparse.Namespace) -> int:
    try:
        done = await rotate_partner(db, args.name, args.grace)
    except PartnerNotFound as exc:
        print(f"alegra-sync: {exc}", file=sys.stderr)
        return 1
    print(f"New key for {done.partner.name} ({done.partner.id}):")
    print(done.key)
    print("Store it now: it is not kept and will not be shown again.")
    if done.reactivated:
        print(f"{done.partner.name} was revoked: it is active again, with this key only.")
    elif done.old_key_valid_until:
        print(f"The old key {done.old_key_prefix}… keeps working until "
              f"{done.old_key_valid_until}.")
    else:
        print(f"The old key {done.old_key_prefix}… no longer authenticates.")
    return 0


async def _revoke(db: Database, args: argparse.Namespace) -> int:
    if not await revoke_partner(db, args.name):
        print(f"alegra-sync: no active partner named {args.name!r}", file=sys.stderr)
        return 1
    print(f"Revoked {args.name}: its keys no longer authenticate.")
    return 0


async def _named(db: Database, name: str) -> Partner | None:
    """The partner called `name`; None (said on stderr) when there is none."""
    partner = await partner_named(db, name)
    if partner is None:
        print(f"alegra-sync: no partner named {name!r}", file=sys.stderr)
    return partner


async def _grant(db: Database, args: argparse.Namespace) -> int:
    partner = await _named(db, args.name)
    if partner is None:
        return 1
    for company in dict.fromkeys(args.company):
        try:
            new = await grant(db, partner.id, company)
        except CompanyNotFound as exc:
            print(f"alegra-sync: {exc}", file=sys.stderr)
            return 1
        print(f"{partner.name} {'now reaches' if new else 'already reached'} {company}.")
    return 0


async def _revoke_grant(db: Database, args: argparse.Namespace) -> int:
    partner = await _named(db, args.name)
    if partner is None:
        return 1
    missing = []
    for company in dict.fromkeys(args.company):
        if await revoke_grant(db, partner.id, company):
            print(f"{partner.name} no longer reaches {company}.")
        else:
            missing.append(company)
    if missing:
        print(f"alegra-sync: {partner.name} was not granted {', '.join(missing)}",
              file=sys.stderr)
        return 1
    return 0
