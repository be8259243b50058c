"""One claimed receipt through the flow: duplicate check → supplier → accounts → taxes → bill →
attachment, each step recorded before its write is sent, so a retry or a restart resumes
after the last `done` step. Retryable errors reschedule the receipt with backoff for 24 h;
the rest fail it. Design: docs/receipts.md ("Running: the step log").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sync import metrics
from sync.alegra.errors import AlegraError, AuthFailed, RateLimited, Retryable, Stopping
from sync.alegra.payloads import BillLine
from sync.backoff import Backoff
from sync.flow import duplicates, lease
from sync.flow.attach import attach
from sync.flow.context import FlowEnv, FlowFailed, StepResult, StepScope
from sync.flow.create_bill import create_bill
from sync.flow.ensure_account import ensure_account
from sync.flow.ensure_supplier import ensure_supplier
from sync.flow.taxes import resolve_taxes
from sync.logs import get_logger
from sync.names import name_key
from sync.receipt_model import Receipt
from sync.receipt_records import StepRecord
from sync.states import ReceiptStatus
from sync.store import receipt_work
from sync.store.db import DatabaseUnavailable
from sync.store.receipt_work import Claimed, LeaseLost, StepLog

RETRY_WINDOW_S = 24 * 3600.0
NOT_STEPS = frozenset({"receipt", "taxes"})  # where an error is kept on the receipt only
BACKOFF = Backoff(base_s=1.0, cap_s=15 * 60.0, jitter=(0.8, 1.2))


class Stopped(Exception):
    """The worker is stopping, or another worker took the lease: hand the receipt back."""


@dataclass
class Lease:
    owner: str
    lost: bool = False


def retry_delay(attempts: int, reset_after: float | None = None) -> float:
    """Seconds before the next attempt after `attempts` tries (pure but for the jitter)."""
    return max(BACKOFF.delay(attempts), reset_after or 0.0)


async def run_receipt(env: FlowEnv, claimed: Claimed, owner: str) -> ReceiptStatus:
    """Work one claimed receipt; returns its state afterwards (completed, duplicate, failed,
    queued)."""
    held = Lease(owner)
    keeper = asyncio.create_task(_keep_lease(env, claimed.receipt_id, held))
    try:
        outcome = await _attempt(env, claimed, held)
    except DatabaseUnavailable as exc:  # nothing can be written: the claim runs out and the
        # receipt resumes from its recorded steps (a write whose answer was lost is looked up)
        get_logger(receipt_id=claimed.receipt_id).warning(
            "receipt.database_unavailable", error=str(exc)[:300])
        outcome = ReceiptStatus.QUEUED
    finally:
        keeper.cancel()
    metrics.count_receipt(outcome, env.db.company)
    return outcome


async def _keep_lease(env: FlowEnv, receipt_id: str, held: Lease) -> None:
    """Renew the lease while the receipt runs; mark it lost when another worker holds it."""
    while True:
        await asyncio.sleep(lease.RENEW_EVERY_S)
        try:
            ours = await receipt_work.renew_lease(
                env.db, receipt_id, owner=held.owner, lease_s=lease.LEASE_S
            )
        except DatabaseUnavailable as exc:  # gone for now (the worker logs it): next renewal
            get_logger(receipt_id=receipt_id).warning(
                "receipt.lease_renewal_failed", error=str(exc)[:300])
            continue
        except Exception:  # the store hiccupped: try again at the next renewal
            get_logger(receipt_id=receipt_id).exception("receipt.lease_renewal_failed")
            continue
        if not ours:
            held.lost = True
            return


async def _attempt(env: FlowEnv, claimed: Claimed, held: Lease) -> ReceiptStatus:
    log = get_logger(receipt_id=claimed.receipt_id)
    flow = _Flow(env, StepLog(env.db, claimed.receipt_id, held.owner), held, log)
    try:
        receipt = Receipt.from_payload(claimed.payload)
        if claimed.attempts > 1:  # a first attempt has no steps recorded yet
            flow.steps = await receipt_work.load_steps(env.db, claimed.receipt_id)
        await flow.run(receipt)
    except duplicates.Duplicate:  # settled as `duplicate` by the check; nothing sent to Alegra
        return ReceiptStatus.DUPLICATE
    except (Stopped, Stopping, LeaseLost):
        await flow.log.release()
        log.info("receipt.released", step=flow.current)
        return ReceiptStatus.QUEUED
    except (Retryable, AuthFailed) as exc:  # refused credentials: the company needs attention
        record = {**exc.as_record(), "retryable": True}  # (sync/fleet.py); its receipts wait
        return await _retry_later(flow, claimed, record, exc=exc)
    except (AlegraError, FlowFailed) as exc:
        return await _fail(flow, exc.as_record())
    except Exception as exc:  # a bug or corrupt row: kept visible, retried, bounded like the rest
        if isinstance(exc, DatabaseUnavailable):
            raise  # nothing can be recorded now (run_receipt)
        log.exception("receipt.internal_error", step=flow.current)
        record = {"kind": "InternalError", "status": None, "code": "internal",
                  "message": f"{type(exc).__name__} in step {flow.current}", "retryable": True}
        return await _retry_later(flow, claimed, record, exc=None)
    log.info("receipt.completed", bill_id=flow.bill_id)
    return ReceiptStatus.COMPLETED


async def _retry_later(
    flow: _Flow, claimed: Claimed, record: dict[str, Any], *, exc: AlegraError | None
) -> ReceiptStatus:
    error = {"step": flow.current, **record, "attempts": claimed.attempts}
    if _age_s(claimed.window_start) > RETRY_WINDOW_S:
        error["gave_up_after_s"] = RETRY_WINDOW_S
        return await _fail(flow, error)
    reset_after = exc.reset_after if isinstance(exc, RateLimited) else None
    delay = retry_delay(claimed.attempts, reset_after)
    await flow.log.reschedule(error, delay)
    flow.logger.warning(
        "receipt.rescheduled", step=flow.current, delay_s=round(delay, 2), error=record
    )
    return ReceiptStatus.QUEUED


async def _fail(flow: _Flow, record: dict[str, Any]) -> ReceiptStatus:
    error = {"step": flow.current, **record}
    on_step = flow.current if flow.current not in NOT_STEPS else None
    await flow.log.fail(error, on_step)
    flow.logger.error("receipt.failed", error=error)
    return ReceiptStatus.FAILED


def _age_s(since: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(since)).total_seconds()


Runner = Callable[[StepScope], Awaitable[StepResult]]


class _Flow:
    """The steps of one receipt, in order; `current` names the step being worked."""

    def __init__(self, env: FlowEnv, log: StepLog, held: Lease, logger: Any) -> None:
        self.env, self.log, self.held, self.logger = env, log, held, logger
        self.receipt_id = log.receipt_id
        self.steps: dict[str, StepRecord] = {}
        self.current = "receipt"
        self.bill_id: str | None = None
        self.fresh: set[str] = set()  # steps done in this attempt (not skipped as done before)

    async def run(self, receipt: Receipt) -> None:
        """The steps, after the duplicate check and under its per-NCF lock (flow/duplicates.py);
        the receipt is completed inside it, so a twin receipt waiting on the lock sees the bill."""
        self.current = duplicates.STEP
        guard = duplicates.guard(self.env, receipt, self.receipt_id, self.held.owner, self.steps)
        async with guard:
            await self._steps(receipt)
            if not await self.log.complete():
                raise Stopped("the lease was taken over")

    async def _steps(self, receipt: Receipt) -> None:
        env = self.env
        supplier = await self.step("supplier", lambda s: ensure_supplier(env, receipt.supplier, s))
        accounts = await self._accounts(receipt)
        self.current = "taxes"
        rates = [line.tax_rate for line in receipt.lines if line.tax_rate is not None]
        tax_ids = await resolve_taxes(env, rates)
        lines = bill_lines(receipt, accounts, tax_ids)
        provider_id = _known(supplier)
        bill = await self.step(
            "bill", lambda s: create_bill(env, s, receipt, provider_id=provider_id, lines=lines)
        )
        self.bill_id = _known(bill)
        self._billed(bill)
        if receipt.attachment is not None:
            await self.step("attachment", lambda s: attach(env, self.receipt_id, _known(bill), s))

    async def _accounts(self, receipt: Receipt) -> dict[str, str]:
        names = {name_key(name): name for name in receipt.categories}
        found: dict[str, str] = {}
        for key, name in names.items():
            result = await self.step(f"account:{key}", _account_runner(self.env, name))
            found[key] = _known(result)
        return found

    def _billed(self, bill: StepResult) -> None:
        bill_id = _known(bill)
        self.log.bill(bill_id)
        if "bill" in self.fresh:
            self.logger.info("receipt.billed", bill_id=bill_id, outcome=bill.outcome,
                             **bill.detail)

    async def step(self, name: str, run: Runner) -> StepResult:
        """Run one step unless it is already done; its result is logged (StepLog) on return."""
        prior = self.steps.get(name)
        if prior is not None and prior.done:
            return StepResult(prior.outcome or "found", prior.alegra_id, prior.detail)
        if self.env.stopping.is_set() or self.held.lost:
            raise Stopped(name)
        self.current = name
        started = time.perf_counter()
        try:
            result = await run(StepScope(self.log, name, prior))
        except Exception:
            metrics.observe_step(name, "error", time.perf_counter() - started)
            raise
        metrics.observe_step(name, result.outcome, time.perf_counter() - started)
        self.log.done(name, outcome=result.outcome, alegra_id=result.alegra_id,
                      detail=result.detail)
        self.fresh.add(name)
        self.logger.info("receipt.step_done", step=name, outcome=result.outcome,
                         alegra_id=result.alegra_id)
        return result


def bill_lines(
    receipt: Receipt, accounts: dict[str, str], tax_ids: dict[Decimal, str]
) -> list[BillLine]:
    """The receipt's lines resolved to account and tax ids (pure)."""
    return [
        BillLine(
            account_id=accounts[name_key(line.category)],
            tax_id=None if line.tax_rate is None else tax_ids[line.tax_rate],
            price=line.amount,
            quantity=line.quantity,
            description=line.description,
        )
        for line in receipt.lines
    ]


def _account_runner(env: FlowEnv, name: str) -> Runner:
    async def run(scope: StepScope) -> StepResult:
        return await ensure_account(env, name, scope)

    return run


def _known(result: StepResult) -> str:
    if result.alegra_id is None:
        raise FlowFailed("missing_id", f"a {result.outcome} step recorded no Alegra id")
    return result.alegra_id
