"""The receipt flow in-process against the simulator: each step's outcome and its Alegra cost."""

from __future__ import annotations

import asyncio

import pytest

from sync.flow.run_receipt import run_receipt
from sync.store import contacts, receipt_work, receipts
from tests.flow.conftest import OTHER_RNC, RNC, Flow, error_of, outcomes, receipt_body, with_png

pytestmark = pytest.mark.anyio


async def test_new_supplier_and_account_are_created_then_billed(flow: Flow) -> None:
    """A receipt for an unknown supplier and account creates both, then one bill with the file."""
    receipt_id = await flow.process(with_png(receipt_body()))

    resource = await flow.resource(receipt_id)
    assert resource["status"] == "completed"
    assert outcomes(resource) == {
        "supplier": "created", "account": "created", "bill": "created", "attachment": "created"
    }
    [bill] = flow.sim.state.bills.values()
    assert bill["id"] == resource["alegra"]["bill_id"]
    assert bill["numberTemplate"] == {"number": "B0100000001"}
    assert bill["total"] == 236.0
    assert len(bill["attachments"]) == 1
    contact = flow.sim.state.contacts[resource["alegra"]["contact_id"]]
    assert contact["identification"] == RNC
    assert contact["type"] == ["provider"]


async def test_everything_cached_costs_one_call_per_receipt_without_attachment(
    flow: Flow,
) -> None:
    """With supplier, account and taxes cached, a receipt is one POST /bills and nothing else."""
    await flow.process(receipt_body())
    flow.sim.state.clear_log()

    receipt_id = await flow.process(receipt_body(ncf="B0100000002"))

    resource = await flow.resource(receipt_id)
    assert outcomes(resource) == {"supplier": "found", "account": "found", "bill": "created"}
    assert flow.calls() == 1
    assert flow.calls("POST", "/bills") == 1


async def test_everything_cached_costs_two_calls_with_attachment(flow: Flow) -> None:
    """A cached receipt with a file costs exactly the bill and the attachment."""
    await flow.process(receipt_body())
    flow.sim.state.clear_log()

    receipt_id = await flow.process(with_png(receipt_body(ncf="B0100000002")))

    assert (await flow.resource(receipt_id))["status"] == "completed"
    assert flow.calls() == 2


async def test_client_only_contact_becomes_a_supplier(flow: Flow) -> None:
    """A contact Alegra knows only as a client is updated to client and provider, not duplicated."""
    client = flow.sim.state.person_create_contact(
        name="Ferretería Ochoa", identification="1-31-24679-6", type=["client"]
    )

    receipt_id = await flow.process(receipt_body())

    resource = await flow.resource(receipt_id)
    assert outcomes(resource)["supplier"] == "updated"
    assert resource["alegra"]["contact_id"] == client["id"]
    assert sorted(flow.sim.state.contacts[client["id"]]["type"]) == ["client", "provider"]
    assert len(flow.sim.state.contacts) == 1


async def test_supplier_typed_with_dashes_in_alegra_is_found_not_recreated(flow: Flow) -> None:
    """A cold cache asks Alegra, which finds a supplier typed by hand with a dashed RNC."""
    typed = flow.sim.state.person_create_contact(
        name="FERRETERIA OCHOA SRL", identification="1-31-24679-6", type=["provider"]
    )

    receipt_id = await flow.process(receipt_body())

    resource = await flow.resource(receipt_id)
    assert outcomes(resource)["supplier"] == "found"
    assert resource["alegra"]["contact_id"] == typed["id"]
    assert flow.calls("POST", "/contacts") == 0
    cached = await contacts.find_supplier_by_tax_id(flow.db, RNC)
    assert cached is not None
    assert cached.alegra_id == typed["id"]


async def test_supplier_without_tax_id_matches_a_cached_name(flow: Flow) -> None:
    """Without a tax id, the normalised name finds the cached supplier (accents, suffix dots)."""
    await flow.process(receipt_body())
    body = receipt_body(ncf=None, supplier={"name": "FERRETERIA OCHOA SRL"})

    receipt_id = await flow.process(body)

    resource = await flow.resource(receipt_id)
    assert outcomes(resource)["supplier"] == "found"
    assert len(flow.sim.state.contacts) == 1


