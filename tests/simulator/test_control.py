"""The /_sim/ control API and the command line, for simulators in another process."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import httpx

from sync.simulator import cli
from tests.support.servers import RunningSimulator, free_port


def test_person_routes_change_the_data(control: httpx.Client, api: httpx.Client) -> None:
    """Contacts and bills made, edited, voided and deleted through /_sim/person are visible."""
    contact = control.post("/_sim/person/contacts",
                           json={"name": "Papelería Guzmán", "identification": "1-31-24679-6",
                                 "type": ["provider"]}).json()
    control.patch(f"/_sim/person/contacts/{contact['id']}", json={"email": "pg@x.do"})
    assert api.get(f"/contacts/{contact['id']}").json()["email"] == "pg@x.do"
    leaf = api.get("/categories", params={"format": "plain", "name": "Papelería"}).json()[0]
    bill = control.post("/_sim/person/bills", json={
        "date": "2025-05-01", "dueDate": "2025-05-01", "provider": {"id": contact["id"]},
        "purchases": {"categories": [{"id": leaf["id"], "price": 10, "quantity": 2}]}}).json()
    assert control.post(f"/_sim/person/bills/{bill['id']}/void").json()["status"] == "void"
    assert control.delete(f"/_sim/person/bills/{bill['id']}").status_code == 200
    assert control.delete(f"/_sim/person/contacts/{contact['id']}").status_code == 200
    assert control.get("/_sim/state").json()["contacts"] == 0


def test_seed_requests_and_state(control: httpx.Client, api: httpx.Client) -> None:
    """Seeding adds contacts, the log counts API calls only, and clear empties it."""
    assert control.post("/_sim/seed", json={"contacts": 12}).json()["contacts"] == 12
    api.get("/contacts")
    api.get("/taxes")
    log = control.get("/_sim/requests", params={"method": "GET", "path_prefix": "/contacts"})
    assert log.json()["count"] == 1
    assert log.json()["recent"][0]["status"] == 200
    control.post("/_sim/requests/clear")
    assert control.get("/_sim/requests").json()["count"] == 0
    assert control.get("/_sim/state").json()["contacts"] == 12


def test_control_api_is_not_rate_limited_or_faulted(
    control: httpx.Client, simulator: RunningSimulator
) -> None:
    """/_sim/ ignores faults and never appears in the API request log."""
    simulator.state.faults.error_rate = 1.0
    assert control.get("/_sim/state").status_code == 200
    assert simulator.state.calls() == 0


def test_unknown_ids_are_404(control: httpx.Client) -> None:
    """Control routes answer 404 for records that do not exist."""
    assert control.delete("/_sim/subscriptions/nope").status_code == 404
    assert control.patch("/_sim/person/contacts/nope", json={}).status_code == 404


def test_cli_registers_the_simulator_command() -> None:
    """`simulator` takes host, port, credentials, rate limit, window and seed count."""
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["simulator", "--port", "9", "--rate-limit", "5", "--window-s", "2",
                              "--seed-contacts", "3", "--token", "t"])
    assert (args.port, args.rate_limit, args.window_s, args.seed_contacts) == (9, 5, 2.0, 3)
    assert args.handler is cli.run


def test_simulator_process_serves_and_prints_how_to_connect() -> None:
    """`python -m sync.simulator` prints its base URL and credentials and serves seeded data."""
    port = free_port()
    command = [sys.executable, "-m", "sync.simulator", "--port", str(port), "--seed-contacts", "4"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert f"http://127.0.0.1:{port}/api/v1" in line
            assert "ALEGRA_EMAIL=sim@example.com" in line
            response = _get_when_up(f"http://127.0.0.1:{port}/api/v1/contacts")
            assert len(response.json()) == 4
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _get_when_up(url: str) -> httpx.Response:
    for _ in range(200):
        try:
            return httpx.get(url, auth=("sim@example.com", "sim-token"))
        except httpx.ConnectError:
            time.sleep(0.02)
    raise AssertionError(f"{url} never answered")
