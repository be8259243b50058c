"""`alegra-sync doctor [--company ID] [--json]`: settle the guesses about Alegra from a company's
own data (issue 15, the read-only report).

Read-only: at most MAX_REQUESTS GETs at background priority, never a write (the transport
refuses anything else). Prints each guess's verdict (`sync.doctor`); exit 0 when nothing is
contradicted, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

import httpx

from sync import doctor
from sync.alegra import resources
from sync.alegra.budget import Priority, RateBudget
from sync.alegra.client import AlegraClient
from sync.alegra.errors import AlegraError
from sync.alegra.pages import parse_list_body
from sync.company_account import stored_account
from sync.deployment import command_settings
from sync.logs import configure_logging
from sync.settings import Settings
from sync.store import companies
from sync.store.db import DEFAULT_COMPANY, Database

MAX_REQUESTS = 40
PAGES = 3  # first pages of contacts and of bills read for evidence (30 rows each)
PRIORITY = Priority.BACKGROUND


class ReadOnlyTransport(httpx.AsyncBaseTransport):
    """Sends GETs only, at most `limit`, and keeps each answer's headers."""

    def __init__(self, limit: int = MAX_REQUESTS) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._limit = limit
        self.sent = 0
        self.headers: list[dict[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            raise RuntimeError(f"doctor never writes: refused {request.method} {request.url}")
        if self.sent >= self._limit:
            raise RuntimeError(f"doctor's {self._limit} requests are spent")
        self.sent += 1
        response = await self._inner.handle_async_request(request)
        self.headers.append(dict(response.headers))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor", help="settle the guesses about Alegra from a company's data (read-only)")
    parser.add_argument("--company", default=DEFAULT_COMPANY, help="the company (default: "
                        "default)")
    parser.add_argument("--json", action="store_true", help="the findings as a JSON list")
    parser.set_defaults(handler=doctor_command)


def doctor_command(args: argparse.Namespace) -> int:
    settings = command_settings(needs_alegra=args.company == DEFAULT_COMPANY)
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
    account = await stored_account(settings, db, record)
    transport = ReadOnlyTransport()
    budget = RateBudget(settings.rate_limit, settings.rate_window_s)
    client = AlegraClient(account.base_url, account.email, account.token, budget,
                          transport=transport, max_attempts=2)
    try:
        findings = await examine(client, transport)
    except (AlegraError, RuntimeError) as exc:
        print(f"alegra-sync: doctor: {record.id}: no verdict: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    if args.json:
        print(json.dumps([f.as_json() for f in findings], indent=2, ensure_ascii=False))
    else:
        print(doctor.format_findings(findings))
    return doctor.exit_status(findings)


async def examine(client: AlegraClient, transport: ReadOnlyTransport) -> list[doctor.Finding]:
    """Read what each check needs (a handful of GETs) and judge it."""
    contacts = await _first_pages(client, resources.CONTACTS)
    bills = await _first_pages(client, resources.BILLS)
    first = await _rows(client, resources.CATEGORIES, {"format": "plain", "start": 0, "limit": 1})
    second: list[dict[str, Any]] = []
    if first:
        second = await _rows(client, resources.CATEGORIES,
                             {"format": "plain", "start": 1, "limit": 1})
    contact = doctor.pick_searchable(contacts)
    found_by: dict[str, list[dict[str, Any]]] = {}
    if contact is not None:
        bare = resources.identification_forms(str(contact["identification"]))[0]
        dashed = _dashed(bare)
        for form in (bare, dashed):
            found_by[form] = await _rows(client, resources.CONTACTS, {"identification": form})
    return [
        doctor.judge_identification_types(contacts),
        doctor.judge_ncf_field(bills),
        doctor.judge_rate_headers(transport.headers),
        doctor.judge_categories_paging(first, second),
        doctor.judge_identification_search(contact, found_by),
    ]


def _dashed(bare: str) -> str:
    forms = resources.identification_forms(bare)
    return forms[1] if len(forms) > 1 else bare


async def _first_pages(client: AlegraClient, path: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    pages = client.iter_pages(path, priority=PRIORITY)
    try:
        for _ in range(PAGES):
            page = await anext(pages, None)
            if page is None:
                break
            rows.extend(page.rows)
    finally:
        await pages.aclose()
    return rows


async def _rows(client: AlegraClient, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    body = await client.get(path, priority=PRIORITY, params=dict(params))
    rows, _ = parse_list_body(body)
    return rows
