"""The duplicate check inside the real flow: one bill per (supplier, NCF), and its Alegra cost."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import ROUND_HALF_EVEN
from typing import Any

import pytest

from sync import metrics
from sync.alegra.budget import RateBudget
from sync.context import WorkerContext
from sync.flow.run_receipt import run_receipt
from sync.jobs import bills, schedule
from sync.jobs.runner import run_job
from sync.simulator import bills as sim_bills
from sync.store import ops_queries, receipt_work
from sync.store.receipt_work import Claimed
from tests.flow.conftest import RNC, Flow, error_of, outcomes, receipt_body, with_png
from tests.safeguards.conftest import MakeFlow, learn_bill

pytestmark = pytest.mark.anyio
WRITES = ("POST", "PUT", "DELETE")


def hand_bill(flow: Flow, ncf: str | None = "B0100000001", **changes: Any) -> dict[str, Any]:
    """A bill a person types into Alegra for the receipt_body() supplier: 2 × 100 + 18 %."""
    state = flow.sim.state
    contact = next((c for c in state.contacts.values() if c["identification"] == RNC), None)
    if contact is None:
        contact = state.person_create_contact(
            name="Ferretería Ochoa", identification="1-31-24679-6", type=["provider"])
    account = next(c for c in state.categories.values() if c["name"] == "Combustible y lubricantes")
    fields: dict[str, Any] = {
        "date": "2024-05-01", "dueDate": "2024-05-01", "provider": {"id": contact["id"]},
        "purchases": {"categories": [
            {"id": account["id"], "price": 100, "quantity": 2, "tax": [{"id": "1"}]}]},
    }
    if ncf is not None:
        fields["numberTemplate"] = {"number": ncf}
    return state.person_create_bill(**{**fields, **changes})


def writes(flow: Flow) -> int:
    return sum(flow.calls(method) for method in WRITES)


async def claim(flow: Flow) -> Claimed:
    claimed = await receipt_work.claim_next(flow.db, owner=flow.owner, lease_s=60)
    assert claimed is not None
    return claimed


async def test_same_ncf_with_a_new_key_is_a_duplicate_without_any_alegra_call(flow: Flow) -> None:
    """A resubmission under a new key ends `duplicate`, naming the first bill; Alegra untouched."""
    first = await flow.process(receipt_body())
    flow.sim.state.clear_log()

    second = await flow.process(receipt_body(ncf="b01-00000001"))

    resource = await flow.resource(second)
    bill_id = (await flow.resource(first))["alegra"]["bill_id"]
    assert resource["status"] == "duplicate"
    assert resource["alegra"]["bill_id"] == bill_id
    assert resource["completed_at"] is not None
    assert resource["error"] is None
    [step] = resource["steps"]
    assert (step["step"], step["outcome"]) == ("duplicate_check", "found")
    assert step["alegra_id"] == bill_id
    assert step["detail"]["known_from"] == "receipt"
    assert flow.calls() == 0
    assert len(flow.sim.state.bills) == 1


async def test_two_receipts_in_flight_at_once_make_one_bill(flow: Flow) -> None:
    """Two receipts for one NCF worked concurrently: one bill, the other `duplicate` of it."""
    ids = [await flow.submit(receipt_body()), await flow.submit(receipt_body())]
    claimed = [await claim(flow), await claim(flow)]

    states = await asyncio.gather(*(run_receipt(flow.env, c, flow.owner) for c in claimed))

    assert sorted(states) == ["completed", "duplicate"]
    [bill_id] = flow.sim.state.bills
    resources = [await flow.resource(i) for i in ids]
    assert {r["alegra"]["bill_id"] for r in resources} == {bill_id}
    assert flow.calls("POST", "/contacts") == 1


async def test_two_workers_on_one_database_make_one_bill(make_flow: MakeFlow) -> None:
    """Two processes' flows (own connection, own locks) racing on one NCF create one bill."""
    one, two = await make_flow(), await make_flow()
    ids = [await one.submit(receipt_body()), await one.submit(receipt_body())]
    claimed = [await claim(one), await claim(two)]

    await asyncio.gather(run_receipt(one.env, claimed[0], one.owner),
                         run_receipt(two.env, claimed[1], two.owner))
    for receipt_id in ids:  # the one that found the other in flight waited: run it again now
        await one.make_ready(receipt_id)
    while await one.run_next() is not None:
        pass

    statuses = sorted([(await one.resource(i))["status"] for i in ids])
    assert statuses == ["completed", "duplicate"]
    assert len(one.sim.state.bills) == 1


