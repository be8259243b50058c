"""`alegra-sync companies add | list | check | remove | rotate-key`: the Alegra accounts served.

`add NAME --email E (--token T | --token-stdin) [--base-url URL]` stores a company (its token
encrypted under CREDENTIALS_KEY) and prints its id, a slug of the name, on the last line. `list`
shows each company's id, name, e-mail and state, never a token (`default`, the environment's
account, shows ALEGRA_EMAIL or "(simulator)"). `check ID` makes one cheap authenticated call:
exit 0 when Alegra accepts the credentials, 1 with Alegra's status when not (a refusal puts the
company in `needs_attention`; a success takes it out). `remove ID` stops its work (state
`removed`; its receipts stay readable) and removes its webhook subscriptions at Alegra;
`--purge` then deletes every row it owns. `rotate-key` re-encrypts every stored token with the
newest CREDENTIALS_KEY. `default` cannot be removed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from sync import credentials
from sync.alegra import resources
from sync.alegra.budget import Priority, RateBudget
from sync.alegra.client import AlegraClient, build_client
from sync.alegra.errors import AlegraError, AuthFailed
from sync.company_account import account_for
from sync.company_contract import CompanyIdInvalid, CompanyIn
from sync.deployment import command_settings
from sync.logs import configure_logging
from sync.receipt_contract import json_path, message
from sync.settings import Settings, shown_url
from sync.states import CompanyState
from sync.store import companies
from sync.store import doctor as doctor_store
from sync.store.companies import CompanyExists, CompanyNotFound, CompanyRecord, DefaultCompany
from sync.store.db import DEFAULT_COMPANY, Database
from sync.subscriptions import remove_subscriptions

Action = Callable[[Settings, Database, argparse.Namespace], Awaitable[int]]
USAGE_EXIT = 2
_FLAGS = {"name": "NAME", "email": "--email", "token": "--token", "base_url": "--base-url"}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("companies", help="manage the Alegra companies served")
    actions = parser.add_subparsers(dest="companies_command", required=True)
    add = actions.add_parser("add", help="add a company (one Alegra account); prints its id")
    add.add_argument("name")
    add.add_argument("--email", required=True, help="the Alegra user's e-mail")
    token = add.add_mutually_exclusive_group(required=True)
    token.add_argument("--token", help="the Alegra API token (visible to `ps`: prefer "
                       "--token-stdin)")
    token.add_argument("--token-stdin", action="store_true",
                       help="read the token from standard input (asked for on a terminal)")
    add.add_argument("--base-url", help="Alegra's API base URL for this account (default: "
                     "ALEGRA_BASE_URL)")
    add.set_defaults(handler=lambda args: _run(_add, args))
    actions.add_parser("list", help="list the companies (never a token)").set_defaults(
        handler=lambda args: _run(_list, args))
    check = actions.add_parser("check", help="do the company's credentials work? (one call)")
    check.add_argument("id")
    check.set_defaults(handler=lambda args: _run(_check, args,
                                                 needs_alegra=args.id == DEFAULT_COMPANY))
    remove = actions.add_parser(
        "remove", help="stop a company's work and remove its webhook subscriptions")
    remove.add_argument("id")
    remove.add_argument("--purge", action="store_true", help="also delete every row it owns")
    remove.set_defaults(handler=lambda args: _run(_remove, args))
    actions.add_parser(
        "rotate-key", help="re-encrypt every stored token with the newest CREDENTIALS_KEY"
    ).set_defaults(handler=lambda args: _run(_rotate_key, args))


def _run(action: Action, args: argparse.Namespace, *, needs_alegra: bool = False) -> int:
    """Load the deployment's settings (stored tokens must decrypt), open the store, run one
    action, close."""
    settings = command_settings(needs_alegra=needs_alegra)
    configure_logging(settings.log_format, "warning")

    async def main() -> int:
        db = await Database.open(settings.database_path)
        try:
            return await action(settings, db, args)
        finally:
            await db.close()

    return asyncio.run(main())


def _fail(text: str, status: int = 1) -> int:
    print(f"alegra-sync: {text}", file=sys.stderr)
    return status


# --- add --------------------------------------------------------------------------------------


async def _add(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    try:
        company = CompanyIn.model_validate({
            "name": args.name, "email": args.email, "token": _token(args),
            "base_url": args.base_url,
        })
    except ValidationError as exc:
        return _fail(refusal(exc), USAGE_EXIT)
    sealed = credentials.encrypt(settings, company.token)  # SettingsError: no CREDENTIALS_KEY
    try:
        record = await companies.add_company(
            db, company.name, company.email, sealed, company.base_url)
    except (CompanyExists, CompanyIdInvalid) as exc:
        return _fail(str(exc))
    print(f"Added {record.name} ({record.email}); its token is stored encrypted. "
          f"Check it with `alegra-sync companies check {record.id}`. Its id:")
    print(record.id)
    return 0


def _token(args: argparse.Namespace) -> str:
    if not args.token_stdin:
        return str(args.token)
    if sys.stdin.isatty():
        return getpass.getpass("Alegra token: ").strip()
    return sys.stdin.read().strip()


def refusal(exc: ValidationError) -> str:
    """The first rule broken, naming the argument (never echoing the value)."""
    error = exc.errors()[0]
    field = json_path(error["loc"]) or "the company"
    return f"{_FLAGS.get(field, field)}: {message(error)}"


# --- list -------------------------------------------------------------------------------------


async def _list(settings: Settings, db: Database, _: argparse.Namespace) -> int:
    records = await companies.list_companies(db)
    records.sort(key=lambda record: not record.is_default)  # default first, then by id
    doctors = {r.id: await doctor_store.doctor_view(db.for_company(r.id)) for r in records}
    print(format_companies(records, settings, doctors))
    return 0


def format_companies(
    records: list[CompanyRecord], settings: Settings,
    doctors: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """A table with a header row: id, name, e-mail, doctor (its latest verdict and what it
    learned), state (and why). Never a token."""
    rows = [("ID", "NAME", "E-MAIL", "DOCTOR", "STATE")]
    for record in records:
        state = str(record.state)
        if record.state_reason:
            state += f": {record.state_reason}"
        seen = (doctors or {}).get(record.id)
        rows.append((record.id, record.name, _email(record, settings), doctor_cell(seen), state))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  " + row[4]
        for row in rows
    )


def doctor_cell(view: Mapping[str, Any] | None) -> str:
    """`-` (never ran), `ok`, or `N-contradicted`; `+learned:SETTING=VALUE,…` when it learned."""
    if view is None or view["checked_at"] is None:
        cell = "-"
    else:
        cell = f"{view['contradicted']}-contradicted" if view["contradicted"] else "ok"
    learned = ",".join(f"{s['setting']}={s['value']}" for s in (view or {}).get("learned", []))
    return f"{cell}+learned:{learned}" if learned else cell


def _email(record: CompanyRecord, settings: Settings) -> str:
    if not record.is_default:
        return record.email or "-"
    return settings.alegra_email or "(simulator)"


# --- check ------------------------------------------------------------------------------------


async def _check(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    record = await companies.get_company(db, args.id)
    if record is None:
        return _fail(f"no company {args.id!r} (`alegra-sync companies list`)")
    client = await _client(settings, db, record)
    try:  # an operator waits on it: it goes first, as a receipt would
        await resources.check_credentials(client, priority=Priority.RECEIPT)
    except AuthFailed as exc:
        reason = f"Alegra refused its credentials: HTTP {exc.status}: {exc.message}"
        if record.state != CompanyState.REMOVED:
            await companies.set_state(db, record.id, CompanyState.NEEDS_ATTENTION, reason)
        return _fail(f"{record.id}: {reason}")
    except AlegraError as exc:
        return _fail(f"{record.id}: no verdict: {_described(exc)}")
    finally:
        await client.aclose()
    if record.state == CompanyState.NEEDS_ATTENTION:
        await companies.set_state(db, record.id, CompanyState.ACTIVE, None)
        print(f"{record.id} was needs_attention: it is active again.")
    print(f"{record.id}: Alegra accepts its credentials ({_where(settings, record)}).")
    return 0


async def _client(settings: Settings, db: Database, record: CompanyRecord) -> AlegraClient:
    """A client for the company's own account (its token decrypted here)."""
    token = None
    if not record.is_default:
        sealed = await companies.read_token(db, record.id)
        token = None if sealed is None else credentials.decrypt(settings, sealed, record.id)
    budget = RateBudget(settings.rate_limit, settings.rate_window_s)
    return build_client(settings, budget, account=account_for(settings, record, token))


