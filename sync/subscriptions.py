"""Alegra's webhook subscriptions for this service: judge, plan (pure), then apply (thin I/O).

`ensure_subscriptions` is what `alegra-sync webhooks register` runs, and what the worker's health
job runs on a schedule: it compares what Alegra lists with the events we need at the current URL
(`PUBLIC_URL/webhooks/alegra/<token of key 0>`), creates what is missing, and only then deletes our
subscriptions at URLs no longer current (an older key after a rotation). Running it twice changes
nothing. A subscription is "ours" when its URL's token verifies with one of our keys.

Each company (one Alegra account) has its own URL, whose token signs the company id: the company
is the `db` handle's (`Database.for_company`), whose subscription rows these functions keep. A
subscription whose token is another company's is not ours here, and is never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.alegra import resources
from sync.alegra.budget import Priority
from sync.alegra.client import AlegraClient
from sync.alegra.errors import AlegraError, AuthFailed, Rejected
from sync.logs import get_logger, register_secrets
from sync.settings import Settings
from sync.store import subscriptions as store
from sync.store.db import DEFAULT_COMPANY, Database, Row
from sync.webhook_tokens import all_tokens, same_url, token_of_url, verify_token, webhook_url

EVENTS = ("new-client", "edit-client", "delete-client", "new-bill", "edit-bill", "delete-bill")
# [unverified] the status Alegra answers for a subscription that already exists (same event and
# URL): 400, 409 or 422. A rejection with one of these is checked against a fresh listing.
DUPLICATE_STATUSES = frozenset({400, 409, 422})


@dataclass(frozen=True)
class Listed:
    """One subscription as Alegra lists it, judged against our keys and current URL."""

    alegra_id: str
    event: str
    url: str
    key_index: int | None  # which of our keys made its token; None: not ours
    current: bool  # exactly the URL `register` subscribes now

    @property
    def ours(self) -> bool:
        return self.key_index is not None


@dataclass(frozen=True)
class Plan:
    create: tuple[str, ...]
    keep: tuple[Listed, ...]
    stale: tuple[Listed, ...]  # ours, at a URL that is no longer current: delete once replaced


@dataclass
class Report:
    """What a run did. `recreated`: events that were subscribed and had vanished from Alegra."""

    created: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    deleted: list[Listed] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def judge(
    rows: Sequence[dict[str, Any]], settings: Settings, company: str = DEFAULT_COMPANY
) -> list[Listed]:
    """Alegra's listing → `Listed` entries for `company` (pure): ours when the URL's token is
    this company's. Rows without an id or event are ignored."""
    keys = settings.secret_keys
    current_url = webhook_url(settings.public_url, keys, company=company)
    listed = []
    for row in rows:
        if row.get("id") is None or not isinstance(row.get("event"), str):
            continue
        url = str(row.get("url") or "")
        token = token_of_url(url)
        key_index = None if token is None else verify_token(token, keys, company=company)
        current = key_index is not None and same_url(url, current_url)
        listed.append(Listed(str(row["id"]), row["event"], url, key_index, current))
    return listed


def plan(listed: Sequence[Listed], events: Sequence[str] = EVENTS) -> Plan:
    """What to create and what is stale (pure). Subscriptions not ours are never touched."""
    current = {s.event for s in listed if s.current}
    return Plan(
        create=tuple(e for e in events if e not in current),
        keep=tuple(s for s in listed if s.current and s.event in events),
        stale=tuple(s for s in listed if s.ours and not s.current),
    )


