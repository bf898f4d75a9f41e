"""API-key check for write/admin (and optionally read) endpoints.

Keys come from the environment (RECSYS_API_KEYS, comma separated). Every configured key is compared
with hmac.compare_digest and the loop never exits early, so response time does not reveal how much
of a key was right. No configured key means the protected endpoints are closed, not open.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from serving.errors import ApiError


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


def check_key(headers: Mapping[str, str], keys: tuple[str, ...]) -> None:
    """Raise 401 without a key, 403 with a wrong one (or when the server has no keys configured)."""
    key = presented_key(headers)
    if not key:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
    if not keys:
        raise ApiError(403, "this server has no API keys configured (RECSYS_API_KEYS)")
    given = key.encode("utf-8")
    ok = False
    for k in keys:
        ok |= hmac.compare_digest(given, k.encode("utf-8"))
    if not ok:
        raise ApiError(403, "invalid API key")
