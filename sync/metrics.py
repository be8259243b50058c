"""Prometheus metrics the worker counts, and how they reach the web process's `/metrics`.

Only the web process serves `/metrics`, but the counting happens in the worker. So the worker
counts in memory (`Recorder`, module-level like prometheus-client's own registry) and, on each
heartbeat, `flush` adds what it counted to the `metric_counters` table. Stored values only grow,
across worker restarts too, which is what a Prometheus counter promises; a kill -9 loses at most
one heartbeat's increments. The web renders those rows with the scrape-time gauges it reads from
the tables (receiver/prometheus.py). Histograms are stored as their cumulative series.

Label values are bounded by construction (step kinds, endpoint templates, status codes), never ids,
names or anything secret. The counters of one company's work carry its id as label `company`
(a company id is an operator-chosen slug, one per Alegra account; left out, it is `default`);
the latency histograms stay deployment-wide so their series do not multiply by the companies.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Literal

from sync.store import ops_queries
from sync.store.db import DEFAULT_COMPANY, Database, utcnow

COMPANY = "company"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True)
class Family:
    """One metric family the worker records: its kind, help text and label names."""

    name: str
    kind: Literal["counter", "histogram"]
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


FAMILIES = {
    f.name: f
    for f in (
        Family("alegra_sync_receipts_processed", "counter",
               "Receipt attempts by company and outcome (completed, failed, queued again).",
               (COMPANY, "outcome")),
        Family("alegra_sync_receipt_step_seconds", "histogram",
               "Duration of one receipt flow step (supplier, account, bill, attachment).",
               ("step", "outcome"), LATENCY_BUCKETS),
        Family("alegra_sync_alegra_requests", "counter",
               "Requests sent to Alegra, by company, method, endpoint template and HTTP status"
               " (status 'none' when no answer came).", (COMPANY, "method", "endpoint", "status")),
        Family("alegra_sync_alegra_request_seconds", "histogram",
               "Alegra request latency by method and endpoint template.",
               ("method", "endpoint"), LATENCY_BUCKETS),
        Family("alegra_sync_alegra_rate_limited", "counter",
               "Alegra answers with HTTP 429 (rate limit exceeded), by company and endpoint"
               " template.", (COMPANY, "endpoint")),
        Family("alegra_sync_receipts_flagged", "counter",
               "Receipts flagged by the duplicate check (likely_duplicate: same supplier, date"
               " and total as a known bill or receipt, without an NCF), by company and flag.",
               (COMPANY, "flag")),
        Family("alegra_sync_inbox_settled", "counter",
               "Webhook deliveries settled, by company and state: applied, or skipped"
               " (unusable, or an event not used).", (COMPANY, "state")),
        Family("alegra_sync_pruned", "counter",
               "Rows the retention job deleted, by kind (inbox: settled deliveries;"
               " attachment: uploaded receipt files).", ("kind",)),
    )
}

_ID_SEGMENT = re.compile(r"^(?!v\d+$)(?=.*\d)[\w-]+$")  # holds a digit, is not `v1`


def endpoint_label(path: str) -> str:
    """A path template as a label: a segment holding a digit becomes `{id}` (bounds cardinality)."""
    path = path.split("?", 1)[0]
    parts = ["{id}" if _ID_SEGMENT.match(p) and not p.startswith("{") else p
             for p in path.split("/")]
    return "/".join(parts) or "/"


def step_label(step: str) -> str:
    """`account:office supplies` → `account`: one series per step kind, never per name."""
    return step.split(":", 1)[0]


def labels_key(labels: dict[str, str]) -> str:
    """The canonical form a label set is stored under."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


