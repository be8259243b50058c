"""Fault injection: each knob, set directly or through POST /_sim/faults, hits /api/v1 only."""

from __future__ import annotations

import time

import httpx
import pytest

from sync.simulator.state import SimConfig
from tests.simulator.conftest import Receiver, wait_until
from tests.support.servers import RunningSimulator


def test_error_rate_answers_5xx_before_acting(
    api: httpx.Client, control: httpx.Client, simulator: RunningSimulator
) -> None:
    """With error_rate=1 every API request gets error_status and nothing is created."""
    control.post("/_sim/faults", json={"error_rate": 1.0, "error_status": 503})
    response = api.post("/contacts", json={"name": "Nunca"})
    assert response.status_code == 503
    assert "X-Rate-Limit-Remaining" in response.headers
    assert simulator.state.contacts == {}
    assert control.get("/_sim/state").status_code == 200


def test_burst_429_refuses_the_next_requests_regardless_of_budget(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """burst_429=2 makes exactly the next two requests 429 with remaining 0."""
    simulator.state.faults.burst_429 = 2
    statuses = [api.get("/taxes").status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    assert simulator.state.calls(status=429) == 2


def test_latency_is_added_to_api_requests_only(
    api: httpx.Client, control: httpx.Client, simulator: RunningSimulator
) -> None:
    """latency_s delays /api/v1 answers but not the /_sim/ control API."""
    simulator.state.faults.latency_s = 0.3
    started = time.monotonic()
    api.get("/taxes")
    api_time = time.monotonic() - started
    started = time.monotonic()
    control.get("/_sim/state")
    assert api_time >= 0.3
    assert time.monotonic() - started < 0.3


def test_hang_after_commit_times_out_a_write_that_happened(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """The client times out on the POST, yet the contact exists: the outcome-unknown case."""
    simulator.state.faults.update({"hang_after_commit": 1, "hang_s": 0.5})
    with pytest.raises(httpx.ReadTimeout):
        api.post("/contacts", json={"name": "Fantasma"}, timeout=0.2)
    assert [c["name"] for c in api.get("/contacts").json()] == ["Fantasma"]
    assert simulator.state.calls("POST", "/contacts", status=201) == 1


def test_hang_skips_reads_and_refused_writes(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """Reads and failed writes do not consume hang_after_commit."""
    simulator.state.faults.update({"hang_after_commit": 1, "hang_s": 0.5})
    api.get("/contacts", timeout=0.2)
    api.post("/contacts", json={}, timeout=0.2)
    assert simulator.state.faults.hang_after_commit == 1


def test_wrapped_error_variant(api: httpx.Client, simulator: RunningSimulator) -> None:
    """wrap_errors answers errors as {"error": {message, code}}, as Alegra sometimes does."""
    simulator.state.faults.wrap_errors = True
    assert set(api.get("/contacts/nope").json()["error"]) == {"message", "code"}
    assert api.get("/nothing").json()["error"]["code"] == 404


def test_unknown_fault_is_refused(control: httpx.Client) -> None:
    """POST /_sim/faults names the unknown knob instead of ignoring it."""
    response = control.post("/_sim/faults", json={"eror_rate": 1})
    assert response.status_code == 400
    assert "eror_rate" in response.json()["message"]


@pytest.mark.parametrize("sim_config", [SimConfig(webhook_name_style="string",
                                                  delivery_retry_delays=(0.01,))])
def test_dropped_deliveries_are_never_sent_nor_counted(
    api: httpx.Client, simulator: RunningSimulator, receiver: Receiver
) -> None:
    """drop_delivery_rate=1 loses every delivery without counting a failure."""
    body = {"event": "new-client", "url": receiver.url}
    sub_id = api.post("/webhooks/subscriptions", json=body).json()["subscription"]["id"]
    simulator.state.faults.drop_delivery_rate = 1.0
    simulator.state.person_create_contact(name="Perdido")
    wait_until(lambda: simulator.state.dropped_deliveries == 1)
    assert receiver.deliveries() == []
    assert simulator.state.subscription_failures.get(sub_id, 0) == 0