@dataclass
class _Run:
    """One `ensure_subscriptions` run: its connections and what it has done so far."""

    client: AlegraClient
    db: Database
    settings: Settings
    priority: Priority
    report: Report = field(default_factory=Report)

    def __post_init__(self) -> None:
        self.company = self.db.company
        self.tokens = all_tokens(self.settings.secret_keys, company=self.company)
        register_secrets(self.tokens)  # the worker's health job runs this too

    def logger(self, **context: Any) -> Any:
        return get_logger(company=self.company, **context)

    def describe(self, exc: AlegraError) -> str:
        """Alegra's reason, with any of our tokens it may echo (the URL) masked."""
        text = f"HTTP {exc.status}: {exc.message}" if exc.status else exc.message
        for token in self.tokens:
            text = text.replace(token, "***")
        return text

    async def listing(self) -> list[Listed]:
        rows = await resources.list_subscriptions(self.client, priority=self.priority)
        return judge(rows, self.settings, self.company)

    async def keep(self, entry: Listed) -> None:
        await store.record_present(
            self.db, entry.event, entry.alegra_id, 0, created=False, recreated=False
        )
        self.report.kept.append(entry.event)

    async def create(self, event: str, *, was_lost: bool) -> str | None:
        """Subscribe one event. Returns None when done (or failed, recorded), or Alegra's reason
        when it refused in a way that may mean the subscription already exists."""
        url = webhook_url(self.settings.public_url, self.settings.secret_keys, company=self.company)
        log = self.logger(event=event)
        try:
            made = await resources.create_subscription(
                self.client, event, url, priority=self.priority
            )
        except AlegraError as exc:
            if is_duplicate_rejection(exc):
                return self.describe(exc)
            await self.fail(event, self.describe(exc))
            log.warning("webhooks.subscribe_failed", status=exc.status, code=exc.code)
            return None
        alegra_id = str(made.get("id", ""))
        await store.record_present(self.db, event, alegra_id, 0, created=True, recreated=was_lost)
        self.report.created.append(event)
        if was_lost:
            self.report.recreated.append(event)
            log.warning("webhooks.subscription_recreated", alegra_id=alegra_id)
        else:
            log.info("webhooks.subscribed", alegra_id=alegra_id)
        return None

    async def fail(self, event: str, reason: str) -> None:
        self.report.failed[event] = reason
        await store.record_missing(self.db, event)

    async def recheck(self, refused: dict[str, str]) -> None:
        """Creates refused as maybe-duplicates: present if a fresh listing shows them, else
        failed with Alegra's reason."""
        current = {s.event: s for s in await self.listing() if s.current}
        for event, reason in refused.items():
            if event in current:
                await self.keep(current[event])
            else:
                await self.fail(event, reason)
                self.logger(event=event).warning("webhooks.subscribe_failed", reason=reason)

    async def delete(self, entry: Listed) -> bool:
        """Delete one subscription of ours; a failure is reported, not raised."""
        try:
            await resources.delete_subscription(
                self.client, entry.alegra_id, priority=self.priority
            )
        except AlegraError as exc:
            self.report.failed[f"delete {entry.alegra_id}"] = self.describe(exc)
            return False
        self.report.deleted.append(entry)
        self.logger(event=entry.event, key_index=entry.key_index).info(
            "webhooks.unsubscribed", alegra_id=entry.alegra_id, current=entry.current
        )
        return True

    async def delete_stale(self, stale: Sequence[Listed]) -> None:
        """Delete our old-URL subscriptions whose event is subscribed at the current URL now."""
        replaced = set(self.report.kept) | set(self.report.created)
        for entry in stale:
            if entry.event in EVENTS and entry.event not in replaced:
                continue  # keep the old URL until the new one exists: no delivery is lost
            await self.delete(entry)


async def ensure_subscriptions(
    client: AlegraClient, db: Database, settings: Settings,
    *, priority: Priority = Priority.BACKGROUND,
) -> Report:
    """Make Alegra's subscriptions match EVENTS at the current URL. Raises AlegraError only if
    the listing itself fails; anything else that fails is in `Report.failed`."""
    run = _Run(client, db, settings, priority)
    listed = await run.listing()
    todo = plan(listed)
    states = await store.load_states(db)
    ours_before = {s.event for s in listed if s.ours}
    for entry in todo.keep:
        await run.keep(entry)
    refused: dict[str, str] = {}
    for event in todo.create:
        was_lost = _had_existed(states.get(event)) and event not in ours_before
        reason = await run.create(event, was_lost=was_lost)
        if reason is not None:
            refused[event] = reason
    if refused:
        await run.recheck(refused)
    await run.delete_stale(todo.stale)
    return run.report


def _had_existed(state: Row | None) -> bool:
    """We had this subscription (it was created, and not removed on purpose since)."""
    return state is not None and state["alegra_id"] is not None and bool(
        state["present"] or state["missing_since"]
    )


def is_duplicate_rejection(exc: AlegraError) -> bool:
    """Alegra refused the create in a way that may mean "this subscription already exists"."""
    return (
        isinstance(exc, Rejected) and not isinstance(exc, AuthFailed)
        and exc.status in DUPLICATE_STATUSES
    )


async def list_subscriptions_report(
    client: AlegraClient, settings: Settings, *, priority: Priority = Priority.BACKGROUND,
    company: str = DEFAULT_COMPANY,
) -> list[Listed]:
    """Every subscription Alegra has for this account (`client` calls as `company`), judged
    for that company (ours? which key? current?)."""
    rows = await resources.list_subscriptions(client, priority=priority)
    return judge(rows, settings, company)


async def remove_subscriptions(
    client: AlegraClient, db: Database, settings: Settings,
    *, priority: Priority = Priority.BACKGROUND,
) -> Report:
    """Delete every subscription of ours (any key); others' are left alone."""
    run = _Run(client, db, settings, priority)
    for entry in await run.listing():
        if entry.ours and await run.delete(entry):
            await store.record_removed(db, entry.event)
    return run.report