async def test_expense_account_is_created_under_the_expense_root(flow: Flow) -> None:
    """A new account goes under the top of the expense branch when no parent is configured."""
    receipt_id = await flow.process(receipt_body())

    resource = await flow.resource(receipt_id)
    [account_id] = resource["alegra"]["account_ids"].values()
    account = flow.sim.state.categories[account_id]
    parent = flow.sim.state.categories[account["idParent"]]
    assert (account["name"], account["type"]) == ("Gastos de ferretería", "expense")
    assert (parent["name"], parent["idParent"]) == ("Gastos", None)


async def test_existing_account_is_found_in_the_loaded_chart(flow: Flow) -> None:
    """With an empty account cache the chart is loaded once and an existing account is used."""
    receipt_id = await flow.process(receipt_body(category="combustible y lubricantes"))

    resource = await flow.resource(receipt_id)
    assert outcomes(resource)["account"] == "found"
    assert flow.calls("POST", "/categories") == 0
    assert flow.calls("GET", "/categories") == 1


async def test_summary_account_fails_the_receipt_clearly(flow: Flow) -> None:
    """A category naming a summary account fails without a bill: documents post to leaves."""
    receipt_id = await flow.process(receipt_body(category="Gastos generales"))

    resource = await flow.resource(receipt_id)
    assert resource["status"] == "failed"
    assert error_of(resource)["code"] == "account_not_postable"
    assert flow.sim.state.bills == {}


async def test_unknown_tax_rate_fails_without_retry(flow: Flow) -> None:
    """A rate the Alegra account has no tax for fails the receipt, not retryable, no bill."""
    with flow.sim.state.lock:
        flow.sim.state.taxes.pop("2")  # the 16 % ITBIS
    body = receipt_body(lines=[{"description": "Yogur", "amount": "50.00", "tax_rate": 16}])

    receipt_id = await flow.process(body)

    error = error_of(await flow.resource(receipt_id))
    assert error["code"] == "unknown_tax_rate"
    assert (error["retryable"], error["step"]) == (False, "taxes")
    assert flow.sim.state.bills == {}


async def test_rejected_bill_fails_with_alegra_evidence(flow: Flow) -> None:
    """A bill Alegra refuses fails the receipt with Alegra's status, code and message."""
    await flow.process(receipt_body())
    [contact_id] = flow.sim.state.contacts
    flow.sim.state.person_edit_contact(contact_id, status="inactive")

    receipt_id = await flow.process(receipt_body(ncf="B0100000002"))

    resource = await flow.resource(receipt_id)
    error = error_of(resource)
    assert resource["status"] == "failed"
    assert (error["step"], error["status"], error["code"]) == ("bill", 400, 2094)
    assert "desactivado" in error["message"]
    assert len(flow.sim.state.bills) == 1


async def test_bill_answer_lost_is_found_by_marker_not_created_again(flow: Flow) -> None:
    """A bill POST that committed but timed out is found on the retry: still one bill."""
    await flow.process(receipt_body())  # supplier, account and taxes cached
    flow.sim.state.faults.update({"hang_after_commit": 1, "hang_s": 3.0})

    receipt_id = await flow.process(receipt_body(ncf=None))

    first = await flow.resource(receipt_id)
    assert first["status"] == "queued"
    assert error_of(first)["kind"] == "OutcomeUnknown"
    assert error_of(first)["retryable"]
    await flow.make_ready(receipt_id)
    assert await flow.run_next() == "completed"
    resource = await flow.resource(receipt_id)
    assert outcomes(resource)["bill"] == "found"
    assert len(flow.sim.state.bills) == 2
    assert flow.calls("POST", "/bills") == 2  # the first receipt's and the lost one; no third


async def test_server_error_on_bill_is_retried_later_and_completes(flow: Flow) -> None:
    """A 5xx on the bill reschedules the receipt with the error visible, then it completes."""
    await flow.process(receipt_body())
    flow.sim.state.faults.update({"error_rate": 1.0})

    receipt_id = await flow.process(receipt_body(ncf="B0100000002"))

    queued = await flow.resource(receipt_id)
    assert queued["status"] == "queued"
    assert queued["next_attempt_at"] is not None
    assert error_of(queued)["retryable"] is True
    assert await flow.run_next() is None  # not before its backoff
    flow.sim.state.faults.update({"error_rate": 0.0})
    await flow.make_ready(receipt_id)
    assert await flow.run_next() == "completed"
    assert len(flow.sim.state.bills) == 2


