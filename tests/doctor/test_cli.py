"""`alegra-sync doctor` against the simulator: read-only, at most 40 GETs, a verdict per guess;
what it learns is stored per company, shown in status, and dropped by `--forget`."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from sync import doctor
from sync.cli import main
from sync.simulator import webhooks
from sync.simulator.state import SimConfig
from sync.store import doctor as doctor_store
from sync.store.db import Database
from tests.support.procs import TEST_SECRET_KEY
from tests.support.servers import RunningSimulator

RNC = "1-31-24679-6"
CEDULA = "001-1391820-5"
TODAY = date.today()


CONTRARY = SimConfig(window_s=60.0, contrary=True)


@pytest.fixture
def sim_config() -> SimConfig:
    """A minute's window: Reset counts down over the doctor's pause."""
    return SimConfig(window_s=60.0)


@pytest.fixture
def env(simulator: RunningSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's environment pointed at the simulator's default account; the database path."""
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
    return tmp_path / "cache.db"


def _leaf(simulator: RunningSimulator) -> str:
    cats = simulator.state.categories.values()
    return str(next(c["id"] for c in cats if c["type"] == "expense"
                    and not any(o["idParent"] == c["id"] for o in cats)))


def seed_everything(simulator: RunningSimulator) -> None:
    """Evidence for every guess, shaped the way the service guesses Alegra shapes it."""
    state = simulator.state
    supplier = state.person_create_contact(name="Ferretería Ochoa SRL", identification=RNC,
                                           identificationType="RNC", type=["provider"])
    state.person_create_contact(name="Juan Pérez Almonte", identification=CEDULA,
                                identificationType="CED", type=["provider"])
    for n, (day, currency) in enumerate(((TODAY - timedelta(days=9), None), (TODAY, None),
                                         (TODAY, {"code": "USD", "exchangeRate": 58.75}))):
        state.person_create_bill(
            date=day.isoformat(), dueDate=day.isoformat(), provider={"id": supplier["id"]},
            numberTemplate={"number": f"B010000000{n + 5}"}, **(
                {"currency": currency} if currency else {}),
            purchases={"categories": [{"id": _leaf(simulator), "price": 100, "quantity": 1}]})
    webhooks.create(state, {"event": "new-bill",
                            "url": "https://sync.example.do/webhooks/alegra/abcdefghijklmnopqrstu"})
    state.clear_log()


def _doctor(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    status = main(["doctor", "--json", *extra])
    findings = json.loads(capsys.readouterr().out)
    assert {f["verdict"] for f in findings} <= {"confirmed", "contradicted", "no evidence"}
    return status, {f["check"]: f for f in findings}


def _read_only(simulator: RunningSimulator) -> None:
    calls = simulator.state.calls()
    assert 0 < calls <= 40
    assert simulator.state.calls() == simulator.state.calls("GET")


def _stored(db_path: Path) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        db = await Database.open(db_path)
        try:
            return await doctor_store.doctor_view(db)
        finally:
            await db.close()

    return asyncio.run(read())


def test_normal_mode_confirms_every_guess_it_has_evidence_for(
    simulator: RunningSimulator, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_everything(simulator)
    status, found = _doctor(capsys)
    assert status == 0
    assert {check: f["verdict"] for check, f in found.items()} == dict.fromkeys(
        [str(c) for c in doctor.Check], "confirmed")
    assert all(f["learned"] == {} for f in found.values())
    _read_only(simulator)
    stored = _stored(env)
    assert len(stored["findings"]) == len(doctor.Check)
    assert stored["contradicted"] == 0
    assert stored["learned"] == []


def test_another_identification_type_is_contradicted_with_its_evidence(
    simulator: RunningSimulator, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulator.state.person_create_contact(name="Ferretería Ochoa SRL", identification=RNC,
                                          identificationType="NIT", type=["provider"])
    simulator.state.clear_log()
    status = main(["doctor"])
    printed = capsys.readouterr().out
    assert status == 1
    assert "contradicted  identification type codes" in printed
    assert "has type 'NIT'" in printed
    assert "learned: default now writes identification_type.RNC = 'NIT'" in printed
    _read_only(simulator)


def test_an_empty_account_has_no_evidence_and_no_contradiction(
    simulator: RunningSimulator, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the checks that need no data (the headers, the chart) may conclude anything."""
    simulator.state.clear_log()
    status, found = _doctor(capsys)
    assert status == 0, [f for f in found.values() if f["verdict"] == "contradicted"]
    needs_data = set(doctor.Check) - {doctor.Check.RATE_HEADERS, doctor.Check.RESET_COUNTDOWN,
                                      doctor.Check.CATEGORIES_PAGING}
    assert {found[c]["verdict"] for c in needs_data} == {"no evidence"}
    assert all(f["verdict"] != "contradicted" for f in found.values())
    _read_only(simulator)
    assert _stored(env)["learned"] == []


@pytest.mark.parametrize("sim_config", [CONTRARY])
def test_contrary_mode_is_contradicted_learned_and_forgotten(
    simulator: RunningSimulator, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The contrary account's own data: the codes and the NCF field are learned; the other
    contradictions are reported only. `--forget` drops what was learned."""
    simulator.state.clear_log()
    status, found = _doctor(capsys)
    assert status == 1
    verdicts = {check: f["verdict"] for check, f in found.items()}
    assert verdicts == {
        "identification_types": "contradicted", "ncf_field": "contradicted",
        "rate_headers": "confirmed", "reset_countdown": "confirmed",
        "categories_paging": "confirmed",  # the whole list, read completely either way
        "identification_search": "confirmed", "name_search": "contradicted",
        "date_filter": "contradicted", "currency_shape": "contradicted",
        "subscription_urls": "no evidence",
    }
    _read_only(simulator)
    learned = {s["setting"]: s["value"] for s in _stored(env)["learned"]}
    assert learned == {"identification_type.RNC": "RN", "identification_type.CEDULA": "CE",
                       "ncf_field": "numberTemplate.fullNumber"}

    simulator.state.clear_log()
    assert main(["doctor", "--forget"]) == 0
    assert "forgot 3 learned setting(s)" in capsys.readouterr().out
    assert simulator.state.calls() == 0
    assert _stored(env)["learned"] == []
