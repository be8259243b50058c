"""deploy/'s systemd units agree with the code they run: the exit status they do not restart on
is the one a configuration error gives, and their stop timeouts cover what a stop waits for."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from receiver.receipts import MAX_WAIT_S
from sync.alegra.client import DEFAULT_TIMEOUT
from sync.settings import CONFIG_ERROR_EXIT
from sync.store.db import BUSY_TIMEOUT_MS, UNAVAILABLE_EXIT
from tests.support.procs import ROOT

DEPLOY = ROOT / "deploy"
SERVICES = ("alegra-sync-web.service", "alegra-sync-worker.service")


def unit(name: str) -> dict[str, str]:
    """The unit's `Key=value` settings (continuation lines joined; comments skipped)."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / name).read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


@pytest.mark.parametrize("name", SERVICES)
def test_the_units_do_not_restart_after_a_configuration_error(name: str) -> None:
    """RestartPreventExitStatus is CONFIG_ERROR_EXIT: what the CLI, the worker and the web process
    exit with on a bad setting (tests/deployment/test_config_errors.py), and nothing else."""
    service = unit(name)

    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == str(CONFIG_ERROR_EXIT)


@pytest.mark.parametrize("name", SERVICES)
def test_the_units_keep_restarting_while_postgresql_does_not_answer(name: str) -> None:
    """A PostgreSQL server not reachable at start-up is UNAVAILABLE_EXIT (tests/pg_wire): not
    among the statuses the units refuse to restart on, and no start limit ends the retries."""
    service = unit(name)

    assert str(UNAVAILABLE_EXIT) not in service["RestartPreventExitStatus"].split()
    assert service["StartLimitIntervalSec"] == "0"


def test_the_worker_stop_timeout_covers_a_request_in_flight_and_its_checkpoint() -> None:
    """On SIGTERM no lane waits for the rate budget; what a stop can wait for is a request
    already sent (connect + write + read timeouts) and then the step's checkpoint write (SQLite's
    busy timeout). The unit waits that long before SIGKILL, and not much longer."""
    request = [DEFAULT_TIMEOUT.connect, DEFAULT_TIMEOUT.write, DEFAULT_TIMEOUT.read]
    assert None not in request  # each is bounded
    bound = sum(t or 0.0 for t in request) + BUSY_TIMEOUT_MS / 1000

    stop = float(unit("alegra-sync-worker.service")["TimeoutStopSec"])

    assert bound <= stop <= bound + 15


def test_the_web_stop_timeout_covers_a_waiting_answer() -> None:
    """uvicorn's graceful shutdown outlasts the longest `Prefer: wait`, and systemd waits for
    uvicorn's graceful shutdown before SIGKILL."""
    service = unit("alegra-sync-web.service")
    graceful = re.search(r"--timeout-graceful-shutdown (\d+)", service["ExecStart"])
    assert graceful is not None

    assert MAX_WAIT_S < int(graceful.group(1)) < float(service["TimeoutStopSec"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing wrong but the missing /opt/alegra-sync install."""
    names = [*SERVICES, "alegra-sync-backup.service", "alegra-sync-backup.timer"]
    for name in names:
        shutil.copy(DEPLOY / name, tmp_path / name)

    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in names)],
        capture_output=True, text=True, timeout=60, check=False,
    )

    complaints = [
        line for line in (result.stdout + result.stderr).splitlines()
        if line.startswith(tuple(names)) and "/opt/alegra-sync/" not in line
    ]
    assert complaints == []
