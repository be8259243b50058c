"""Many accounts in one simulator: each e-mail/token pair is its own company."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from sync.simulator import cli
from sync.simulator.accounts import AccountError
from sync.simulator.state import SimConfig
from tests.simulator.conftest import TLS, Receiver, wait_until
from tests.support.servers import RunningSimulator, ServerThread, free_port

SHORT_WINDOW = SimConfig(rate_limit=3, window_s=1.0, delivery_retry_delays=(0.01,),
                         handshake_timeout_s=1.0, delivery_timeout_s=1.0,
                         webhook_name_style="string")
PDF = ("recibo.pdf", b"%PDF-1.4 data", "application/pdf")


def client(sim: RunningSimulator) -> httpx.Client:
    """An httpx client on /api/v1 with the credentials of `sim`'s account."""
    return httpx.Client(base_url=sim.base_url, auth=(sim.email, sim.token), timeout=5.0,
                        verify=TLS)


@pytest.fixture
def other(simulator: RunningSimulator) -> RunningSimulator:
    """A second account of the fixture's simulator, with a limit of its own."""
    return simulator.add_account("otra@example.com", "otra-token", rate_limit=5)


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    """A second webhook receiver, for the second account's subscriptions."""
    hook = Receiver()
    server = ServerThread(hook.app).start()
    hook.url = f"{server.url}/hook"
    yield hook
    server.stop()


def test_accounts_hold_separate_data_under_the_same_ids(
    api: httpx.Client, simulator: RunningSimulator, other: RunningSimulator
) -> None:
    """A contact made in each account gets the same id, and each account sees only its own."""
    with client(other) as theirs:
        mine = api.post("/contacts", json={"name": "Colmado Peña"}).json()
        their = theirs.post("/contacts", json={"name": "Farmacia Báez"}).json()
        assert mine["id"] == their["id"]
        assert [c["name"] for c in api.get("/contacts").json()] == ["Colmado Peña"]
        assert [c["name"] for c in theirs.get("/contacts").json()] == ["Farmacia Báez"]
    assert simulator.state.contacts[mine["id"]]["name"] == "Colmado Peña"
    assert other.state.contacts[their["id"]]["name"] == "Farmacia Báez"
    assert (simulator.state.calls("POST"), other.state.calls("POST")) == (1, 1)


@pytest.mark.parametrize("sim_config", [replace(SHORT_WINDOW, window_s=60.0)])
def test_one_account_exhausting_its_window_leaves_the_other_serving(
    api: httpx.Client, other: RunningSimulator
) -> None:
    """The default account's fourth request in a window of three is 429; the other account,
    with its own limit of five, still has all five."""
    statuses = [api.get("/taxes").status_code for _ in range(4)]
    with client(other) as theirs:
        answer = theirs.get("/taxes")
    assert statuses == [200, 200, 200, 429]
    assert answer.status_code == 200
    assert (answer.headers["X-Rate-Limit-Limit"], answer.headers["X-Rate-Limit-Remaining"]) == (
        "5", "4")


@pytest.mark.parametrize("sim_config", [SHORT_WINDOW])
def test_accounts_of_one_email_share_its_window(simulator: RunningSimulator) -> None:
    """Two companies of one Alegra user (same e-mail, other token) spend one window, as
    Alegra's limit is per user; a different limit for that e-mail is refused."""
    sibling = simulator.add_account(simulator.email, "segunda-empresa", name="segunda")
    with pytest.raises(AccountError, match="share one rate window"):
        simulator.add_account(simulator.email, "tercera", name="tercera", rate_limit=9)
    with client(simulator) as mine, client(sibling) as theirs:
        statuses = [mine.get("/taxes").status_code for _ in range(3)]
        assert [*statuses, theirs.get("/taxes").status_code] == [200, 200, 200, 429]
    assert sibling.state is not simulator.state


