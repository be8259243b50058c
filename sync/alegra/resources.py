"""One thin async function per Alegra operation the product uses. Every path string lives here.

Each takes the client first and the budget `priority` as a keyword, and returns Alegra's JSON
as-is (ids stay strings). Record ids that come from outside (a webhook delivery is not signed)
are checked before they become part of a path, so they cannot point a request elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from stdnum.do import cedula, rnc

from sync.alegra.budget import Priority
from sync.alegra.client import AlegraClient, Page
from sync.alegra.errors import NotFound, OutcomeUnknown, Unavailable
from sync.alegra.pages import MAX_PAGE_SIZE
from sync.alegra.responses import IDEMPOTENT
from sync.dominican import digits

CONTACTS = "/contacts"
CATEGORIES = "/categories"
TAXES = "/taxes"
BILLS = "/bills"
SUBSCRIPTIONS = "/webhooks/subscriptions"
# [unverified] the bills list's "on or after this date" filter: Alegra's invoices take
# `date_afterOrNow`; bills are assumed to take the same. Without it a backfill is only slower.
BILLS_DATE_FROM_PARAM = "date_afterOrNow"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # numeric ids and UUIDs

Json = dict[str, Any]


def record_path(collection: str, record_id: str, *rest: str) -> str:
    """`/contacts/{id}`; raises NotFound (nothing is sent) for a value that is not an Alegra id."""
    text = str(record_id)
    if not _ID.fullmatch(text):
        raise NotFound(f"not an Alegra id: {text[:70]!r}", path=collection)
    return "/".join((collection, text, *rest))


def identification_forms(tax_id: str) -> list[str]:
    """The digits, and the printed RNC/cédula form a contact typed by hand may hold."""
    number = digits(tax_id)
    forms = [number] if number else []
    if len(number) == 9:
        forms.append(rnc.format(number))
    elif len(number) == 11:
        forms.append(cedula.format(number))
    return list(dict.fromkeys(forms))


async def find_contacts_by_identification(
    client: AlegraClient, tax_id_digits: str, *, priority: Priority
) -> list[Json]:
    """Contacts Alegra returns for the number in either form, each once.

    [unverified] how Alegra's `identification` filter matches; callers compare the tax ids of
    what comes back themselves. An empty number searches nothing (it would list every contact).
    """
    found: dict[str, Json] = {}
    for form in identification_forms(tax_id_digits):
        for row in await _all_rows(client, CONTACTS, {"identification": form}, priority):
            found.setdefault(str(row.get("id")), row)
    return list(found.values())


async def find_contacts_by_name(
    client: AlegraClient, name: str, *, priority: Priority
) -> list[Json]:
    """Contacts Alegra returns for a `name` filter ([unverified] how it matches: callers compare
    normalised names themselves). An empty name searches nothing."""
    if not name.strip():
        return []
    return await _all_rows(client, CONTACTS, {"name": name}, priority)


async def get_contact(client: AlegraClient, contact_id: str, *, priority: Priority) -> Json | None:
    return await _get_or_none(client, CONTACTS, contact_id, priority)


async def create_contact(client: AlegraClient, payload: Json, *, priority: Priority) -> Json:
    return _object(await client.post(CONTACTS, priority=priority, json=payload), "POST", CONTACTS)


async def update_contact(
    client: AlegraClient, contact_id: str, payload: Json, *, priority: Priority
) -> Json:
    path = record_path(CONTACTS, contact_id)
    return _object(await client.put(path, priority=priority, json=payload), "PUT", path)


def iter_contacts(
    client: AlegraClient, start: int = 0, *, priority: Priority
) -> AsyncGenerator[Page, None]:
    return client.iter_pages(CONTACTS, priority=priority, params={"metadata": "true"}, start=start)


async def list_categories(
    client: AlegraClient, type: str | None = None, *, priority: Priority
) -> list[Json]:
    """The chart of accounts as a flat list (`format=plain`), optionally of one `type`.

    [unverified] whether /categories pages: `_all_rows` takes a complete list and pages of 30
    alike, and stops if the endpoint ignores `start` and repeats itself.
    """
    params = {"format": "plain", **({"type": type} if type else {})}
    return await _all_rows(client, CATEGORIES, params, priority)


async def create_category(client: AlegraClient, payload: Json, *, priority: Priority) -> Json:
    body = await client.post(CATEGORIES, priority=priority, json=payload)
    return _object(body, "POST", CATEGORIES)


async def list_taxes(client: AlegraClient, *, priority: Priority) -> list[Json]:
    return await _all_rows(client, TAXES, {}, priority)


async def check_credentials(client: AlegraClient, *, priority: Priority) -> None:
    """One cheap authenticated read (the first tax): raises AuthFailed when Alegra refuses the
    account, another AlegraError when it cannot tell."""
    await client.get(TAXES, priority=priority, params={"start": 0, "limit": 1})


async def create_bill(client: AlegraClient, payload: Json, *, priority: Priority) -> Json:
    """POST /bills. Not idempotent: on OutcomeUnknown, look the bill up before creating again."""
    return _object(await client.post(BILLS, priority=priority, json=payload), "POST", BILLS)


async def find_bills(
    client: AlegraClient, provider_id: str, date: str | None = None, *, priority: Priority
) -> list[Json]:
    """Every bill of one provider (Alegra's `client_id` filter), optionally on one date."""
    params = {"client_id": str(provider_id), **({"date": date} if date else {})}
    return await _all_rows(client, BILLS, params, priority)


async def get_bill(client: AlegraClient, bill_id: str, *, priority: Priority) -> Json | None:
    return await _get_or_none(client, BILLS, bill_id, priority)


def iter_bills(
    client: AlegraClient, start: int = 0, date_from: str | None = None, *, priority: Priority
) -> AsyncGenerator[Page, None]:
    params = {"metadata": "true", **({BILLS_DATE_FROM_PARAM: date_from} if date_from else {})}
    return client.iter_pages(BILLS, priority=priority, params=params, start=start)


async def attach_to_bill(
    client: AlegraClient,
    bill_id: str,
    filename: str,
    content_type: str,
    data: bytes,
    *,
    priority: Priority,
) -> Json:
    """Upload one file (multipart, field `file`) to a bill; Alegra answers `{name, url}`."""
    path = record_path(BILLS, bill_id, "attachment")
    body = await client.post(
        path, priority=priority, files={"file": (filename, data, content_type)}
    )
    return _object(body, "POST", path)


async def list_subscriptions(client: AlegraClient, *, priority: Priority) -> list[Json]:
    body = await client.get(SUBSCRIPTIONS, priority=priority)
    rows = body.get("subscriptions") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise Unavailable("expected a list of subscriptions", method="GET", path=SUBSCRIPTIONS)
    return [row for row in rows if isinstance(row, dict)]


async def create_subscription(
    client: AlegraClient, event: str, url: str, *, priority: Priority
) -> Json:
    """Subscribe `url` to `event`; returns the inner `subscription` ({id, event, url})."""
    body = await client.post(SUBSCRIPTIONS, priority=priority, json={"event": event, "url": url})
    inner = body.get("subscription") if isinstance(body, dict) else None
    return _object(inner if isinstance(inner, dict) else body, "POST", SUBSCRIPTIONS)


async def delete_subscription(
    client: AlegraClient, subscription_id: str, *, priority: Priority
) -> None:
    """Remove a subscription; one that is already gone counts as removed."""
    try:
        await client.delete(record_path(SUBSCRIPTIONS, subscription_id), priority=priority)
    except NotFound:
        return


async def _get_or_none(
    client: AlegraClient, collection: str, record_id: str, priority: Priority
) -> Json | None:
    """The record, or None when Alegra has no such id (404, or not an id at all)."""
    try:
        path = record_path(collection, record_id)
        body = await client.get(path, priority=priority)
    except NotFound:
        return None
    return _object(body, "GET", path)


async def _all_rows(
    client: AlegraClient, path: str, params: dict[str, Any], priority: Priority
) -> list[Json]:
    """Every row of a list, each once, stopping if a page brings nothing new.

    An endpoint that ignores paging and sends its whole list (more than a page) again is
    complete. One that sends the same page of at most MAX_PAGE_SIZE rows again honours `limit`
    but not `start`: the rest cannot be listed, so that raises Unavailable rather than pass a
    partial list off as complete (a poll would otherwise mark the missing rows deleted).
    """
    rows: list[Json] = []
    seen: set[str] = set()
    async with aclosing(client.iter_pages(path, priority=priority, params=params)) as pages:
        async for page in pages:
            fresh = [r for r in page.rows if r.get("id") is None or str(r["id"]) not in seen]
            if page.rows and not fresh:
                if len(page.rows) <= MAX_PAGE_SIZE:
                    raise Unavailable(
                        "Alegra repeated a page instead of the next one: list incomplete",
                        method="GET", path=path,
                    )
                break  # the whole list again: the endpoint does not page, and we have it all
            seen.update(str(r["id"]) for r in fresh if r.get("id") is not None)
            rows.extend(fresh)
    return rows


def _object(body: Any, method: str, path: str) -> Json:
    """The JSON object an operation promises; anything else is an answer we cannot use."""
    if isinstance(body, dict):
        return body
    kind = Unavailable if method in IDEMPOTENT else OutcomeUnknown
    raise kind(
        f"expected a JSON object from Alegra, got {type(body).__name__}", method=method, path=path
    )
