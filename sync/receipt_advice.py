"""What an operator does about a receipt, from its status and its stored error (pure).

`advice(resource)` takes the receipt as `GET /v1/receipts/{id}` shows it (`receipt_resource`)
and says in one or two sentences what happens next or what to do. `alegra-sync receipts show`
prints it; the README's receipt status and error tables say the same in more words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.states import ReceiptStatus, StepState

RETRY = "alegra-sync receipts retry {id}"

# Our own codes of a failed receipt (FlowFailed, NcfInFlight, the worker's internal error).
_BY_CODE = {
    "unknown_tax_rate": "Add an active ITBIS tax at that rate in Alegra; once the next chart poll"
                        " (ACCOUNTS_POLL_S) has cached it, retry: " + RETRY,
    "account_inactive": "Activate the expense account in Alegra; after the next chart poll"
                        " (ACCOUNTS_POLL_S), retry: " + RETRY,
    "account_not_postable": "The category names a summary account and bills post to leaf"
                            " accounts: submit the receipt again with a leaf account's name as"
                            " its category (a new Idempotency-Key), or change the chart in"
                            " Alegra and retry after the next poll: " + RETRY,
    "no_expense_parent": "Set EXPENSE_PARENT_ACCOUNT_ID to the Alegra id of the account new"
                         " expense accounts go under (GET /v1/cache/accounts?view=tree lists"
                         " them), restart the worker, then retry: " + RETRY,
    "identification_type_refused": "Alegra refused the identification type code sent for the new"
                                   " supplier (the built-in guess): run `alegra-sync doctor"
                                   " --company <company>`, which learns the company's own codes"
                                   " from its contacts (type one supplier with its RNC or cédula"
                                   " in Alegra's web app first if it has none), then retry: "
                                   + RETRY,
    "attachment_missing": "The bill exists but the stored file is gone: attach the receipt's"
                          " file to the bill in Alegra by hand.",
    "missing_id": "Alegra's answer carried no id for a step (see steps): report it with this"
                  " receipt id; a retry resumes after the last completed step: " + RETRY,
    "internal": "An unexpected error in the service: the worker's log has"
                " `receipt.internal_error` with this receipt id. Retry once it is fixed: " + RETRY,
    "ncf_held_by_failed_receipt": "Retry the receipt holding this NCF first ({holder}: it looks"
                                  " its bill up before sending another), then this one: "
                                  + RETRY,
    "ncf_in_flight": "Another receipt ({holder}) holds this supplier's NCF and never settled:"
                     " look at it first (alegra-sync receipts show {holder}).",
}

_BY_KIND = {
    "AuthFailed": "Alegra refused the account (401 credentials, 402 suspended or plan limit, 403"
                  " permissions): fix ALEGRA_EMAIL / ALEGRA_TOKEN or the account, restart, then"
                  " retry: " + RETRY,
    "NotFound": "Alegra no longer has a record this step used (deleted meanwhile?); the next"
                " reconciliation forgets it from the cache. Then retry: " + RETRY,
    "Rejected": "Alegra refused the {step} step with the message above. Fix what it names in Alegra"
                " and retry (" + RETRY + "), or submit a corrected receipt with a new"
                " Idempotency-Key.",
}

_WAITING = {
    ReceiptStatus.QUEUED: "Waiting for the worker.",
    ReceiptStatus.PROCESSING: "The worker is on it now.",
}


def advice(resource: Mapping[str, Any]) -> str | None:
    """What happens next, or what to do, for this receipt (None: nothing to do)."""
    status = resource["status"]
    error = resource.get("error") or {}
    if status == ReceiptStatus.COMPLETED:
        return None
    if status == ReceiptStatus.DUPLICATE:
        return _duplicate(resource)
    if status in _WAITING:
        return _waiting(resource, error) if error else _WAITING[status]
    return _failed(resource, error)


def _duplicate(resource: Mapping[str, Any]) -> str:
    bill = (resource.get("alegra") or {}).get("bill_id")
    return (f"Alegra already has bill {bill} for this supplier's NCF: nothing was created. If"
            " that bill is wrong, void it in Alegra and submit the receipt again.")


def _waiting(resource: Mapping[str, Any], error: Mapping[str, Any]) -> str:
    when = resource.get("next_attempt_at") or "soon"
    return (f"Alegra could not be used on the last attempt ({_what(error)}); the worker tries"
            f" again on its own at {when}, for 24 hours from arrival.")


def _failed(resource: Mapping[str, Any], error: Mapping[str, Any]) -> str:
    fields = {"id": resource["id"], "holder": error.get("holder", "?"),
              "step": error.get("step") or "request"}
    if _bill_unknown(resource):
        return ("The bill was sent and its outcome never learned: a bill may exist in Alegra."
                " Retry (it looks the bill up first), never submit the receipt again: "
                + RETRY).format(**fields)
    text = _BY_CODE.get(str(error.get("code"))) or _BY_KIND.get(str(error.get("kind")))
    if text is None and error.get("gave_up_after_s"):
        text = "Alegra stayed unreachable for 24 hours. Once it answers again, retry: " + RETRY
    return (text or "Retry: " + RETRY).format(**fields)


def _bill_unknown(resource: Mapping[str, Any]) -> bool:
    return any(step["step"] == "bill" and step["state"] == StepState.ATTEMPTING
               for step in resource.get("steps") or [])


def _what(error: Mapping[str, Any]) -> str:
    status = error.get("status")
    return f"{error.get('kind')} {status}" if status else str(error.get("kind") or "error")