async def test_failed_attachment_is_retried_alone(flow: Flow) -> None:
    """When the upload fails after the bill exists, the retry sends only the attachment."""
    await flow.process(receipt_body())
    receipt_id = await flow.submit(with_png(receipt_body(ncf="B0100000002")))
    flow.sim.state.clear_log()
    real_post = flow.env.alegra.post
    calls = 0

    async def failing_upload(path: str, **kw: object) -> object:
        nonlocal calls
        calls += 1
        if path.endswith("/attachment") and calls == 2:
            flow.sim.state.faults.update({"error_rate": 1.0})
        return await real_post(path, **kw)  # type: ignore[arg-type]

    flow.env.alegra.post = failing_upload  # type: ignore[method-assign]
    assert await flow.run_next() == "queued"
    flow.sim.state.faults.update({"error_rate": 0.0})
    flow.env.alegra.post = real_post  # type: ignore[method-assign]
    await flow.make_ready(receipt_id)
    assert await flow.run_next() == "completed"

    assert outcomes(await flow.resource(receipt_id))["attachment"] == "created"
    assert flow.calls("POST", "/bills") == 3  # bill, failed upload, retried upload
    assert len(flow.sim.state.bills) == 2


async def test_concurrent_receipts_for_one_new_supplier_create_it_once(flow: Flow) -> None:
    """Ten receipts racing for one new supplier and account create one contact and one account."""
    ids = [await flow.submit(receipt_body(ncf=f"B01000000{n:02d}")) for n in range(10)]
    accounts_before = len(flow.sim.state.categories)

    results = await asyncio.gather(*(flow.run_next() for _ in ids))

    assert results == ["completed"] * 10
    assert len(flow.sim.state.contacts) == 1
    assert len(flow.sim.state.categories) == accounts_before + 1
    assert len(flow.sim.state.bills) == 10
    assert len(flow.env.locks) == 0


async def test_different_suppliers_each_get_their_own_contact(flow: Flow) -> None:
    """Two tax ids make two contacts; the cache keys them apart."""
    await flow.process(receipt_body())
    other = receipt_body(supplier={"name": "Otro Proveedor SRL", "tax_id": OTHER_RNC})

    receipt_id = await flow.process(other)

    assert outcomes(await flow.resource(receipt_id))["supplier"] == "created"
    assert len(flow.sim.state.contacts) == 2


async def test_stopping_worker_hands_the_receipt_back_between_steps(flow: Flow) -> None:
    """A stop signal lets the current step finish, then returns the receipt to the queue."""
    receipt_id = await flow.submit(receipt_body())
    real_post = flow.env.alegra.post

    async def stop_after_post(path: str, **kw: object) -> object:
        answer = await real_post(path, **kw)  # type: ignore[arg-type]
        flow.env.stopping.set()
        return answer

    flow.env.alegra.post = stop_after_post  # type: ignore[method-assign]
    assert await flow.run_next() == "queued"

    resource = await flow.resource(receipt_id)
    assert outcomes(resource) == {"supplier": "created"}
    assert resource["error"] is None
    flow.env.stopping.clear()
    flow.env.alegra.post = real_post  # type: ignore[method-assign]
    assert await flow.run_next() == "completed"
    assert len(flow.sim.state.contacts) == 1


async def test_worker_that_lost_its_lease_sends_no_write(flow: Flow) -> None:
    """A receipt taken over by another worker mid-run is handed back before anything is created."""
    receipt_id = await flow.submit(receipt_body())
    claimed = await receipt_work.claim_next(flow.db, owner=flow.owner, lease_s=60)
    assert claimed is not None
    await flow.db.execute(
        "UPDATE receipts SET lease_owner = 'elsewhere:1:b' WHERE id = ?", (receipt_id,)
    )

    assert await run_receipt(flow.env, claimed, flow.owner) == "queued"
    assert flow.calls("POST") == 0
    assert flow.sim.state.contacts == {}
    assert await receipts.get_status(flow.db, receipt_id) == "processing"
