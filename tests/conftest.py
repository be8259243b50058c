"""Fixtures shared by every test suite. Product fixtures live with the suites that need them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.simulator.state import SimConfig
from tests.support.servers import RunningSimulator, running_simulator

# Hypothesis (under schemathesis) keeps its caches in `.hypothesis/` of the working directory,
# which is the checkout: keep them in the temporary directory instead. Read when first written.
HYPOTHESIS_HOME = Path(tempfile.gettempdir()) / f"alegra-sync-hypothesis-{os.getuid()}"
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(HYPOTHESIS_HOME))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sim_config() -> SimConfig:
    """The simulator's configuration for a test: a 1 s rate window and fast retries.

    Override this fixture in a test module (or parametrize it) for a different account.
    """
    return SimConfig(window_s=1.0, delivery_retry_delays=(0.05, 0.05, 0.05),
                     handshake_timeout_s=1.0, delivery_timeout_s=1.0)


@pytest.fixture
def simulator(sim_config: SimConfig) -> Iterator[RunningSimulator]:
    """A fresh simulated Alegra served on a loopback port for one test."""
    with running_simulator(sim_config) as running:
        yield running
