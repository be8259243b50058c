"""Fault injection: the knobs tests and benchmarks turn to make the simulator misbehave.

The knobs apply to `/api/v1` requests only (never to `/_sim/`); `gate.py` reads them on every
request and `deliveries.py` reads `drop_delivery_rate`. They are plain mutable fields so a test
can set them directly on `state.faults` or through `POST /_sim/faults`.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Faults:
    """What goes wrong, from now on. Counters (`burst_429`, `hang_after_commit`) count down."""

    error_rate: float = 0.0  # share of API requests answered with error_status, before acting
    error_status: int = 500
    burst_429: int = 0  # the next N requests get 429 regardless of the budget
    latency_s: float = 0.0  # added to every API request
    hang_after_commit: int = 0  # the next N successful writes commit, then hang before answering
    hang_s: float = 10.0
    drop_delivery_rate: float = 0.0  # share of webhook deliveries silently never sent
    wrap_errors: bool = False  # error bodies as {"error": {...}}, a variant Alegra sometimes sends

    def update(self, changes: dict[str, Any]) -> None:
        """Set the given knobs. Raises ValueError naming an unknown knob or a wrong type."""
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {sorted(known)}")
            current = getattr(self, name)
            if isinstance(current, bool) != isinstance(value, bool) or not isinstance(
                value, int | float
            ):
                raise ValueError(f"fault {name!r} takes a {type(current).__name__}")
            setattr(self, name, type(current)(value))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def roll_error(self) -> bool:
        """True when this request should be answered with `error_status`."""
        return self.error_rate > 0 and random.random() < self.error_rate

    def take_burst(self) -> bool:
        """Consume one forced 429, if any are left."""
        if self.burst_429 <= 0:
            return False
        self.burst_429 -= 1
        return True

    def take_hang(self) -> bool:
        """Consume one hang-after-commit, if any are left."""
        if self.hang_after_commit <= 0:
            return False
        self.hang_after_commit -= 1
        return True

    def roll_drop(self) -> bool:
        """True when this webhook delivery should silently never be sent."""
        return self.drop_delivery_rate > 0 and random.random() < self.drop_delivery_rate
