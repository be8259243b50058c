"""`alegra-sync receipts show ID [--json] | retry ID`: why a receipt is where it is, and the fix.

`show` prints the receipt as `GET /v1/receipts/{id}` has it (`sync.receipt_resource`): its steps,
with the Alegra ids, Alegra's status, code and message on failure, and what to do about it
(`sync.receipt_advice`). `retry` hands a failed receipt back to the worker, as
`POST /v1/receipts/{id}/retry` does: it resumes from its recorded steps. Both read the database
directly; no web process is needed. A receipt id names its company (ids are unique across
companies), so neither needs one.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from datetime import UTC, datetime
from typing import Any

from sync.commands.store import run_on_store
from sync.commands.terminal import Paint, colour_wanted, since
from sync.receipt_advice import advice
from sync.receipt_resource import receipt_resource
from sync.settings import Settings
from sync.states import ReceiptStatus, StepState
from sync.store import ops_queries
from sync.store.db import Database
from sync.store.partners import list_partners
from sync.store.receipts import get_receipt_any_company, get_steps

WIDTH = 100  # advice is wrapped to this many columns
_STATUS_STYLE = {ReceiptStatus.COMPLETED: "green", ReceiptStatus.DUPLICATE: "green",
                 ReceiptStatus.FAILED: "red"}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("receipts", help="look at a receipt, retry a failed one")
    actions = parser.add_subparsers(dest="receipts_command", required=True)
    show = actions.add_parser("show", help="a receipt's steps, its error and what to do")
    show.add_argument("receipt_id")
    show.add_argument("--json", action="store_true", help="as GET /v1/receipts/{id} shows it")
    show.set_defaults(handler=show_command)
    retry = actions.add_parser("retry", help="hand a failed receipt back to the worker")
    retry.add_argument("receipt_id")
    retry.set_defaults(handler=retry_command)


def show_command(args: argparse.Namespace) -> int:
    async def show(_: Settings, db: Database) -> int:
        row = await get_receipt_any_company(db, args.receipt_id)
        if row is None:
            print(f"alegra-sync: no receipt {args.receipt_id}", file=sys.stderr)
            return 1
        steps = await get_steps(db.for_company(row.company_id), args.receipt_id)
        resource = {**receipt_resource(row, steps),
                    "partner_id": row.partner_id}
        if args.json:
            print(json.dumps(resource, indent=2, ensure_ascii=False))
            return 0
        names = {p.id: p.name for p in await list_partners(db)}
        paint = Paint(colour_wanted(sys.stdout))
        print(format_receipt(resource, names, datetime.now(UTC), paint))
        return 0

    return run_on_store(show)


def retry_command(args: argparse.Namespace) -> int:
    async def retry(_: Settings, db: Database) -> int:
        row = await get_receipt_any_company(db, args.receipt_id)
        if row is not None and await ops_queries.retry_failed_receipt(
            db.for_company(row.company_id), args.receipt_id
        ):
            print(f"Receipt {args.receipt_id} is queued again: the worker resumes it from its "
                  f"recorded steps. Follow it with: alegra-sync receipts show {args.receipt_id}")
            return 0
        state = "no such receipt" if row is None else f"it is {row.status}, not failed"
        print(f"alegra-sync: cannot retry {args.receipt_id}: {state}", file=sys.stderr)
        return 1

    return run_on_store(retry)


def format_receipt(
    resource: dict[str, Any], partners: dict[str, str], now: datetime, paint: Paint
) -> str:
    """A receipt as an operator reads it in a terminal (pure)."""
    status = resource["status"]
    lines = [f"Receipt {resource['id']}: " + paint(status.upper(), _STATUS_STYLE.get(status,
                                                                                      "yellow"))]
    lines += [_field(name, value) for name, value in _facts(resource, partners, now)]
    lines += _steps(resource["steps"], paint)
    if resource["error"]:
        lines += _error(resource["error"], paint)
    todo = advice(resource)
    if todo:
        lines += [_field("what to do" if n == 0 else "", paint(part, "bold"))
                  for n, part in enumerate(textwrap.wrap(todo, WIDTH - 14, break_on_hyphens=False))]
    return "\n".join(lines)


def _field(name: str, value: str) -> str:
    return f"  {name:<11} {value}"


def _facts(
    resource: dict[str, Any], partners: dict[str, str], now: datetime
) -> list[tuple[str, str]]:
    supplier = resource["supplier"]
    tax_id = (f" ({supplier['tax_id_kind']} {supplier['tax_id']})"
              if supplier.get("tax_id") else " (no tax id)")
    partner_id = resource.get("partner_id")
    facts = [
        ("partner", f"{partners.get(partner_id or '', '?')} ({partner_id})"),
        ("supplier", f"{supplier['name']}{tax_id}"),
        ("document", f"NCF {resource['ncf'] or '—'}, dated {resource['date']}, total "
                     f"{resource['total']} {resource['currency']}"),
        ("received", f"{resource['created_at']} ({since(resource['created_at'], now)}),"
                     f" attempts {resource['attempts']}"),
    ]
    waiting = resource["status"] in (ReceiptStatus.QUEUED, ReceiptStatus.PROCESSING)
    if waiting and resource["next_attempt_at"]:
        facts.append(("next try", since(resource["next_attempt_at"], now)))
    alegra = resource["alegra"]
    ids = [f"contact {alegra['contact_id']}" if alegra["contact_id"] else "",
           f"bill {alegra['bill_id']}" if alegra["bill_id"] else "",
           *(f"account {v} ({k})" for k, v in alegra["account_ids"].items())]
    facts.append(("in Alegra", ", ".join(i for i in ids if i) or "nothing yet"))
    if resource["flags"]:
        facts.append(("flags", ", ".join(resource["flags"])))
    return facts


def _steps(steps: list[dict[str, Any]], paint: Paint) -> list[str]:
    if not steps:
        return [_field("steps", "none started")]
    lines = []
    for n, step in enumerate(steps):
        style = {StepState.DONE: "green", StepState.FAILED: "red"}.get(step["state"], "yellow")
        outcome = f" ({step['outcome']})" if step["outcome"] else ""
        alegra_id = f" → {step['alegra_id']}" if step["alegra_id"] else ""
        text = f"{step['step']}: {paint(step['state'], style)}{outcome}{alegra_id}"
        lines.append(_field("steps" if n == 0 else "", text))
    return lines


def _error(error: dict[str, Any], paint: Paint) -> list[str]:
    where = f"in step {error['step']}: " if error.get("step") else ""
    answer = (f"Alegra answered HTTP {error['status']}" if error.get("status") is not None
              else "no HTTP answer from Alegra" if error.get("method") else "")
    code = f"code {error['code']}" if error.get("code") is not None else ""
    head = ", ".join(part for part in (answer, code) if part)
    lines = [_field("error", paint(f"{where}{error.get('kind', 'error')}"
                                   f"{' — ' + head if head else ''}", "red")),
             _field("", f"message: {error.get('message', '')}")]
    if error.get("method"):
        lines.append(_field("", f"request: {error['method']} {error.get('path', '')}"))
    if error.get("retryable") and not error.get("gave_up_after_s"):
        lines.append(_field("", "retryable: the worker tries again on its own"))
    if error.get("gave_up_after_s"):
        lines.append(_field("", f"gave up after {error['gave_up_after_s'] / 3600:.0f} h of "
                                f"retries ({error.get('attempts', '?')} attempts)"))
    return lines
