"""The exceptions that leave the Alegra client, and nothing else does: `Retryable` (`RateLimited`,
`Unavailable`, `TransportFailed`, `OutcomeUnknown`), `Rejected` (`AuthFailed`, `NotFound`), and
`Stopping` (not a failure: never sent). Each carries Alegra's status, code, message, method and
path. The tree and what each means for a receipt: docs/receipts.md ("Errors and retries").
"""

from __future__ import annotations

from typing import Any


class AlegraError(Exception):
    """Base of the tree. `status` is None when no HTTP answer arrived."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.method = method
        self.path = path

    @property
    def retryable(self) -> bool:
        return isinstance(self, Retryable)

    def as_record(self) -> dict[str, Any]:
        """The JSON-able evidence stored on a failed receipt or inbox row."""
        return {
            "kind": type(self).__name__,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "method": self.method,
            "path": self.path,
            "retryable": self.retryable,
        }


class Retryable(AlegraError):
    """Try again later."""


class RateLimited(Retryable):
    """HTTP 429. `reset_after` is the number of seconds until the window resets."""

    def __init__(self, message: str, *, reset_after: float, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reset_after = reset_after


class Unavailable(Retryable):
    """5xx on a request that changed nothing (a read, or a write Alegra refused before acting)."""


class TransportFailed(Retryable):
    """No HTTP answer on a request that is safe to repeat."""


class OutcomeUnknown(Retryable):
    """A write may or may not have happened. Look up by natural key before repeating."""


class Rejected(AlegraError):
    """Alegra refused the request (4xx other than 429)."""


class AuthFailed(Rejected):
    """401, 402 or 403: credentials, suspension, plan limit or permissions."""


class NotFound(Rejected):
    """404."""


class Stopping(Exception):
    """The worker is stopping: this request was not sent, and will not wait for a slot."""


class LeaseExpired(Stopping):
    """This worker's lease on the company may have run out (or another worker holds it): the
    request was not sent. Only the lease's holder calls Alegra for a company (sync/leasing.py)."""