@pytest.mark.parametrize("sim_config", [SHORT_WINDOW])
def test_each_account_delivers_to_its_own_subscribers(
    api: httpx.Client, simulator: RunningSimulator, other: RunningSimulator,
    receiver: Receiver, other_receiver: Receiver,
) -> None:
    """Subscriptions and deliveries belong to their account: a contact made in one account is
    delivered to its subscriber only, and each account records only its own attempts."""
    with client(other) as theirs:
        event = {"event": "new-client"}
        mine = api.post("/webhooks/subscriptions", json={**event, "url": receiver.url})
        their = theirs.post("/webhooks/subscriptions", json={**event, "url": other_receiver.url})
        assert mine.json()["subscription"]["id"] == their.json()["subscription"]["id"]
        assert theirs.get("/webhooks/subscriptions").json()["subscriptions"] == [
            their.json()["subscription"]]
    other.state.person_create_contact(name="Farmacia Báez")
    assert simulator.state.outbox.pending() == 0  # nothing queued for the default account
    wait_until(lambda: len(other.state.deliveries) == 1)
    assert [d["message"]["client"]["name"] for d in other_receiver.deliveries()] == [
        "Farmacia Báez"]
    assert (receiver.deliveries(), simulator.state.deliveries) == ([], [])


def test_unknown_and_crossed_credentials_are_401(
    simulator: RunningSimulator, other: RunningSimulator
) -> None:
    """Credentials of no account, and one account's e-mail with another's token, get 401."""
    url = f"{simulator.base_url}/taxes"
    assert httpx.get(url, auth=("nadie@example.com", "x")).status_code == 401
    assert httpx.get(url, auth=(other.email, simulator.token)).status_code == 401
    assert httpx.get(url, auth=(other.email, other.token)).status_code == 200


def test_a_revoked_account_gets_401_and_the_others_carry_on(
    api: httpx.Client, other: RunningSimulator
) -> None:
    """Revoking one account's credentials refuses them and keeps its data; others still work."""
    other.state.person_create_contact(name="Farmacia Báez")
    other.state.revoked = True
    with client(other) as theirs:
        assert theirs.get("/contacts").status_code == 401
        assert api.get("/contacts").status_code == 200
        other.state.revoked = False
        assert len(theirs.get("/contacts").json()) == 1


def test_faults_belong_to_their_account(api: httpx.Client, other: RunningSimulator) -> None:
    """An error rate set on one account leaves the other's answers alone."""
    other.state.faults.update({"error_rate": 1.0, "error_status": 503})
    with client(other) as theirs:
        assert theirs.get("/taxes").status_code == 503
    assert api.get("/taxes").status_code == 200


def test_python_api_reaches_each_account_by_name(
    simulator: RunningSimulator, other: RunningSimulator
) -> None:
    """`account(name)` gives the same view as `add_account` did; names and credentials are
    unique; an unknown name is an error."""
    assert simulator.account("otra@example.com").state is other.state
    assert other.account(simulator.email).state is simulator.state
    named = simulator.add_account("c@example.com", "c", name="tercera")
    assert simulator.account("tercera").email == "c@example.com"
    with pytest.raises(AccountError):
        simulator.add_account("otra@example.com", "otra-token", name="again")
    with pytest.raises(AccountError):
        simulator.add_account("d@example.com", "d", name="tercera")
    with pytest.raises(AccountError):
        simulator.account("nadie")
    assert named.config.delivery_retry_delays == simulator.config.delivery_retry_delays


def test_control_api_adds_lists_and_drives_an_account(
    control: httpx.Client, simulator: RunningSimulator
) -> None:
    """POST /_sim/accounts adds an account (201, no token shown) that the API then serves;
    /_sim/accounts/{name}/… acts on it alone; PATCH revokes it."""
    body = {"email": "b@example.com", "token": "b-token", "rate_limit": 7, "window_s": 2}
    added = control.post("/_sim/accounts", json=body)
    assert added.status_code == 201
    assert added.json()["control_path"] == "/_sim/accounts/b@example.com"
    assert "b-token" not in control.get("/_sim/accounts").text
    path = added.json()["control_path"]
    control.post(f"{path}/seed", json={"contacts": 3})
    answer = httpx.get(f"{simulator.base_url}/contacts", auth=("b@example.com", "b-token"))
    assert (len(answer.json()), answer.headers["X-Rate-Limit-Limit"]) == (3, "7")
    assert control.get(f"{path}/state").json()["contacts"] == 3
    assert control.get("/_sim/state").json()["contacts"] == 0
    assert control.get(f"{path}/requests").json()["count"] == 1
    control.patch("/_sim/accounts/b@example.com", json={"revoked": True})
    assert httpx.get(f"{simulator.base_url}/taxes",
                     auth=("b@example.com", "b-token")).status_code == 401


