"""API keys with scopes, configured as hashes: who may read, write and administer.

RECSYS_API_KEYS is a comma-separated list of entries `sha256:<hex digest of the key>:<scopes>`, scopes
joined with `+` from read, write, admin (e.g. `sha256:9f86...:read+write`); `recsys keys new --scope
read` prints a fresh key and its entry. The server keeps only digests, so its environment does not
give the keys away. A bare entry without `sha256:` is a plaintext key of the older format: it still
works, with every scope, and start-up logs a warning.

Reads need a key with `read` unless RECSYS_READ_REQUIRES_KEY=false; feedback, consent and erasure
need `write`; model reload needs `admin`. Every configured digest is compared with
hmac.compare_digest and the loop never exits early, so response time does not reveal which key was
close. No configured key means the protected endpoints are closed, not open.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from serving.errors import ApiError

logger = logging.getLogger("serving")

SCOPES: tuple[str, ...] = ("read", "write", "admin")
ENV = "RECSYS_API_KEYS"
_ENTRY = re.compile(r"sha256:([0-9a-fA-F]{64}):([a-z+]+)")


@dataclass(frozen=True)
class ApiKey:
    digest: str  # sha256 hex of the key
    scopes: frozenset[str]


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def config_entry(key: str, scopes: Iterable[str]) -> str:
    """The RECSYS_API_KEYS entry for `key` with `scopes` (what `recsys keys new` prints)."""
    wanted = sorted(set(scopes), key=SCOPES.index)
    return f"sha256:{key_digest(key)}:{'+'.join(wanted)}"


def new_key(scopes: Iterable[str]) -> tuple[str, str]:
    """A fresh random key and its config entry."""
    scopes = list(scopes)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    key = "rk_" + secrets.token_urlsafe(32)
    return key, config_entry(key, scopes)


def parse_keys(text: str | None) -> tuple[ApiKey, ...]:
    """The keys of a RECSYS_API_KEYS value; ValueError naming a malformed entry (never the key)."""
    keys: list[ApiKey] = []
    for n, raw in enumerate((text or "").split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        if not entry.startswith("sha256:"):
            logger.warning("%s entry %d is a plaintext key (all scopes); use `recsys keys new`", ENV, n)
            keys.append(ApiKey(key_digest(entry), frozenset(SCOPES)))
            continue
        match = _ENTRY.fullmatch(entry)
        scopes = set(match.group(2).split("+")) if match else set()
        if not match or not scopes or scopes - set(SCOPES):
            raise ValueError(
                f"{ENV} entry {n} is not 'sha256:<64 hex digits>:<scopes>' with scopes from "
                f"{'+'.join(SCOPES)}"
            )
        keys.append(ApiKey(match.group(1).lower(), frozenset(scopes)))
    return tuple(keys)


def keys_from_env(env: Mapping[str, str]) -> tuple[ApiKey, ...]:
    return parse_keys(env.get(ENV))


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


def check_key(headers: Mapping[str, str], keys: tuple[ApiKey, ...], scope: str) -> None:
    """Raise 401 without a key; 403 with a wrong one, one lacking `scope`, or no keys configured."""
    key = presented_key(headers)
    if not key:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
    if not keys:
        raise ApiError(403, f"this server has no API keys configured ({ENV})")
    given = key_digest(key).encode("ascii")
    found: ApiKey | None = None
    for k in keys:
        if hmac.compare_digest(given, k.digest.encode("ascii")):
            found = k
    if found is None:
        raise ApiError(403, "invalid API key")
    if scope not in found.scopes:
        raise ApiError(403, f"this API key lacks the {scope!r} scope")
