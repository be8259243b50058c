"""The secret in the webhook URL: `PUBLIC_URL/webhooks/alegra/<token>`.

Alegra signs nothing, so the URL is the only secret a delivery can prove it knows. The token is
an itsdangerous signature (its own salt, SHA-256) of a fixed payload under one of the configured
`SECRET_KEY`s. Keys are newest first: new URLs are made with key 0, and a token made with any
configured key still verifies, so subscriptions keep working while they are moved to a new key.
Tokens are deterministic (no timestamp): the same key always gives the same URL, which is how
`webhooks register` recognises its own subscriptions, and checking a token is a constant-time
comparison with each key's token. Never log a token; log `fingerprint()`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import urlsplit

from itsdangerous import URLSafeSerializer
from starlette.datastructures import Secret

SALT = "alegra-webhook-url"
PAYLOAD = "v1"
PATH_PREFIX = "/webhooks/alegra/"
MASK_FROM_LENGTH = 16  # path segments this long may be secrets: masked when printed


def _serializer(key: Secret | str) -> URLSafeSerializer:
    return URLSafeSerializer(
        str(key), salt=SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )


def make_token(keys: Sequence[Secret | str], key_index: int = 0) -> str:
    """The URL token signed with `keys[key_index]` (0 = the newest key). Raises IndexError."""
    token: str = _serializer(keys[key_index]).dumps(PAYLOAD)
    return token


def verify_token(token: str, keys: Sequence[Secret | str]) -> int | None:
    """The index of the key that signed `token`, or None if no configured key did.

    The payload is fixed and the signature deterministic, so a token is valid exactly when it
    equals the one a key makes: compared in constant time, with no parsing of the input.
    """
    given = token.encode("utf-8", "replace")
    for index, expected in enumerate(_expected_tokens(tuple(str(k) for k in keys))):
        if hmac.compare_digest(given, expected):
            return index
    return None


@functools.lru_cache(maxsize=16)  # keys are fixed for a process's life: one signing per key
def _expected_tokens(keys: tuple[str, ...]) -> tuple[bytes, ...]:
    return tuple(make_token(keys, i).encode() for i in range(len(keys)))


class TokenTable:
    """The valid tokens, made once at start-up: the request path's check is one dict lookup.

    A string-keyed dict compares a candidate only against an entry with the same (randomly
    seeded) hash, so a guess learns nothing from the timing; a miss goes on to `verify_token`
    anyway, so an unknown token costs the same constant-time comparisons as before.
    """

    def __init__(self, keys: Sequence[Secret | str]) -> None:
        self._keys = tuple(keys)
        tokens = all_tokens(self._keys)
        # Lowest index wins when two configured keys are equal, as in verify_token.
        self._index = {token: i for i, token in reversed(list(enumerate(tokens)))}

    def key_index(self, token: str) -> int | None:
        """As `verify_token(token, keys)`."""
        index = self._index.get(token)
        return index if index is not None else verify_token(token, self._keys)


def all_tokens(keys: Sequence[Secret | str]) -> list[str]:
    """Every valid token (one per key), for `logs.register_secrets`."""
    return [make_token(keys, i) for i in range(len(keys))]


def fingerprint(token: str) -> str:
    """A short, non-reversible tag of a token, safe to log (to tell attempts apart)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:8]


def webhook_url(public_url: str, keys: Sequence[Secret | str], key_index: int = 0) -> str:
    """The full URL Alegra should deliver to."""
    return f"{public_url.rstrip('/')}{PATH_PREFIX}{make_token(keys, key_index)}"


def token_of_url(url: str) -> str | None:
    """The token segment of a URL that has our webhook path, else None."""
    path = urlsplit(url if "://" in url else f"//{url}").path
    if PATH_PREFIX not in path:
        return None
    token = path.split(PATH_PREFIX, 1)[1].strip("/")
    return token or None


def same_url(a: str, b: str) -> bool:
    """Equal up to the scheme and a trailing slash.

    [unverified] one public client strips the scheme before subscribing, so Alegra may list the
    URL without it; this is the one place that tolerance lives.
    """
    def bare(url: str) -> str:
        return url.split("://", 1)[-1].rstrip("/")

    return bare(a) == bare(b)


def mask_url(url: str) -> str:
    """The URL for printing: our token, or any long path segment (another service's secret,
    perhaps), replaced by its first 4 characters and a fingerprint."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    segments = parts.path.split("/")
    masked = [
        f"{s[:4]}…{fingerprint(s)}" if len(s) >= MASK_FROM_LENGTH else s for s in segments
    ]
    shown = url.replace(parts.path, "/".join(masked), 1) if parts.path else url
    return shown.replace(f"?{parts.query}", "?…", 1) if parts.query else shown
