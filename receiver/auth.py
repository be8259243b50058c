"""Partner and admin keys: `Authorization: Bearer <key>`.

`authenticate(request)` returns the `Partner` holding the key or raises a 401 `ApiError` with
`WWW-Authenticate: Bearer` (RFC 6750); `require_admin(request)` also raises 403 for a partner
that is not an admin. The key is looked up by its sha256, never compared or logged in clear.
"""

from __future__ import annotations

from starlette.requests import Request

from receiver.errors import ApiError
from sync.store.partners import Partner, find_partner_by_key

__all__ = ["Partner", "authenticate", "require_admin"]

_REALM = 'Bearer realm="alegra-sync"'


async def authenticate(request: Request) -> Partner:
    """The partner whose key the request carries. Raises ApiError 401 when missing or unknown."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise _unauthorized("send the partner key as `Authorization: Bearer <key>`", _REALM)
    partner = await find_partner_by_key(request.app.state.db, key)
    if partner is None:
        raise _unauthorized("unknown or revoked key", f'{_REALM}, error="invalid_token"')
    request.state.partner = partner
    return partner


async def require_admin(request: Request) -> Partner:
    """The authenticated partner if it is an admin. Raises ApiError 401, or 403 for a partner."""
    partner = await authenticate(request)
    if not partner.is_admin:
        raise ApiError(403, "forbidden", "this endpoint needs an admin key")
    return partner


def _unauthorized(message: str, challenge: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})
