"""Secrets and signatures: Standard Webhooks 1.0, signed with the `standardwebhooks` package
(the one a partner verifies with).

A secret is `whsec_` + base64 of 32 random bytes, shown to its partner once and stored encrypted
under CREDENTIALS_KEY (`sync.credentials`). Each attempt is signed at its own time
(`webhook-timestamp`: receivers refuse stale ones), with the same `webhook-id`; while a rotated
secret overlaps, `webhook-signature` holds one `v1,` signature per secret, space-separated.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 -- the format's prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def headers(
    webhook_id: str, body: bytes, signing_secrets: Sequence[str], at: datetime | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (`at`: now)."""
    when = (at or datetime.now(UTC)).replace(microsecond=0)
    signatures = [Webhook(secret).sign(webhook_id, when, body) for secret in signing_secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
