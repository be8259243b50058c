"""`alegra-sync doctor` against the simulator: read-only, at most 40 GETs, a verdict per guess."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from sync import doctor
from sync.cli import main
from tests.support.procs import TEST_SECRET_KEY
from tests.support.servers import RunningSimulator

RNC = "1-31-24679-6"


@pytest.fixture
def env(simulator: RunningSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's environment pointed at the simulator's default account."""
    monkeypatch.chdir(tmp_path)
    for name in ("CREDENTIALS_KEY", "PUBLIC_URL", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALEGRA_BASE_URL", simulator.base_url)
    monkeypatch.setenv("ALEGRA_EMAIL", simulator.email)
    monkeypatch.setenv("ALEGRA_TOKEN", simulator.token)
    monkeypatch.setenv("ALEGRA_RATE_LIMIT", str(simulator.config.rate_limit))
    monkeypatch.setenv("ALEGRA_RATE_WINDOW_S", str(simulator.config.window_s))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cache.db'}")
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("LOG_FORMAT", "json")


def _seed(simulator: RunningSimulator, identification_type: str) -> None:
    state = simulator.state
    supplier = state.person_create_contact(name="Ferretería Ochoa SRL", identification=RNC,
                                           identificationType=identification_type,
                                           type=["provider"])
    leaf = next(c for c in state.categories.values() if c["type"] == "expense"
                and not any(o["idParent"] == c["id"] for o in state.categories.values()))
    today = date.today().isoformat()
    state.person_create_bill(
        date=today, dueDate=today, provider={"id": supplier["id"]},
        numberTemplate={"number": "B0100000005"},
        purchases={"categories": [{"id": leaf["id"], "price": 100, "quantity": 1}]})
    state.clear_log()


def _doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, Any]]]:
    status = main(["doctor", "--json"])
    findings = json.loads(capsys.readouterr().out)
    assert {f["verdict"] for f in findings} <= {"confirmed", "contradicted", "no evidence"}
    return status, {f["guess"].split(":")[0].split(" ")[0]: f for f in findings}


def _read_only(simulator: RunningSimulator) -> None:
    calls = simulator.state.calls()
    assert 0 < calls <= 40
    assert simulator.state.calls() == simulator.state.calls("GET")


def test_normal_mode_confirms_what_it_has_evidence_for(
    simulator: RunningSimulator, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(simulator, "RNC")
    status, found = _doctor(capsys)
    assert status == 0
    assert all(f["verdict"] != "contradicted" for f in found.values())
    assert found["identification"]["verdict"] == "confirmed"
    assert found["a"]["verdict"] == "confirmed"  # a bill's NCF / a contact found by search
    _read_only(simulator)


def test_another_identification_type_is_contradicted_with_its_evidence(
    simulator: RunningSimulator, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(simulator, "NIT")
    status = main(["doctor"])
    printed = capsys.readouterr().out
    assert status == 1
    assert "contradicted  identification type codes" in printed
    assert "has type 'NIT'" in printed
    _read_only(simulator)


def test_an_empty_account_has_no_evidence_and_no_contradiction(
    simulator: RunningSimulator, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    simulator.state.clear_log()
    status = main(["doctor", "--json"])
    out = capsys.readouterr()
    findings = json.loads(out.out)
    assert status == 0, [f for f in findings if f["verdict"] == "contradicted"]
    assert all(f["verdict"] != "contradicted" for f in findings)
    data_guesses = {doctor.ID_GUESS, doctor.NCF_GUESS, doctor.SEARCH_GUESS}
    data_checks = [f for f in findings if f["guess"] in data_guesses]
    assert len(data_checks) == 3
    assert all(f["verdict"] == "no evidence" for f in data_checks)
    _read_only(simulator)