async def test_hand_typed_bill_learned_by_webhook_makes_the_receipt_a_duplicate(
    flow: Flow,
) -> None:
    """A bill typed in Alegra and confirmed through its webhook: the receipt writes nothing."""
    typed = hand_bill(flow)
    assert await learn_bill(flow, typed["id"]) == "upserted"
    flow.sim.state.clear_log()

    receipt_id = await flow.process(with_png(receipt_body()))

    resource = await flow.resource(receipt_id)
    assert (resource["status"], resource["alegra"]["bill_id"]) == ("duplicate", typed["id"])
    assert resource["steps"][0]["detail"]["known_from"] == "webhook"
    assert flow.calls() == 0
    assert len(flow.sim.state.bills) == 1


async def test_ncf_typed_as_prefix_and_number_is_recognised(flow: Flow) -> None:
    """A hand-typed bill keeping the NCF as template prefix + number still blocks the receipt."""
    typed = hand_bill(flow, ncf=None, numberTemplate={"prefix": "B01", "number": "00000001"})
    await learn_bill(flow, typed["id"])

    receipt_id = await flow.process(receipt_body())

    assert (await flow.resource(receipt_id))["status"] == "duplicate"


@pytest.mark.parametrize("undo", ["void", "delete"])
async def test_voided_or_deleted_bill_frees_its_ncf(flow: Flow, undo: str) -> None:
    """Once the bill is voided or deleted in Alegra (and learned), the receipt is billed."""
    first = await flow.process(receipt_body())
    bill_id = (await flow.resource(first))["alegra"]["bill_id"]
    if undo == "void":
        flow.sim.state.person_void_bill(bill_id)
    else:
        flow.sim.state.person_delete_bill(bill_id)
    await learn_bill(flow, bill_id)

    again = await flow.process(receipt_body())

    resource = await flow.resource(again)
    assert resource["status"] == "completed"
    assert resource["alegra"]["bill_id"] not in (None, bill_id)
    assert flow.calls("POST", "/bills") == 2


async def test_same_ncf_of_another_supplier_is_billed(flow: Flow) -> None:
    """An NCF is unique per supplier only: another supplier's B0100000001 is its own bill."""
    await flow.process(receipt_body())

    other = await flow.process(receipt_body(supplier={"name": "Papelera", "tax_id": "101010632"}))

    assert (await flow.resource(other))["status"] == "completed"
    assert len(flow.sim.state.bills) == 2


async def test_receipt_waits_while_the_ncf_holder_may_still_bill(flow: Flow) -> None:
    """While the first receipt's bill outcome is unknown the twin waits; then it is a duplicate."""
    await flow.process(receipt_body(ncf="B0100000009"))  # supplier, account and taxes cached
    flow.sim.state.faults.update({"hang_after_commit": 1, "hang_s": 3.0})
    first = await flow.process(receipt_body())
    assert (await flow.resource(first))["status"] == "queued"  # the POST timed out
    flow.sim.state.clear_log()

    twin = await flow.process(receipt_body())

    waiting = await flow.resource(twin)
    assert waiting["status"] == "queued"
    assert (error_of(waiting)["code"], error_of(waiting)["retryable"]) == ("ncf_in_flight", True)
    assert error_of(waiting)["holder"] == first
    assert flow.calls() == 0
    await flow.make_ready(first)
    assert await flow.run_next() == "completed"  # the lost bill is found by its marker
    await flow.make_ready(twin)
    assert await flow.run_next() == "duplicate"
    assert (await flow.resource(twin))["alegra"]["bill_id"] == (
        await flow.resource(first))["alegra"]["bill_id"]
    assert len(flow.sim.state.bills) == 2