def _where(settings: Settings, record: CompanyRecord) -> str:
    email = _email(record, settings)
    return f"{email} at {shown_url(record.base_url or settings.alegra_base_url)}"


def _described(exc: AlegraError) -> str:
    return f"HTTP {exc.status}: {exc.message}" if exc.status else exc.message


# --- remove -----------------------------------------------------------------------------------


async def _remove(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    try:
        record = await companies.remove_company(db, args.id)
    except (DefaultCompany, CompanyNotFound) as exc:
        return _fail(str(exc))
    print(f"Removed {record.id}: its work stops; its receipts stay readable.")
    problem, lasting = await _unsubscribe(settings, db, record)
    if problem is not None and not lasting:
        return _fail(f"{record.id}: its webhook subscriptions could not be removed at Alegra "
                     f"({problem}); run this again once Alegra answers"
                     + (" (nothing was purged)" if args.purge else ""))
    if problem is not None:
        print(f"alegra-sync: {record.id}: its webhook subscriptions could not be removed "
              f"({problem}): remove them in Alegra if it still has them", file=sys.stderr)
    if args.purge:
        deleted = await companies.purge_company(db, record.id)
        counts = ", ".join(f"{table} {n}" for table, n in deleted.items() if n)
        print(f"Purged {record.id}: rows deleted: {counts}.")
    return 0


async def _unsubscribe(
    settings: Settings, db: Database, record: CompanyRecord
) -> tuple[str | None, bool]:
    """Remove the company's subscriptions at Alegra: (why not, None when done; whether that
    will last: its credentials refused, rather than Alegra not answering)."""
    client = await _client(settings, db, record)
    try:
        report = await remove_subscriptions(client, db.for_company(record.id), settings)
    except AuthFailed as exc:
        return _described(exc), True
    except AlegraError as exc:
        return _described(exc), False
    finally:
        await client.aclose()
    for entry in report.deleted:
        print(f"deleted   {entry.event} subscription {entry.alegra_id}")
    if report.failed:
        return "; ".join(f"{what}: {why}" for what, why in report.failed.items()), False
    return None, False


# --- rotate-key -------------------------------------------------------------------------------


async def _rotate_key(settings: Settings, db: Database, _: argparse.Namespace) -> int:
    done = await credentials.rotate(settings, db)
    print(f"Re-encrypted {done} stored token{'' if done == 1 else 's'} with the newest key of "
          "CREDENTIALS_KEY. The older keys may now be dropped from it (then restart the web "
          "process and the worker).")
    return 0
