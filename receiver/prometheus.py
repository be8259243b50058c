"""GET /metrics: the Prometheus text format (0.0.4), rendered with prometheus-client from the
worker's counters (`metric_counters`) and gauges read from the tables, at most once per
`MAX_AGE_S`, on a read-only connection of its own, with index lookups only.
Everything that belongs to one company (its receipts, inbox, jobs, subscriptions, drift, cache,
and the worker's counters of its work) carries the label `company`, one series per live company;
the worker's heartbeat and rate budget, and the deliveries counter, are the deployment's.
Design: docs/sync.md ("Metrics").
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from receiver.admin_spec import METRICS
from receiver.openapi import ApiRoute
from sync.metrics import COMPANY, FAMILIES
from sync.notifications.endpoints import endpoint_counts
from sync.notifications.queue import pending_figures
from sync.states import InboxState, ReceiptStatus
from sync.status import NEEDS_ATTENTION, worker_summary
from sync.store import jobs, ops_queries
from sync.store.companies import live_company_states
from sync.store.db import DEFAULT_COMPANY, Database

MAX_AGE_S = 5.0  # a scrape within this long of the last computation gets the same text
OPEN_RECEIPTS = (ReceiptStatus.QUEUED, ReceiptStatus.PROCESSING, ReceiptStatus.FAILED)
OPEN_EVENTS = (InboxState.RECEIVED, InboxState.FAILED, InboxState.PARKED)
LAG_QUANTILES = (0.5, 0.99, 1.0)
P = "alegra_sync_"


Series = dict[str, list[tuple[dict[str, str], float]]]


def worker_families(rows: list[Any]) -> list[Metric]:
    """The worker's stored series, grouped back into their families (pure). A series stored
    before its family had the label `company` is the company `default`'s."""
    series: Series = defaultdict(list)
    for row in rows:
        series[row["name"]].append((json.loads(row["labels"]), float(row["value"])))
    out: list[Metric] = []
    for spec in FAMILIES.values():
        if spec.kind == "counter":
            counter = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
            for key, value in sorted(_summed(series, f"{spec.name}_total", spec.labels).items()):
                counter.add_metric(list(key[:-1]), value)
            out.append(counter)
        else:
            out.append(_histogram(spec.name, spec.help, spec.labels, series))
    return out


