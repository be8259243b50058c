"""Webhook subscriptions (handshake, duplicates) and deliveries (retries, deletion, payloads)."""

from __future__ import annotations

import httpx
import pytest

from sync.simulator.state import SimConfig
from tests.simulator.conftest import Receiver, wait_until
from tests.support.servers import RunningSimulator

FAST = SimConfig(delivery_retry_delays=(0.01, 0.01, 0.01), max_consecutive_failures=6,
                 handshake_timeout_s=0.3, delivery_timeout_s=0.3, webhook_name_style="string")


def subscribe(api: httpx.Client, url: str, event: str = "new-client") -> httpx.Response:
    return api.post("/webhooks/subscriptions", json={"event": event, "url": url})


def test_subscribing_posts_an_empty_body_first(api: httpx.Client, receiver: Receiver) -> None:
    """The URL gets an empty POST; on its 2xx the subscription is created and listed."""
    response = subscribe(api, receiver.url)
    assert response.status_code == 201
    subscription = response.json()["subscription"]
    assert subscription["event"] == "new-client"
    assert subscription["url"] == receiver.url
    assert receiver.received == [b""]
    listed = api.get("/webhooks/subscriptions").json()["subscriptions"]
    assert [s["id"] for s in listed] == [subscription["id"]]


@pytest.mark.parametrize("sim_config", [FAST])
def test_failed_or_slow_handshake_creates_nothing(
    api: httpx.Client, receiver: Receiver
) -> None:
    """A non-2xx or an answer later than the handshake timeout is a 400 and no subscription."""
    receiver.statuses.append(500)
    assert subscribe(api, receiver.url).status_code == 400
    receiver.delay_s = 0.6
    assert subscribe(api, receiver.url).status_code == 400
    assert api.get("/webhooks/subscriptions").json() == {"subscriptions": []}


def test_unknown_event_and_duplicates_are_refused(api: httpx.Client, receiver: Receiver) -> None:
    """Only the 12 events exist (none for categories); the same event and URL twice is 409."""
    assert subscribe(api, receiver.url, "new-category").status_code == 400
    assert subscribe(api, receiver.url).status_code == 201
    duplicate = subscribe(api, receiver.url)
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, 409)
    assert subscribe(api, receiver.url, "edit-client").status_code == 201


def test_subscription_get_put_delete(api: httpx.Client, receiver: Receiver) -> None:
    """A subscription can be read, moved to another event, and deleted."""
    sub_id = subscribe(api, receiver.url).json()["subscription"]["id"]
    assert api.get(f"/webhooks/subscriptions/{sub_id}").json()["subscription"]["id"] == sub_id
    moved = api.put(f"/webhooks/subscriptions/{sub_id}", json={"event": "edit-bill"})
    assert moved.json()["subscription"]["event"] == "edit-bill"
    assert api.delete(f"/webhooks/subscriptions/{sub_id}").status_code == 200
    assert api.get(f"/webhooks/subscriptions/{sub_id}").status_code == 404


@pytest.mark.parametrize("sim_config", [FAST])
def test_api_changes_are_delivered_with_the_contact(
    api: httpx.Client, receiver: Receiver
) -> None:
    """Creating a contact through the API delivers {subject, message: {client}} to subscribers."""
    subscribe(api, receiver.url)
    contact = api.post("/contacts", json={"name": "Colmado Peña"}).json()
    wait_until(lambda: len(receiver.deliveries()) == 1)
    delivery = receiver.deliveries()[0]
    assert delivery["subject"] == "new-client"
    assert delivery["message"]["client"]["id"] == contact["id"]
    assert delivery["message"]["client"]["name"] == "Colmado Peña"


@pytest.mark.parametrize("sim_config", [FAST])
def test_person_hooks_trigger_deliveries_in_order(
    api: httpx.Client, simulator: RunningSimulator, receiver: Receiver
) -> None:
    """Edits made in the web app reach a subscription in order; a delete carries only the id."""
    for event in ("edit-client", "delete-client"):
        subscribe(api, receiver.url, event)
    state = simulator.state
    contact_id = state.person_create_contact(name="Taller Rosario")["id"]
    for n in range(3):
        state.person_edit_contact(contact_id, phonePrimary=f"809-555-000{n}")
    state.person_delete_contact(contact_id)
    wait_until(lambda: len(receiver.deliveries()) == 4)
    edits = [d for d in receiver.deliveries() if d["subject"] == "edit-client"]
    deletes = [d for d in receiver.deliveries() if d["subject"] == "delete-client"]
    phones = [d["message"]["client"]["phonePrimary"] for d in edits]
    assert phones == ["809-555-0000", "809-555-0001", "809-555-0002"]
    assert deletes == [{"subject": "delete-client", "message": {"client": {"id": contact_id}}}]


