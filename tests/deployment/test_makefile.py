"""The two set-up commands: on a fresh checkout `make run` installs only what the service needs,
`make test` the development tools too (read from `make -n`: what make would do, not done)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.procs import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make here")


def planned(target: str, venv: Path) -> list[str]:
    """The commands `make TARGET` would run with a virtualenv not yet made at `venv`."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    return done.stdout.splitlines()


def test_make_run_installs_the_service_only_then_runs_it(tmp_path: Path) -> None:
    commands = planned("run", tmp_path / "venv")

    installs = [c for c in commands if " install " in c and "--upgrade pip" not in c]
    assert installs == [f"{tmp_path}/venv/bin/pip install -q -e ."]
    assert commands[-1] == f"{tmp_path}/venv/bin/alegra-sync run"


def test_make_test_installs_the_development_tools(tmp_path: Path) -> None:
    commands = planned("test", tmp_path / "venv")

    assert f"{tmp_path}/venv/bin/pip install -q -e '.[dev]'" in commands
    assert f"{tmp_path}/venv/bin/pytest -n 3" in commands