def _label_values(labels: dict[str, str], names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(labels.get(n, DEFAULT_COMPANY if n == COMPANY else "") for n in names)


def _summed(series: Series, name: str, names: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """Values by (label values…, le): stored label sets that read the same are added up."""
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, value in series.get(name, []):
        out[(*_label_values(labels, names), labels.get("le", ""))] += value
    return out


def _histogram(name: str, doc: str, label_names: tuple[str, ...],
               series: Series) -> HistogramMetricFamily:
    buckets: dict[tuple[str, ...], list[tuple[str, float]]] = defaultdict(list)
    for with_le, value in _summed(series, f"{name}_bucket", label_names).items():
        buckets[with_le[:-1]].append((with_le[-1], value))
    sums = {with_le[:-1]: value
            for with_le, value in _summed(series, f"{name}_sum", label_names).items()}
    family = HistogramMetricFamily(name, doc, labels=label_names)
    for key, pairs in sorted(buckets.items()):
        pairs.sort(key=lambda pair: float(pair[0]))
        if pairs and pairs[-1][0] == "+Inf":
            family.add_metric(list(key), pairs, sums.get(key, 0.0))
    return family


def gauge(name: str, doc: str, values: Mapping[Any, float],
          labels: tuple[str, ...] = (), company: str | None = None) -> GaugeMetricFamily:
    """A gauge family; with `company`, every sample also carries it as label `company`."""
    family = GaugeMetricFamily(P + name, doc, labels=_names(labels, company))
    for key, value in sorted(values.items()):
        family.add_metric(_values(key, company), value)
    return family


def counter(name: str, doc: str, values: Mapping[Any, float], labels: tuple[str, ...] = (),
            company: str | None = None) -> CounterMetricFamily:
    """A counter family kept in the tables (not the worker's), like `gauge`."""
    family = CounterMetricFamily(P + name, doc, labels=_names(labels, company))
    for key, value in sorted(values.items()):
        family.add_metric(_values(key, company), value)
    return family


def _names(labels: tuple[str, ...], company: str | None) -> list[str]:
    return list(labels) if company is None else [COMPANY, *labels]


def _values(key: tuple[str, ...], company: str | None) -> list[str]:
    return list(key) if company is None else [company, *key]


def merged(families: list[Metric]) -> list[Metric]:
    """Families of the same name (one per company) as one family holding every sample."""
    out: dict[str, Metric] = {}
    for family in families:
        if family.name in out:
            out[family.name].samples.extend(family.samples)
        else:
            out[family.name] = family
    return list(out.values())


def _epoch(stamp: str | None) -> float | None:
    return None if stamp is None else datetime.fromisoformat(stamp).timestamp()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def table_families(db: Database, now: datetime) -> list[Metric]:
    """Gauges (and table-kept counters) read from the store at scrape time: the deployment's,
    then each live company's (on a handle scoped to it), merged into one family per name."""
    states = await live_company_states(db)
    per_company: list[Metric] = [gauge(
        "company_needs_attention", "1 when Alegra refuses the company's credentials (401, 402 "
        "or 403): its receipts wait.", {(): float(state == NEEDS_ATTENTION)}, company=company)
        for company, state in states.items()]
    for company in states:
        per_company += await company_families(db.for_company(company), now)
    deliveries = counter("webhook_deliveries", "Webhook deliveries stored.",
                         {(): await ops_queries.deliveries_stored(db)})
    return [*merged(per_company), deliveries, *await _notification_families(db),
            *await _worker_gauges(db, now)]


async def _notification_families(db: Database) -> list[Metric]:
    """Partners' notifications: endpoints by state (a disabled one needs its partner), and the
    deliveries pending with the oldest one's age (the deployment's, no company label)."""
    endpoints = await endpoint_counts(db)
    pending = await pending_figures(db)
    return [
        gauge("partner_webhook_endpoints", "Partners' notification endpoints by state "
              "(disabled: 410 Gone, or 3 days of failed attempts).",
              {(state,): float(n) for state, n in endpoints.items()}, ("state",)),
        gauge("partner_webhook_deliveries_pending", "Notifications waiting to be delivered.",
              {(): float(pending["pending"])}),
        gauge("partner_webhook_oldest_pending_age_seconds", "Age of the oldest notification "
              "not delivered yet.", {(): float(pending["oldest_pending_age_s"])}),
    ]


async def company_families(db: Database, now: datetime) -> list[Metric]:
    """One company's gauges and table-kept counters, labelled with `db.company`."""
    company = db.company
    receipts = await ops_queries.count_in_states(db, "receipts", "status", OPEN_RECEIPTS)
    inbox = await ops_queries.count_in_states(db, "inbox", "state", OPEN_EVENTS)
    oldest = _epoch(await ops_queries.oldest_pending_event_at(db))
    lags = await ops_queries.recent_webhook_lags(db)
    return [
        gauge("receipts", "Receipts not completed: queued, processing or failed, by status "
              "(completed and duplicate ones: alegra_sync_receipts_processed_total).",
              {(k,): v for k, v in receipts.items()}, ("status",), company),
        gauge("inbox_events", "Inbox rows (webhook deliveries) waiting or given up on: received, "
              "failed or parked (settled ones: alegra_sync_inbox_settled_total).",
              {(k,): v for k, v in inbox.items()}, ("state",), company),
        gauge("inbox_oldest_pending_age_seconds",
              "Age of the oldest delivery waiting to be applied (0: none waiting).",
              {(): 0.0 if oldest is None else max(0.0, now.timestamp() - oldest)},
              company=company),
        gauge("webhook_cache_lag_seconds", "Seconds from a delivery's arrival to its change in "
              "the cache, over the latest 500 deliveries applied.",
              {(str(q),): _quantile(lags, q) for q in LAG_QUANTILES} if lags else {},
              ("quantile",), company),
        *await _subscription_families(db),
        *await _drift_families(db),
        *await _job_families(db),
        *await _cache_families(db),
    ]


async def _worker_gauges(db: Database, now: datetime) -> list[Metric]:
    worker = await worker_summary(db, now)
    budget = worker["budget"] or {}
    age = worker["heartbeat_age_s"]
    numbers = {k: float(budget[k]) for k in ("limit", "remaining", "in_flight", "reset_in_s")
               if isinstance(budget.get(k), int | float)}
    waiting = budget.get("waiting")
    waiting = waiting if isinstance(waiting, dict) else {}
    return [
        gauge("worker_heartbeat_age_seconds", "Seconds since the worker's last heartbeat.",
              {} if age is None else {(): max(0.0, age)}),
        *(gauge(f"rate_budget_{k}", f"Alegra rate budget `{k}` at the last heartbeat.", {(): v})
          for k, v in numbers.items()),
        gauge("rate_budget_waiting", "Requests waiting for the rate budget, by priority.",
              {(str(p),): float(n) for p, n in waiting.items()}, ("priority",)),
    ]


async def _subscription_families(db: Database) -> list[Metric]:
    rows = await ops_queries.subscription_rows(db)
    recreated = {(r["event"],): float(r["recreated_count"]) for r in rows}
    present = {(r["event"],): float(r["present"]) for r in rows}
    return [gauge("subscription_present", "1 when Alegra has the webhook subscription.",
                  present, ("event",), db.company),
            counter("subscription_recreated", "Webhook subscriptions found missing in Alegra "
                    "and re-created.", recreated, ("event",), db.company)]


async def _drift_families(db: Database) -> list[Metric]:
    totals = await ops_queries.drift_totals(db)
    last = await jobs.last_drift_report(db) or {}
    latest = {(k,): float(last[k]) for k in totals if isinstance(last.get(k), int)}
    return [counter("drift_found", "Drift found by complete reconciliations.",
                    {(k,): float(v) for k, v in totals.items()}, ("kind",), db.company),
            gauge("drift_last", "Drift in the latest reconciliation report, by kind.",
                  latest, ("kind",), db.company)]


async def _job_families(db: Database) -> list[Metric]:
    states = await jobs.job_states(db)
    successes = await ops_queries.last_successes(db)
    duration = {(j.name,): j.last_duration_s for j in states if j.last_duration_s is not None}
    outcome = {(j.name, str(j.last_outcome)): 1.0 for j in states if j.last_outcome}
    success = {(name,): _epoch(at) or 0.0 for name, at in successes.items()}
    next_run = {(j.name,): j.next_run_at.timestamp() for j in states if j.next_run_at}
    company = db.company
    return [
        gauge("job_last_duration_seconds", "Duration of each job's latest run.", duration,
              ("job",), company),
        gauge("job_last_outcome", "1 for the outcome of each job's latest run.", outcome,
              ("job", "outcome"), company),
        gauge("job_last_success_timestamp_seconds", "When each job last succeeded.", success,
              ("job",), company),
        gauge("job_next_run_timestamp_seconds", "When each job runs next.", next_run, ("job",),
              company),
    ]


async def _cache_families(db: Database) -> list[Metric]:
    counts = await ops_queries.cache_counts(db)
    values = {(table, state): float(n) for table, by in counts.items() for state, n in by.items()}
    return [gauge("cache_rows", "Cached Alegra rows, live or deleted.", values,
                  ("table", "state"), db.company)]


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render(families: list[Metric]) -> bytes:
    """The text exposition of these families (pure)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


async def scrape(db: Database, now: datetime) -> bytes:
    """The whole exposition, computed now."""
    rows = await ops_queries.metric_counter_rows(db)
    return render(worker_families(rows) + await table_families(db, now))


class Scrapes:
    """The exposition, computed at most once per `max_age_s` whoever asks: scrapers arriving
    meanwhile get the same text (those arriving during a computation wait for it)."""

    def __init__(self, db: Database, *, max_age_s: float = MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.max_age_s = max_age_s
        self.clock = clock
        self.computed = 0  # how many times the text was computed (for tests and the bench)
        self._text = b""
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    async def text(self) -> bytes:
        async with self._lock:
            if self.clock() - self._at >= self.max_age_s:
                self._text = await scrape(self.db, datetime.now(UTC))
                self._at = self.clock()
                self.computed += 1
            return self._text


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """The metrics' own read-only connection (the main one has applied the migrations)."""
    db = await Database.open(_read_only(app.state.settings.database_target), migrate=False)
    if db.engine == "sqlite":
        await db.conn.execute("PRAGMA query_only = ON")
    app.state.scrapes = Scrapes(db)
    try:
        yield
    finally:
        await db.close()


def _read_only(target: Path | str) -> Path | str:
    """A PostgreSQL URL whose sessions start every transaction read-only (SQLite's file is made
    read-only by `PRAGMA query_only` once opened)."""
    if isinstance(target, Path):
        return target
    joiner = "&" if "?" in target else "?"
    return f"{target}{joiner}options=-c%20default_transaction_read_only%3Don"


async def metrics(request: Request) -> Response:
    """GET /metrics."""
    scrapes: Scrapes = request.app.state.scrapes
    return Response(await scrapes.text(), media_type=CONTENT_TYPE_PLAIN_0_0_4)


routes: list[BaseRoute] = [ApiRoute("/metrics", metrics, "GET", METRICS)]
