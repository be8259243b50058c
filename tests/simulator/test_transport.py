"""Auth, the rate limit, error shapes and the request log of the simulated Alegra."""

from __future__ import annotations

import time

import httpx
import pytest

from sync.simulator.state import SimConfig
from tests.support.servers import RunningSimulator

SHORT_WINDOW = SimConfig(rate_limit=3, window_s=1.0)


def test_wrong_token_is_401_in_alegras_error_shape(simulator: RunningSimulator) -> None:
    """A wrong API token is refused with 401 and a {message, code} body."""
    response = httpx.get(f"{simulator.base_url}/contacts", auth=(simulator.email, "wrong"))
    assert response.status_code == 401
    assert set(response.json()) == {"message", "code"}


def test_missing_credentials_are_401(simulator: RunningSimulator) -> None:
    """A request without HTTP Basic credentials is refused."""
    assert httpx.get(f"{simulator.base_url}/taxes").status_code == 401


def test_every_answer_carries_rate_limit_headers(api: httpx.Client) -> None:
    """Success and error answers alike report limit, remaining and whole seconds to reset."""
    ok = api.get("/taxes")
    missing = api.get("/contacts/does-not-exist")
    assert ok.headers["X-Rate-Limit-Limit"] == "150"
    assert int(ok.headers["X-Rate-Limit-Remaining"]) == 149
    assert int(missing.headers["X-Rate-Limit-Remaining"]) == 148
    assert 0 < int(missing.headers["X-Rate-Limit-Reset"]) <= 1


@pytest.mark.parametrize("sim_config", [SHORT_WINDOW])
def test_over_the_limit_is_429_until_the_window_resets(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """The fourth request in a window of three gets 429 without Retry-After; the next window
    serves again, and the 429 is in the request log."""
    remaining = [api.get("/taxes").headers["X-Rate-Limit-Remaining"] for _ in range(3)]
    refused = api.get("/taxes")
    assert remaining == ["2", "1", "0"]
    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers
    assert refused.headers["X-Rate-Limit-Remaining"] == "0"
    time.sleep(int(refused.headers["X-Rate-Limit-Reset"]) + 0.05)
    assert api.get("/taxes").status_code == 200
    assert simulator.state.calls("GET", "/taxes", status=429) == 1


@pytest.mark.parametrize("sim_config", [SHORT_WINDOW])
def test_wrong_credentials_do_not_spend_the_accounts_budget(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """Requests with another token count in their own window, not the account's."""
    for _ in range(4):
        httpx.get(f"{simulator.base_url}/taxes", auth=(simulator.email, "wrong"))
    assert api.get("/taxes").headers["X-Rate-Limit-Remaining"] == "2"
    assert simulator.state.calls(status=401) == 3


def test_request_log_counts_by_method_and_path(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """`calls` filters the log by method and path prefix, with or without /api/v1."""
    api.get("/contacts")
    api.post("/contacts", json={"name": "Colmado Peña"})
    api.get("/taxes", params={"metadata": "true"})
    state = simulator.state
    assert state.calls() == 3
    assert state.calls("POST", "/contacts") == 1
    assert state.calls(path_prefix="/api/v1/contacts") == 2
    assert state.requests[-1].query == {"metadata": "true"}
    state.clear_log()
    assert state.calls() == 0


def test_unknown_route_and_method_answer_in_alegras_shape(api: httpx.Client) -> None:
    """An unknown path is 404 and an unsupported method 405, both as {message, code}."""
    assert api.get("/nothing-here").json()["code"] == 404
    assert api.patch("/contacts").json()["code"] == 405


def test_malformed_json_is_400(api: httpx.Client) -> None:
    """A body that is not a JSON object is refused before anything is stored."""
    json_header = {"Content-Type": "application/json"}
    response = api.post("/contacts", content=b"{not json", headers=json_header)
    assert response.status_code == 400
    assert api.post("/contacts", json=["a list"]).status_code == 400
