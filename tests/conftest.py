"""Fixtures shared by every test suite. Product fixtures live with the suites that need them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import configuration

from sync.simulator.state import SimConfig
from tests.support.servers import RunningSimulator, running_simulator


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis (under the schemathesis fuzz test) keeps its files in pytest's cache folder,
    not in the checkout: no `.hypothesis/` left behind."""
    if config.cache is not None:
        configuration.set_hypothesis_home_dir(config.cache.mkdir("hypothesis"))


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
