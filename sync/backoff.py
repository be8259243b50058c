"""The one backoff formula: `base × 2^(failures − 1)`, capped, times a random jitter factor.

The Alegra client (reads after a transient error), the receipt flow (a receipt rescheduled after
a retryable error) and the events lane (a delivery whose confirmation failed) each keep their own
base, cap and jitter; the formula is this one. Pure but for the jitter's randomness.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FULL_JITTER = (0.0, 1.0)  # anywhere from nothing to the full delay ("full jitter")
NO_JITTER = (1.0, 1.0)
MAX_DOUBLINGS = 62  # far past any cap; keeps 2^n a float can hold


@dataclass(frozen=True)
class Backoff:
    base_s: float
    cap_s: float
    jitter: tuple[float, float] = NO_JITTER  # the delay is multiplied by uniform(low, high)

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row (1: after the first)."""
        doublings = min(MAX_DOUBLINGS, max(0, failures - 1))
        delay = min(self.cap_s, self.base_s * 2.0**doublings)
        low, high = self.jitter
        return delay if low == high == 1.0 else delay * random.uniform(low, high)