class Recorder:
    """Increments gathered since the last flush, keyed by (series name, canonical labels)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], float] = {}

    def _add(self, name: str, labels: dict[str, str], amount: float) -> None:
        key = (name, labels_key(labels))
        self._pending[key] = self._pending.get(key, 0.0) + amount

    def inc(self, family: str, amount: float = 1.0, **labels: str) -> None:
        """Add to a counter. Raises ValueError for an unknown family or wrong label names
        (`company` may be left out: `default`)."""
        _, labels = self._check(family, "counter", labels)
        self._add(f"{family}_total", labels, amount)

    def observe(self, family: str, value: float, **labels: str) -> None:
        """Record one observation in a histogram (cumulative buckets and sum)."""
        spec, labels = self._check(family, "histogram", labels)
        for bound in (*spec.buckets, math.inf):
            if value <= bound:
                self._add(f"{family}_bucket", {**labels, "le": _bound(bound)}, 1.0)
        self._add(f"{family}_sum", labels, value)  # the count is the +Inf bucket

    def take(self) -> dict[tuple[str, str], float]:
        """Hand over everything pending and start afresh."""
        taken, self._pending = self._pending, {}
        return taken

    def give_back(self, taken: dict[tuple[str, str], float]) -> None:
        """Put back increments a failed flush could not store, so none is lost."""
        for (name, labels), amount in taken.items():
            self._pending[(name, labels)] = self._pending.get((name, labels), 0.0) + amount

    @staticmethod
    def _check(family: str, kind: str, labels: dict[str, str]) -> tuple[Family, dict[str, str]]:
        spec = FAMILIES.get(family)
        if spec is not None and COMPANY in spec.labels:
            labels = {COMPANY: DEFAULT_COMPANY, **labels}
        if spec is None or spec.kind != kind or set(labels) != set(spec.labels):
            raise ValueError(f"{family}: not a {kind} with labels {sorted(labels)}")
        return spec, labels


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


RECORDER = Recorder()


def count_receipt(outcome: str, company: str = DEFAULT_COMPANY) -> None:
    """An attempt at a receipt ended in `outcome`: completed | failed | queued (rescheduled
    after a retryable error, or handed back at shutdown) — what `run_receipt` returns."""
    RECORDER.inc("alegra_sync_receipts_processed", outcome=outcome, company=company)


def count_flag(flag: str, company: str = DEFAULT_COMPANY) -> None:
    """A receipt got `flag` (e.g. likely_duplicate) for the first time."""
    RECORDER.inc("alegra_sync_receipts_flagged", flag=flag, company=company)


def count_settled(state: str, rows: int, company: str = DEFAULT_COMPANY) -> None:
    """`rows` inbox deliveries of `company` ended `state` (applied | skipped)."""
    if rows:
        RECORDER.inc("alegra_sync_inbox_settled", float(rows), state=state, company=company)


def count_pruned(kind: str, rows: int) -> None:
    """The retention job deleted `rows` of `kind` (inbox | attachment | notification)."""
    if rows:
        RECORDER.inc("alegra_sync_pruned", float(rows), kind=kind)


def observe_step(step: str, outcome: str, seconds: float) -> None:
    """One flow step took `seconds` and ended in `outcome` (found | created | updated | failed…)."""
    RECORDER.observe(
        "alegra_sync_receipt_step_seconds", seconds, step=step_label(step), outcome=outcome
    )


def observe_alegra_call(method: str, path: str, status: int | None, seconds: float,
                        company: str = DEFAULT_COMPANY) -> None:
    """The AlegraClient's `on_response` callback: one request and how it ended (a company's
    client: `functools.partial(observe_alegra_call, company=...)`)."""
    endpoint = endpoint_label(path)
    RECORDER.inc("alegra_sync_alegra_requests", method=method.upper(), endpoint=endpoint,
                 status="none" if status is None else str(status), company=company)
    RECORDER.observe("alegra_sync_alegra_request_seconds", seconds,
                     method=method.upper(), endpoint=endpoint)
    if status == 429:
        RECORDER.inc("alegra_sync_alegra_rate_limited", endpoint=endpoint, company=company)


async def flush(db: Database, recorder: Recorder = RECORDER) -> int:
    """Add the pending increments to `metric_counters`; returns how many series changed."""
    taken = recorder.take()
    if not taken:
        return 0
    try:
        await ops_queries.add_to_metric_counters(db, taken, utcnow())
    except BaseException:
        recorder.give_back(taken)
        raise
    return len(taken)
