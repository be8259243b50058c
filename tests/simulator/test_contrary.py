"""The simulator's contrary mode: each of the product's guesses answered the other way, seeded
with data typed by hand; the normal mode answers as before."""

from __future__ import annotations

import argparse

import httpx
import pytest

from sync.simulator import contrary, webhooks
from sync.simulator.cli import contrary_mode
from sync.simulator.state import SimConfig
from tests.support.servers import RunningSimulator

CONTRARY = SimConfig(window_s=1.0, contrary=True)


def _leaf(simulator: RunningSimulator) -> str:
    cats = simulator.state.categories.values()
    return str(next(c["id"] for c in cats if c["type"] == "expense"
                    and not any(o["idParent"] == c["id"] for o in cats)))


@pytest.mark.parametrize("sim_config", [CONTRARY])
def test_contrary_account_refuses_our_codes_and_keeps_its_own_shapes(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    seeded = list(simulator.state.contacts.values())
    assert [c["identificationObject"]["type"] for c in seeded] == ["RN", "CE"]
    assert len(simulator.state.bills) == 3

    ours = {"name": "Pedro", "identification": {"type": "CED", "number": "00100759932"}}
    refused = api.post("/contacts", json=ours)
    assert refused.status_code == 400
    assert refused.json()["code"] == 11059
    theirs = api.post("/contacts", json={**ours, "identification": {
        "type": "CE", "number": "00100759932"}, "type": ["provider"]})
    assert theirs.status_code == 201, theirs.text

    bill = api.post("/bills", json={
        "date": "2026-01-02", "dueDate": "2026-01-02", "provider": {"id": theirs.json()["id"]},
        "numberTemplate": {"number": "B0100000009"},
        "purchases": {"categories": [{"id": _leaf(simulator), "price": 1, "quantity": 1}]}})
    assert bill.status_code == 201, bill.text
    assert "numberTemplate" not in bill.json()  # our field is Alegra's own sequence here

    whole = seeded[0]["name"]
    assert [r["id"] for r in api.get("/contacts", params={"name": whole}).json()] == [
        seeded[0]["id"]]
    assert api.get("/contacts", params={"name": whole.split()[0]}).json() == []
    assert len(api.get("/bills", params={"date_afterOrNow": "2099-01-01"}).json()) == 4

    webhooks.create(simulator.state, {"event": "new-bill", "url": "https://x.example/hook"})
    listed = api.get("/webhooks/subscriptions").json()["subscriptions"]
    assert [s["url"] for s in listed] == ["x.example/hook"]


def test_normal_mode_is_unchanged(simulator: RunningSimulator, api: httpx.Client) -> None:
    assert simulator.state.contacts == {}
    ours = {"name": "Pedro Ramírez", "identification": {"type": "CED", "number": "00100759932"}}
    assert api.post("/contacts", json=ours).status_code == 201
    assert len(api.get("/contacts", params={"name": "Pedro"}).json()) == 1
    contrary.seed(simulator.state)  # the seed works in any mode (tests type it in on demand)
    assert len(api.get("/bills", params={"date_afterOrNow": "2099-01-01"}).json()) == 0


def test_the_cli_switch_and_its_environment_variable() -> None:
    off, on = argparse.Namespace(contrary=False), argparse.Namespace(contrary=True)
    assert contrary_mode(on, {}) is True
    assert contrary_mode(off, {}) is False
    assert contrary_mode(off, {"SIMULATOR_CONTRARY": "1"}) is True
    assert contrary_mode(off, {"SIMULATOR_CONTRARY": "0"}) is False