async def test_receipt_that_gave_up_on_an_unanswered_bill_keeps_its_ncf(flow: Flow) -> None:
    """The first receipt's bill POST is never answered and Alegra stays down past the retry
    window: it fails with its bill step still `attempting`, and a twin waits rather than bill the
    document a second time. An operator's retry finds the lost bill; the twin is its duplicate."""
    await flow.process(receipt_body(ncf="B0100000009"))  # supplier, account and taxes cached
    flow.sim.state.faults.update({"hang_after_commit": 1, "hang_s": 3.0})
    first = await flow.process(receipt_body())
    flow.sim.state.faults.update({"hang_after_commit": 0, "error_rate": 1.0})
    await flow.db.execute("UPDATE receipts SET created_at = '2000-01-01T00:00:00+00:00'"
                          " WHERE id = ?", (first,))
    await flow.make_ready(first)
    assert await flow.run_next() == "failed"
    failed = await flow.resource(first)
    assert {s["step"]: s["state"] for s in failed["steps"]}["bill"] == "attempting"
    flow.sim.state.faults.update({"error_rate": 0.0})
    flow.sim.state.clear_log()

    twin = await flow.process(receipt_body())

    error = error_of(await flow.resource(twin))
    assert (error["code"], error["holder"]) == ("ncf_held_by_failed_receipt", first)
    assert f"retry {first}" in error["message"]
    assert flow.calls("POST") == 0
    assert await ops_queries.retry_failed_receipt(flow.db, first)
    assert await flow.run_next() == "completed"  # found by its marker, not created again
    await flow.make_ready(twin)
    assert await flow.run_next() == "duplicate"
    assert len(flow.sim.state.bills) == 2


async def test_a_refused_lookup_after_an_unanswered_bill_keeps_the_ncf(flow: Flow) -> None:
    """The bill POST is never answered, and the resumed receipt's lookup of it is refused (401):
    the receipt waits (its company needs attention) with its bill step still `attempting`, and
    a twin does not bill again."""
    await flow.process(receipt_body(ncf="B0100000009"))  # supplier, account and taxes cached
    flow.sim.state.faults.update({"hang_after_commit": 1, "hang_s": 3.0})
    first = await flow.process(receipt_body())
    flow.sim.state.faults.update({"hang_after_commit": 0, "error_rate": 1.0, "error_status": 401})
    await flow.make_ready(first)
    assert await flow.run_next() == "queued"
    steps = {s["step"]: s["state"] for s in (await flow.resource(first))["steps"]}
    assert steps["bill"] == "attempting"
    flow.sim.state.faults.update({"error_rate": 0.0, "error_status": 500})
    flow.sim.state.clear_log()

    twin = await flow.process(receipt_body())

    waiting = await flow.resource(twin)
    assert (waiting["status"], error_of(waiting)["holder"]) == ("queued", first)
    assert flow.calls("POST") == 0
    assert len(flow.sim.state.bills) == 2  # the warm-up's and the unanswered one's


async def test_strict_mode_asks_alegra_and_finds_a_bill_the_cache_missed(
    make_flow: MakeFlow,
) -> None:
    """With strict mode a hand-typed bill no webhook reported is found with one GET, no write."""
    flow = await make_flow(strict=True)
    await flow.process(receipt_body(ncf="B0100000009"))  # the supplier is cached now
    typed = hand_bill(flow)
    flow.sim.state.clear_log()

    receipt_id = await flow.process(receipt_body())

    resource = await flow.resource(receipt_id)
    assert (resource["status"], resource["alegra"]["bill_id"]) == ("duplicate", typed["id"])
    assert resource["steps"][0]["detail"]["known_from"] == "strict_check"
    assert (flow.calls(), flow.calls("GET", "/bills")) == (1, 1)


