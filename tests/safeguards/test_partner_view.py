"""Two partners, one fiscal document: each reads only its own receipts' and bills' ids.

The real flow against the simulator on one SQLite file; partner `acme` (the flow's) sends first,
partner `beta` sends the twin. What beta reads of its receipt (`partner_resource`, what
GET /v1/receipts/{id} answers) never names acme's receipt or the bill acme's receipt made; an
admin reads everything; a partner's own other receipt and a bill typed in Alegra are named.
"""

from __future__ import annotations

from typing import Any

import pytest

from receiver.receipt_view import partner_resource
from sync.receipt_model import parse_submission
from sync.store import receipts
from sync.store.partners import create_partner
from tests.flow.conftest import Flow, receipt_body
from tests.safeguards.conftest import learn_bill
from tests.safeguards.test_duplicate_check import hand_bill

pytestmark = pytest.mark.anyio


async def submit(flow: Flow, partner_id: str, body: dict[str, Any], key: str) -> str:
    submission = parse_submission(body, max_attachment_bytes=1 << 20)
    receipt_id, _ = await receipts.insert_receipt(
        flow.db, partner_id=partner_id, idempotency_key=key, submission=submission)
    return receipt_id


async def read(flow: Flow, receipt_id: str, viewer: str | None) -> dict[str, Any]:
    row = await receipts.get_receipt(flow.db, receipt_id, None)
    assert row is not None
    return await partner_resource(
        flow.db, row, await receipts.get_steps(flow.db, receipt_id), viewer=viewer)


def named(value: Any, key: str = "") -> set[str]:
    """Every id of a receipt or bill the resource names: `holder`, `bill_id`, the duplicate
    check's `alegra_id`, flag targets and the words of messages (the supplier's and accounts'
    ids, company records, may coincide with a bill's numeric id: they are not looked at)."""
    if isinstance(value, dict):
        found = set().union(*(named(v, k) for k, v in value.items()))
        if value.get("step") == "duplicate_check" and value.get("alegra_id"):
            found.add(value["alegra_id"])
        return found
    if isinstance(value, list):
        return set().union(*(named(v, key) for v in value))
    if not isinstance(value, str):
        return set()
    if key == "flags":
        return {value.partition(":")[2]}
    if key == "message":
        return {word.strip(",;:()") for word in value.split()}
    return {value} if key in ("holder", "bill_id") else set()


def names(resource: dict[str, Any], *ids: str) -> bool:
    return bool(named(resource) & set(ids))


async def beta(flow: Flow) -> str:
    return (await create_partner(flow.db, "beta"))[0].id


async def hold_the_ncf(flow: Flow) -> str:
    """Acme's receipt whose bill POST was never answered: it holds the NCF, still queued."""
    await flow.process(receipt_body(ncf="B0100000009"))  # supplier, account and taxes cached
    flow.sim.state.faults.update({"hang_after_commit": 1, "hang_s": 3.0})
    holder = await flow.process(receipt_body())
    assert (await flow.resource(holder))["status"] == "queued"
    return holder


async def test_a_waiting_twin_does_not_name_another_partners_holder(flow: Flow) -> None:
    """Beta's twin waits (`ncf_in_flight`) without acme's receipt id; the admin sees it."""
    holder = await hold_the_ncf(flow)
    beta_id = await beta(flow)
    twin = await submit(flow, beta_id, receipt_body(), "twin")
    await flow.run_next()

    seen = await read(flow, twin, beta_id)
    error = seen["error"]
    assert (error["code"], error["holder"]) == ("ncf_in_flight", None)
    assert error["message"] == "another partner's receipt holds this supplier's NCF and may" \
        " still bill it"
    assert not names(seen, holder)
    assert (await read(flow, twin, None))["error"]["holder"] == holder


async def test_a_partners_own_holder_is_named(flow: Flow) -> None:
    """Acme's own twin names acme's holding receipt, as before."""
    holder = await hold_the_ncf(flow)
    twin = await flow.process(receipt_body())

    seen = await read(flow, twin, flow.partner_id)

    assert (seen["error"]["code"], seen["error"]["holder"]) == ("ncf_in_flight", holder)
    assert holder in seen["error"]["message"]