@pytest.mark.parametrize("sim_config", [FAST])
def test_bill_events_carry_the_bill(
    api: httpx.Client, simulator: RunningSimulator, receiver: Receiver
) -> None:
    """Voiding a bill in the web app delivers edit-bill with the bill under "bill"."""
    subscribe(api, receiver.url, "edit-bill")
    state = simulator.state
    provider = state.person_create_contact(name="Proveedor", type=["provider"])["id"]
    account = next(c["id"] for c in state.categories.values() if c["name"] == "Seguros")
    bill = state.person_create_bill(
        date="2025-01-01", dueDate="2025-01-01", provider={"id": provider},
        purchases={"categories": [{"id": account, "price": 5, "quantity": 1}]})
    state.person_void_bill(bill["id"])
    wait_until(lambda: len(receiver.deliveries()) == 1)
    assert receiver.deliveries()[0]["message"]["bill"]["status"] == "void"


@pytest.mark.parametrize("sim_config", [FAST])
def test_failed_delivery_is_retried_and_success_resets_the_count(
    api: httpx.Client, simulator: RunningSimulator, receiver: Receiver
) -> None:
    """Two failures then a 2xx: three attempts, one delivery, consecutive failures back to 0."""
    sub_id = subscribe(api, receiver.url).json()["subscription"]["id"]
    receiver.statuses.extend([503, 500])
    simulator.state.person_create_contact(name="Reintento")
    wait_until(lambda: any(d.ok for d in simulator.state.deliveries))
    assert [d.status for d in simulator.state.deliveries] == [503, 500, 200]
    assert simulator.state.subscription_failures[sub_id] == 0


@pytest.mark.parametrize("sim_config", [FAST])
def test_subscription_is_deleted_after_consecutive_failures(
    api: httpx.Client, control: httpx.Client, simulator: RunningSimulator, receiver: Receiver
) -> None:
    """Six failed attempts in a row (timeouts included) delete the subscription."""
    subscribe(api, receiver.url)
    receiver.statuses.extend([500] * 4)
    simulator.state.person_create_contact(name="Uno")
    wait_until(lambda: len(simulator.state.deliveries) == 4)
    assert control.get("/_sim/state").json()["subscriptions"][0]["consecutive_failures"] == 4
    receiver.delay_s = 0.5  # the 5th and 6th attempts time out
    simulator.state.person_create_contact(name="Dos")
    wait_until(lambda: not simulator.state.subscriptions)
    assert [d.status for d in simulator.state.deliveries] == [500] * 4 + [None] * 2
    assert api.get("/webhooks/subscriptions").json() == {"subscriptions": []}


@pytest.mark.parametrize("style", ["object", "mixed"])
def test_webhook_names_may_be_objects(
    api: httpx.Client, simulator: RunningSimulator, receiver: Receiver, style: str
) -> None:
    """With the object styles, contact names arrive as {firstName, lastName} or {fullname}."""
    simulator.state.config.webhook_name_style = style
    subscribe(api, receiver.url)
    for _ in range(3):
        simulator.state.person_create_contact(name="María Almonte")
    wait_until(lambda: len(receiver.deliveries()) == 3)
    names = [d["message"]["client"]["name"] for d in receiver.deliveries()]
    assert {"firstName": "María", "lastName": "Almonte"} in names
    assert {"fullname": "María Almonte"} in names
    assert ("María Almonte" in names) == (style == "mixed")


@pytest.mark.parametrize("sim_config", [FAST])
def test_seeding_with_deliver_sends_one_delivery_per_contact(
    api: httpx.Client, simulator: RunningSimulator, receiver: Receiver
) -> None:
    """seed_contacts(deliver=True) queues new-client for each; without it, none."""
    subscribe(api, receiver.url)
    simulator.state.seed_contacts(5)
    simulator.state.seed_contacts(3, deliver=True)
    wait_until(lambda: len(receiver.deliveries()) == 3)
    assert simulator.state.snapshot()["contacts"] == 8