@pytest.mark.parametrize(("strict", "calls"), [(False, 2), (True, 3)])
async def test_cached_receipt_costs_bill_and_attachment_plus_one_in_strict_mode(
    make_flow: MakeFlow, strict: bool, calls: int
) -> None:
    """Everything cached: the bill and its file, and one GET /bills more in strict mode."""
    flow = await make_flow(strict=strict)
    await flow.process(receipt_body())
    flow.sim.state.clear_log()

    receipt_id = await flow.process(with_png(receipt_body(ncf="B0100000002")))

    assert (await flow.resource(receipt_id))["status"] == "completed"
    assert flow.calls() == calls
    assert flow.calls("GET", "/bills") == calls - 2


async def test_receipt_without_ncf_matching_a_bill_is_flagged_and_still_billed(
    flow: Flow,
) -> None:
    """Same supplier, date and total without an NCF: billed, flagged with the bill, counted."""
    first = await flow.process(receipt_body())
    first_bill = (await flow.resource(first))["alegra"]["bill_id"]
    metrics.RECORDER.take()

    again = await flow.process(receipt_body(ncf=None))

    resource = await flow.resource(again)
    assert resource["status"] == "completed"
    assert resource["flags"] == [f"likely_duplicate:{first_bill}"]
    assert len(flow.sim.state.bills) == 2
    counted = metrics.RECORDER.take()
    key = '{"company":"default","flag":"likely_duplicate"}'
    assert counted[("alegra_sync_receipts_flagged_total", key)] == 1


async def test_receipts_without_ncf_queued_together_flag_each_other(flow: Flow) -> None:
    """Twins in the queue: the first names the waiting twin, the twin names the first's bill."""
    first = await flow.submit(receipt_body(ncf=None))
    twin = await flow.submit(receipt_body(ncf=None))
    other_total = await flow.submit(receipt_body(ncf=None, lines=[
        {"description": "Clavos", "amount": "100.01", "quantity": 2, "tax_rate": 18}]))

    while await flow.run_next() is not None:
        pass

    first_bill = (await flow.resource(first))["alegra"]["bill_id"]
    assert (await flow.resource(first))["flags"] == [f"likely_duplicate:{twin}"]
    assert (await flow.resource(twin))["flags"] == [f"likely_duplicate:{first_bill}"]
    assert (await flow.resource(other_total))["flags"] == []
    assert len(flow.sim.state.bills) == 3


async def test_alegras_total_differing_from_the_receipts_is_recorded(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If Alegra rounds the total otherwise (half even here), the bill step shows both figures."""
    monkeypatch.setattr(sim_bills, "ROUND_HALF_UP", ROUND_HALF_EVEN)
    body = receipt_body(lines=[{"description": "Grapas", "amount": "0.75", "tax_rate": 18}])

    receipt_id = await flow.process(body)

    resource = await flow.resource(receipt_id)
    bill = next(s for s in resource["steps"] if s["step"] == "bill")
    assert resource["status"] == "completed"
    assert (resource["total"], bill["detail"]["alegra_total"]) == ("0.89", "0.88")
    assert bill["detail"]["total_difference"] == "-0.01"
    assert outcomes(resource)["bill"] == "created"


async def test_bills_job_finds_what_no_webhook_said_and_the_receipts_follow(flow: Flow) -> None:
    """With no bill webhooks: a bill typed in Alegra makes a later receipt with its NCF a
    duplicate once the bills job ran, and our bill voided in Alegra flags its receipt."""
    ours = await flow.process(receipt_body(ncf="B0100000009"))
    typed = hand_bill(flow, ncf="B0100000001")
    flow.sim.state.person_void_bill((await flow.resource(ours))["alegra"]["bill_id"])
    budget = RateBudget(limit=flow.sim.config.rate_limit, window_s=flow.sim.config.window_s)
    settings = replace(flow.env.settings, bill_backfill_days=10_000)  # receipts of 2024
    ctx = WorkerContext(settings, flow.db, flow.env.alegra, budget, asyncio.Event())
    assert (await run_job(ctx, schedule.BILLS, bills.run)).outcome == "success"

    assert (await flow.resource(ours))["flags"] == ["bill_voided"]
    twin = await flow.process(receipt_body())
    assert (await flow.resource(twin))["status"] == "duplicate"
    assert (await flow.resource(twin))["alegra"]["bill_id"] == typed["id"]
