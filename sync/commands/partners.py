"""`alegra-sync partners add NAME [--admin] | list | revoke NAME`: partner keys.

`add` prints the new key once (only its hash is stored: a lost key is replaced, never recovered);
`list` shows each key's first characters only; `revoke` stops a key at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from sync.settings import load_settings
from sync.store.db import Database
from sync.store.partners import PartnerExists, create_partner, list_partners, revoke_partner


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("partners", help="manage partner API keys")
    actions = parser.add_subparsers(dest="partners_command", required=True)
    add = actions.add_parser("add", help="create a partner and print its key once")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="the key may read every receipt")
    add.set_defaults(handler=lambda args: _run(_add, args))
    show = actions.add_parser("list", help="list partners (never their keys)")
    show.set_defaults(handler=lambda args: _run(_list, args))
    revoke = actions.add_parser("revoke", help="revoke a partner's key")
    revoke.add_argument("name")
    revoke.set_defaults(handler=lambda args: _run(_revoke, args))


Action = Callable[[Database, argparse.Namespace], Awaitable[int]]


def _run(action: Action, args: argparse.Namespace) -> int:
    """Load the settings, open the store, run one action, close."""
    settings = load_settings()

    async def main() -> int:
        db = await Database.open(settings.database_path)
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
    try:
        partner, key = await create_partner(db, name, bool(args.admin))
    except PartnerExists as exc:
        print(f"alegra-sync: {exc}", file=sys.stderr)
        return 1
    kind = "admin" if partner.is_admin else "partner"
    print(f"Created {kind} {partner.name} ({partner.id}). Its key:")
    print(key)
    print("Store it now: it is not kept and will not be shown again.")
    return 0


async def _list(db: Database, _: argparse.Namespace) -> int:
    partners = await list_partners(db)
    if not partners:
        print("No partners yet: alegra-sync partners add NAME")
    for p in partners:
        state = f"revoked {p.revoked_at}" if p.revoked_at else "active"
        role = "admin" if p.is_admin else "partner"
        print(f"{p.name}\t{p.id}\t{p.key_prefix}…\t{role}\t{state}\tcreated {p.created_at}")
    return 0


async def _revoke(db: Database, args: argparse.Namespace) -> int:
    if not await revoke_partner(db, args.name):
        print(f"alegra-sync: no active partner named {args.name!r}", file=sys.stderr)
        return 1
    print(f"Revoked {args.name}: its key no longer authenticates.")
    return 0
