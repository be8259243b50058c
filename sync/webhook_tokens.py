"""The secret in the webhook URL: `PUBLIC_URL/webhooks/alegra/<token>`.

Alegra signs nothing, so the URL is the only secret a delivery can prove it knows. The token is
an itsdangerous signature (its own salt, SHA-256) of a fixed payload under one of the configured
`SECRET_KEY`s. Keys are newest first: new URLs are made with key 0, and a token made with any
configured key still verifies, so subscriptions keep working while they are moved to a new key.
Tokens are deterministic (no timestamp): the same key always gives the same URL, which is how
`webhooks register` recognises its own subscriptions. Never log a token; log `fingerprint()`.

Each company has its own URL: its token signs the company id. The company `default` keeps the
token of the one-company service (the payload "v1"), so its subscriptions keep working; any other
company's payload is "v1:<company id>". A token therefore names its company, and the receiver
learns the company from the signature alone (`TokenTable.resolve`): a token of one company never
reaches another's inbox. Checking a token is constant time: a comparison with each key's token
for the default company, itsdangerous's signature check for the others.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeSerializer
from starlette.datastructures import Secret

from sync.store.db import DEFAULT_COMPANY

SALT = "alegra-webhook-url"
PAYLOAD = "v1"  # the default company's (the one-company service's) payload, unchanged
COMPANY_PAYLOAD_PREFIX = "v1:"  # any other company's: "v1:<company id>"
PATH_PREFIX = "/webhooks/alegra/"
MASK_FROM_LENGTH = 16  # path segments this long may be secrets: masked when printed


def _serializer(key: Secret | str) -> URLSafeSerializer:
    return URLSafeSerializer(
        str(key), salt=SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )


def payload_for(company: str) -> str:
    """What a company's token signs: "v1" for `default` (today's token), else "v1:<company>"."""
    return PAYLOAD if company == DEFAULT_COMPANY else f"{COMPANY_PAYLOAD_PREFIX}{company}"


def company_of_payload(payload: object) -> str | None:
    """The company a signed payload names (pure): `default` for "v1", the id after "v1:", or
    None for anything else (including "v1:default", which no token of ours signs)."""
    if payload == PAYLOAD:
        return DEFAULT_COMPANY
    if not isinstance(payload, str) or not payload.startswith(COMPANY_PAYLOAD_PREFIX):
        return None
    company = payload[len(COMPANY_PAYLOAD_PREFIX):]
    return company if company and company != DEFAULT_COMPANY else None


def make_token(
    keys: Sequence[Secret | str], key_index: int = 0, *, company: str = DEFAULT_COMPANY
) -> str:
    """The company's URL token signed with `keys[key_index]` (0 = the newest key).
    Raises IndexError."""
    token: str = _serializer(keys[key_index]).dumps(payload_for(company))
    return token


def verify_token(
    token: str, keys: Sequence[Secret | str], *, company: str = DEFAULT_COMPANY
) -> int | None:
    """The index of the key that signed `token` for `company`, or None if no configured key did
    (a token of another company is None too).

    The payload is fixed per company and the signature deterministic, so a token is valid
    exactly when it equals the one a key makes: compared in constant time, with no parsing of
    the input.
    """
    given = token.encode("utf-8", "replace")
    for index, expected in enumerate(_expected_tokens(tuple(str(k) for k in keys), company)):
        if hmac.compare_digest(given, expected):
            return index
    return None


# Keys are fixed for a process's life: one signing per key and company (a health job or
# `webhooks register --all` checks one company's listing at a time).
@functools.lru_cache(maxsize=1024)
def _expected_tokens(keys: tuple[str, ...], company: str) -> tuple[bytes, ...]:
    return tuple(make_token(keys, i, company=company).encode() for i in range(len(keys)))


Resolved = tuple[str, int]  # (company id, key index)


class TokenTable:
    """The receiver's check: which company and key a URL token belongs to.

    The default company's tokens are made once at start-up, so its check is one dict lookup: a
    string-keyed dict compares a candidate only against an entry with the same (randomly seeded)
    hash, so a guess learns nothing from the timing. Any other token is a signed payload:
    itsdangerous checks its signature with each key (a constant-time comparison) and only then
    reads the company it names. Tokens that verified are remembered (a bounded dict, the same
    lookup as the default's), so a company's steady stream of deliveries is not signed again.
    """

    REMEMBERED = 4096  # verified company tokens kept; past it the table starts over

    def __init__(self, keys: Sequence[Secret | str]) -> None:
        self._keys = tuple(keys)
        self._serializers = tuple(_serializer(k) for k in self._keys)
        tokens = all_tokens(self._keys)
        # Lowest index wins when two configured keys are equal, as in verify_token.
        self._index = {token: i for i, token in reversed(list(enumerate(tokens)))}
        self._verified: dict[str, Resolved] = {}

    def key_index(self, token: str) -> int | None:
        """As `verify_token(token, keys)`: the default company's tokens only."""
        index = self._index.get(token)
        return index if index is not None else verify_token(token, self._keys)

    def resolve(self, token: str) -> Resolved | None:
        """(company, key index) of a token a configured key signed, else None. Never raises."""
        index = self._index.get(token)
        if index is not None:
            return DEFAULT_COMPANY, index
        known = self._verified.get(token)
        if known is not None:
            return known
        found = self._load(token)
        if found is not None:
            if len(self._verified) >= self.REMEMBERED:
                self._verified.clear()
            self._verified[token] = found
        return found

    def _load(self, token: str) -> Resolved | None:
        """Check the signature with each key, newest first; the company its payload names."""
        for index, serializer in enumerate(self._serializers):
            try:
                payload = serializer.loads(token)
            except (BadData, ValueError, UnicodeError):  # a garbled token is just not ours
                continue
            company = company_of_payload(payload)
            return None if company is None else (company, index)
        return None


def all_tokens(keys: Sequence[Secret | str], *, company: str = DEFAULT_COMPANY) -> list[str]:
    """Every valid token of the company (one per key), for `logs.register_secrets`."""
    return [make_token(keys, i, company=company) for i in range(len(keys))]


def fingerprint(token: str) -> str:
    """A short, non-reversible tag of a token, safe to log (to tell attempts apart)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:8]


def webhook_url(
    public_url: str, keys: Sequence[Secret | str], key_index: int = 0,
    *, company: str = DEFAULT_COMPANY,
) -> str:
    """The full URL Alegra should deliver the company's events to."""
    token = make_token(keys, key_index, company=company)
    return f"{public_url.rstrip('/')}{PATH_PREFIX}{token}"


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
