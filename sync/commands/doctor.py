"""`alegra-sync doctor [--company ID] [--json] [--forget]`: settle the guesses about Alegra from a
company's own data (issue 15).

Read-only towards Alegra (`sync.doctor_reading`: at most 40 GETs at background priority). Prints
each guess's verdict (`sync.doctor`) and stores the findings; where a contradicted guess has one
clear alternative in the company's data, that becomes the company's setting (`sync.learned`):
its contacts and bills are written that way from then on. `--forget` drops what was learned.
Exit 0 when nothing is contradicted, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from sync import doctor
from sync.alegra.budget import RateBudget
from sync.alegra.errors import AlegraError
from sync.company_account import stored_account
from sync.deployment import command_settings
from sync.doctor_reading import examine_and_store
from sync.logs import configure_logging
from sync.settings import Settings
from sync.store import companies
from sync.store import doctor as doctor_store
from sync.store.db import DEFAULT_COMPANY, Database

RAN_BY = "command"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor", help="settle the guesses about Alegra from a company's data (read-only)")
    parser.add_argument("--company", default=DEFAULT_COMPANY, help="the company (default: "
                        "default)")
    parser.add_argument("--json", action="store_true", help="the findings as a JSON list")
    parser.add_argument("--forget", action="store_true", help="drop what doctor learned for "
                        "the company (it writes with the built-in guesses again); no request")
    parser.set_defaults(handler=doctor_command)


def doctor_command(args: argparse.Namespace) -> int:
    settings = command_settings(needs_alegra=args.company == DEFAULT_COMPANY and not args.forget)
    configure_logging(settings.log_format, "warning")

    async def main() -> int:
        db = await Database.open(settings.database_path)
        try:
            return await _doctor(settings, db, args)
        finally:
            await db.close()

    return asyncio.run(main())


async def _doctor(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    record = await companies.get_company(db, args.company)
    if record is None:
        print(f"alegra-sync: no company {args.company!r} (`alegra-sync companies list`)",
              file=sys.stderr)
        return 1
    scoped = db.for_company(record.id)
    if args.forget:
        dropped = await doctor_store.forget(scoped)
        print(f"{record.id}: forgot {dropped} learned setting(s); its contacts and bills are "
              "written with the built-in guesses again.")
        return 0
    account = await stored_account(settings, db, record)
    budget = RateBudget(settings.rate_limit, settings.rate_window_s)
    try:
        findings, learned = await examine_and_store(scoped, account, budget, ran_by=RAN_BY)
    except (AlegraError, RuntimeError) as exc:
        print(f"alegra-sync: doctor: {record.id}: no verdict: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([f.as_json() for f in findings], indent=2, ensure_ascii=False))
    else:
        print(doctor.format_findings(findings))
        for setting in learned:
            print(f"learned: {record.id} now writes {setting.setting} = {setting.value!r} "
                  f"(`alegra-sync doctor --forget --company {record.id}` undoes it)")
    return doctor.exit_status(findings)