def test_control_api_refuses_bad_accounts(control: httpx.Client) -> None:
    """Missing fields and bad limits are 400, taken credentials 409, unknown names 404."""
    good = {"email": "b@example.com", "token": "b-token"}
    assert control.post("/_sim/accounts", json={"email": "b@example.com"}).status_code == 400
    assert control.post("/_sim/accounts", json={**good, "rate_limit": 0}).status_code == 400
    assert control.post("/_sim/accounts", json={**good, "extra": 1}).status_code == 400
    assert control.post("/_sim/accounts", json=good).status_code == 201
    assert control.post("/_sim/accounts", json=good).status_code == 409
    assert control.get("/_sim/accounts/nadie/state").status_code == 404
    assert control.patch("/_sim/accounts/b@example.com", json={"revoked": 1}).status_code == 400


def test_attachments_are_served_from_their_accounts_control_path(
    other: RunningSimulator,
) -> None:
    """A file attached in another account is fetched under that account's /_sim path."""
    contact = other.state.person_create_contact(name="Ferretería Ochoa", type=["provider"])
    leaf = next(c for c in other.state.categories.values() if c["name"] == "Combustible y "
                "lubricantes")
    made = other.state.person_create_bill(
        date="2025-03-01", dueDate="2025-03-01", provider={"id": contact["id"]},
        purchases={"categories": [{"id": leaf["id"], "price": 10, "quantity": 1}]})
    with client(other) as theirs:
        url = theirs.post(f"/bills/{made['id']}/attachment", files={"file": PDF}).json()["url"]
    assert url == f"{other.root_url}/_sim/accounts/otra@example.com/files/1"
    assert httpx.get(url).content == PDF[1]
    assert httpx.get(f"{other.root_url}/_sim/files/1").status_code == 404


def test_cli_reads_accounts_from_flags_and_the_environment() -> None:
    """`--account` is repeatable, SIMULATOR_ACCOUNTS adds more, and malformed ones are refused."""
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["simulator", "--account", "a@x.do:ta", "--account", "b@x.do:tb:9:2"])
    specs = cli.extra_accounts(args, {"SIMULATOR_ACCOUNTS": " c@x.do:tc:4  d@x.do:td "})
    assert [(s.email, s.token, s.rate_limit, s.window_s) for s in specs] == [
        ("c@x.do", "tc", 4, None), ("d@x.do", "td", None, None),
        ("a@x.do", "ta", None, None), ("b@x.do", "tb", 9, 2.0)]
    for bad in ("a@x.do", "a@x.do:", "a@x.do:t:many", "a@x.do:t:1:2:3"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.account_spec(bad)


def test_simulator_process_serves_the_accounts_it_was_given() -> None:
    """`python -m sync.simulator --account …` with SIMULATOR_ACCOUNTS serves both accounts, each
    with its own limit and data, and still refuses unknown credentials."""
    port = free_port()
    command = [sys.executable, "-m", "sync.simulator", "--port", str(port),
               "--account", "b@x.do:tb:5", "--seed-contacts", "2"]
    env = {**_environ(), "SIMULATOR_ACCOUNTS": "c@x.do:tc:7:2"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(3)]
            assert "ALEGRA_EMAIL=sim@example.com" in lines[0]
            assert ["c@x.do" in lines[1], "b@x.do" in lines[2]] == [True, True]
            base = f"http://127.0.0.1:{port}/api/v1"
            answers = [_get_when_up(f"{base}/contacts", auth) for auth in
                       (("b@x.do", "tb"), ("c@x.do", "tc"), ("sim@example.com", "sim-token"))]
            assert [a.headers["X-Rate-Limit-Limit"] for a in answers] == ["5", "7", "150"]
            assert [len(a.json()) for a in answers] == [0, 0, 2]
            assert httpx.get(f"{base}/taxes", auth=("b@x.do", "tc")).status_code == 401
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_simulator_process_refuses_a_taken_account() -> None:
    """Two --account flags with the same credentials stop the start with a message."""
    command = [sys.executable, "-m", "sync.simulator", "--port", str(free_port()),
               "--account", "b@x.do:tb", "--account", "b@x.do:tb"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, env=_environ(),
                          check=False)
    assert done.returncode == 2
    assert "exists" in done.stderr


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SIMULATOR_ACCOUNTS"}


def _get_when_up(url: str, auth: tuple[str, str]) -> httpx.Response:
    for _ in range(200):
        try:
            return httpx.get(url, auth=auth)
        except httpx.ConnectError:
            time.sleep(0.02)
    raise AssertionError(f"{url} never answered")