async def test_a_twin_failing_behind_a_failed_holder_names_neither_it_nor_its_step(
    flow: Flow,
) -> None:
    """Acme's holder failed after an unanswered bill; beta's twin, past its own retry window,
    fails `ncf_held_by_failed_receipt`: neither its error nor its step names acme's receipt."""
    holder = await hold_the_ncf(flow)
    flow.sim.state.faults.update({"hang_after_commit": 0, "error_rate": 1.0})
    await flow.db.execute("UPDATE receipts SET created_at = '2000-01-01T00:00:00+00:00'"
                          " WHERE id = ?", (holder,))
    await flow.make_ready(holder)
    assert await flow.run_next() == "failed"
    flow.sim.state.faults.update({"error_rate": 0.0})
    beta_id = await beta(flow)
    twin = await submit(flow, beta_id, receipt_body(), "twin")
    await flow.db.execute("UPDATE receipts SET created_at = '2000-01-01T00:00:00+00:00'"
                          " WHERE id = ?", (twin,))
    assert await flow.run_next() == "failed"

    seen = await read(flow, twin, beta_id)
    admin = await read(flow, twin, None)

    assert (seen["error"]["code"], seen["error"]["holder"]) == (
        "ncf_held_by_failed_receipt", None)
    assert "an operator's retry" in seen["error"]["message"]
    [step] = [s for s in seen["steps"] if s["step"] == "duplicate_check"]
    assert step["detail"]["error"]["holder"] is None
    assert not names(seen, holder)
    assert names(admin, holder)


async def test_a_duplicate_of_another_partners_bill_does_not_name_the_bill(flow: Flow) -> None:
    """Beta's twin of acme's billed receipt ends `duplicate`, saying another partner's receipt
    billed it, without the bill's id; acme's own twin and the admin see the id."""
    first = await flow.process(receipt_body())
    bill_id = (await flow.resource(first))["alegra"]["bill_id"]
    beta_id = await beta(flow)
    twin = await submit(flow, beta_id, receipt_body(), "twin")
    await flow.run_next()
    own_twin = await flow.process(receipt_body())

    seen = await read(flow, twin, beta_id)

    assert (seen["status"], seen["alegra"]["bill_id"]) == ("duplicate", None)
    [step] = seen["steps"]
    assert (step["step"], step["alegra_id"]) == ("duplicate_check", None)
    assert step["detail"] == {"reason": "same_ncf", "ncf": "B0100000001", "bill_id": None,
                              "billed_by": "another_partner"}
    assert not names(seen, bill_id, first)
    assert (await read(flow, twin, None))["alegra"]["bill_id"] == bill_id
    assert (await read(flow, own_twin, flow.partner_id))["alegra"]["bill_id"] == bill_id


async def test_a_bill_learned_from_alegra_is_still_another_partners_if_it_carries_its_marker(
    flow: Flow,
) -> None:
    """Acme's bill as a webhook brought it back (the cache row rewritten from Alegra's answer)
    is still known as acme's by the receipt marker it carries: beta is not told its id."""
    first = await flow.process(receipt_body())
    bill_id = (await flow.resource(first))["alegra"]["bill_id"]
    await flow.db.execute("UPDATE bills SET receipt_id = NULL WHERE alegra_id = ?", (bill_id,))
    assert await learn_bill(flow, bill_id) == "upserted"
    beta_id = await beta(flow)
    twin = await submit(flow, beta_id, receipt_body(), "twin")
    await flow.run_next()

    seen = await read(flow, twin, beta_id)

    assert (seen["status"], seen["alegra"]["bill_id"]) == ("duplicate", None)
    assert not names(seen, bill_id)


async def test_a_bill_typed_in_alegra_is_named_to_any_partner(flow: Flow) -> None:
    """A bill no partner's receipt made is the company's: every partner's twin names it."""
    typed = hand_bill(flow)
    await learn_bill(flow, typed["id"])
    beta_id = await beta(flow)
    twin = await submit(flow, beta_id, receipt_body(), "twin")
    await flow.run_next()

    seen = await read(flow, twin, beta_id)

    assert (seen["status"], seen["alegra"]["bill_id"]) == ("duplicate", typed["id"])
    assert seen["steps"][0]["detail"]["known_from"] == "webhook"


async def test_likely_duplicate_flags_name_only_the_partners_own(flow: Flow) -> None:
    """Without an NCF, beta's receipt matching acme's bill and acme's queued receipt is flagged
    `likely_duplicate` without their ids; beta's own matching receipt is named."""
    billed = await flow.process(receipt_body(ncf=None))
    bill_id = (await flow.resource(billed))["alegra"]["bill_id"]
    queued = await flow.submit(receipt_body(ncf=None))
    beta_id = await beta(flow)
    own = await submit(flow, beta_id, receipt_body(ncf=None), "own")
    flagged = await submit(flow, beta_id, receipt_body(ncf=None), "flagged")
    await flow.db.execute("UPDATE receipts SET next_attempt_at = '9999-01-01' WHERE id IN"
                          " (?, ?)", (queued, own))  # they wait in the queue
    assert await flow.run_next() == "completed"

    seen = await read(flow, flagged, beta_id)
    admin = await read(flow, flagged, None)

    assert sorted(seen["flags"]) == sorted(["likely_duplicate", f"likely_duplicate:{own}"])
    assert not names(seen, bill_id, billed, queued)
    assert sorted(admin["flags"]) == sorted(
        f"likely_duplicate:{i}" for i in (bill_id, queued, own))
