"""The exceptions that leave the Alegra client, and nothing else does.

    AlegraError
    ├── Retryable            try again later; the caller keeps its work and backs off
    │   ├── RateLimited      429: wait `reset_after` seconds (X-Rate-Limit-Reset)
    │   ├── Unavailable      5xx / 503 maintenance on a request known not to have changed anything
    │   ├── TransportFailed  connection refused, DNS, read timeout on a read-only request
    │   └── OutcomeUnknown   a write (POST/PUT) was sent and no answer came back (timeout, 5xx):
    │                        it may or may not exist in Alegra. Look it up by its natural key
    │                        before sending it again; never repeat it blindly.
    └── Rejected             4xx other than 429: Alegra said no; repeating will not help
        ├── AuthFailed       401 (wrong e-mail/token), 402 (suspended / plan limit), 403
        └── NotFound         404

    Stopping                 not an AlegraError: nothing failed. The process is stopping and the
                             request never went out (it would have had to wait for the rate
                             budget). Hand the work back as it is; the next run resumes it.

Every exception carries the evidence a receipt's failure record needs: HTTP status, Alegra's
application `code`, its `message`, and the method and path (never the credentials).
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
