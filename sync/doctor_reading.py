"""`alegra-sync doctor`'s reading: a handful of GETs on a company's Alegra, judged by
`sync.doctor`, stored by `sync.store.doctor`. Used by the command and after a company's first
backfill (sync/jobs/backfill.py).

Read-only: at most MAX_REQUESTS GETs at background priority on the caller's rate budget, never
a write (the transport refuses anything else).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from sync import doctor
from sync.alegra import resources
from sync.alegra.budget import Priority, RateBudget
from sync.alegra.client import AlegraAccount, AlegraClient
from sync.alegra.pages import parse_list_body
from sync.store import doctor as doctor_store
from sync.store.db import Database
from sync.webhook_tokens import mask_url

MAX_REQUESTS = 40
PAGES = 3  # first pages of contacts and of bills read for evidence (30 rows each)
PRIORITY = Priority.BACKGROUND
PAUSE_S = 2.0  # the last GET waits this long after the first: Reset's countdown shows over it


class ReadOnlyTransport(httpx.AsyncBaseTransport):
    """Sends GETs only, at most `limit`, and keeps each answer's headers and arrival time."""

    def __init__(self, limit: int = MAX_REQUESTS) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._limit = limit
        self.sent = 0
        self.answers: list[tuple[float, dict[str, str]]] = []

    @property
    def headers(self) -> list[dict[str, str]]:
        return [headers for _, headers in self.answers]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            raise RuntimeError(f"doctor never writes: refused {request.method} {request.url}")
        if self.sent >= self._limit:
            raise RuntimeError(f"doctor's {self._limit} requests are spent")
        self.sent += 1
        response = await self._inner.handle_async_request(request)
        self.answers.append((time.monotonic(), dict(response.headers)))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def examine_account(
    account: AlegraAccount, budget: RateBudget, *, stopping: asyncio.Event | None = None
) -> list[doctor.Finding]:
    """Read the account's evidence through a read-only client on `budget`, and judge it.
    Raises AlegraError, or RuntimeError when the transport refuses a request."""
    transport = ReadOnlyTransport()
    client = AlegraClient(account.base_url, account.email, account.token, budget,
                          transport=transport, max_attempts=2, stopping=stopping)
    try:
        return await examine(client, transport)
    finally:
        await client.aclose()


async def examine_and_store(
    db: Database, account: AlegraAccount, budget: RateBudget, *, ran_by: str,
    learn: bool = True, stopping: asyncio.Event | None = None,
) -> tuple[list[doctor.Finding], list[doctor_store.LearnedSetting]]:
    """Examine the company of `db` and store its findings and (with `learn`) what they show."""
    findings = await examine_account(account, budget, stopping=stopping)
    learned = await doctor_store.store_run(db, findings, ran_by=ran_by, learn=learn)
    return findings, learned


async def examine(client: AlegraClient, transport: ReadOnlyTransport) -> list[doctor.Finding]:
    """Read what each check needs (a handful of GETs) and judge it."""
    contacts = await _first_pages(client, resources.CONTACTS)
    bills = await _first_pages(client, resources.BILLS)
    first = await _rows(client, resources.CATEGORIES, {"format": "plain", "start": 0, "limit": 1})
    second: list[dict[str, Any]] = []
    wider: list[dict[str, Any]] | None = None
    if first:
        second = await _rows(client, resources.CATEGORIES,
                             {"format": "plain", "start": 1, "limit": 1})
    if len(first) == 1 and [row.get("id") for row in second] == [first[0].get("id")]:
        wider = await _rows(client, resources.CATEGORIES,  # one category, or `start` ignored?
                            {"format": "plain", "start": 0, "limit": 2})
    contact = doctor.pick_searchable(contacts)
    by_id = await _identification_searches(client, contact)
    named = doctor.name_part(contacts)
    by_name: dict[str, list[dict[str, Any]]] = {}
    if named is not None:
        for form in (named[1], str(named[0]["name"])):
            by_name[form] = await _rows(client, resources.CONTACTS, {"name": form})
    bound = doctor.date_bound(bills)
    after = [] if bound is None else await _rows(
        client, resources.BILLS, {resources.BILLS_DATE_FROM_PARAM: bound})
    await _pause(transport)
    subscriptions = await resources.list_subscriptions(client, priority=PRIORITY)
    return [
        doctor.judge_identification_types(contacts),
        doctor.judge_ncf_field(bills),
        doctor.judge_rate_headers(transport.headers),
        doctor.judge_reset_countdown(transport.answers),
        doctor.judge_categories_paging(first, second, wider),
        doctor.judge_identification_search(contact, by_id),
        doctor.judge_name_search(named, by_name),
        doctor.judge_date_filter(bound, after),
        doctor.judge_currency_shape(bills),
        doctor.judge_subscription_urls(subscriptions, mask_url),
    ]


async def _identification_searches(
    client: AlegraClient, contact: Mapping[str, Any] | None
) -> dict[str, list[dict[str, Any]]]:
    if contact is None:
        return {}
    forms = resources.identification_forms(str(contact["identification"]))
    return {form: await _rows(client, resources.CONTACTS, {"identification": form})
            for form in (forms[0], forms[-1])}


async def _pause(transport: ReadOnlyTransport) -> None:
    """Wait until PAUSE_S after the first answer, so the last one shows Reset counting down."""
    if transport.answers:
        left = transport.answers[0][0] + PAUSE_S - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)


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
