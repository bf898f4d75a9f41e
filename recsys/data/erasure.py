"""Erasure keys: how an erased customer is recognised without keeping the customer's id.

The event store records `erasure_key(customer_id, secret)` for every erased customer: HMAC-SHA256 of
the id under a secret that is not in the database, so a copy of the store does not give the ids back
(pseudonymous ids are short; an unkeyed hash of them is reversed by trying every id). Serving and
every batch job compute the key with this one function and the secret from `load_secret`, so they can
never disagree on it; batch jobs drop erased customers with `drop_erased` before anything else.

The secret: RECSYS_ERASURE_SECRET when set (every host sharing a store must use the same one), else a
random secret kept in a file created with mode 0600: next to a SQLite store (`<db file>.erasure-key`),
in the project directory for other stores (`erasure.key`), or at RECSYS_ERASURE_SECRET_FILE. The
store records `secret_fingerprint(secret)` so that a job holding another secret stops instead of
matching nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from recsys.defaults import PROJECT_DIR

#: Canonical tables keyed by customer: every row of an erased customer goes.
CUSTOMER_TABLES: tuple[str, ...] = ("customers", "interactions", "offers", "household_members", "engagement")

SECRET_ENV = "RECSYS_ERASURE_SECRET"
SECRET_FILE_ENV = "RECSYS_ERASURE_SECRET_FILE"
_CHECK_MESSAGE = b"recsys erasure secret check v1"


def erasure_key(customer_id: str, secret: bytes) -> str:
    """HMAC-SHA256 (hex) of the UTF-8 customer id under `secret`: what the `erasures` table stores."""
    return hmac.new(secret, str(customer_id).encode("utf-8"), hashlib.sha256).hexdigest()


def legacy_key(customer_id: str) -> str:
    """The unkeyed SHA-256 older stores recorded; only used to recognise (and re-key) those rows."""
    return hashlib.sha256(str(customer_id).encode("utf-8")).hexdigest()


def secret_fingerprint(secret: bytes) -> str:
    """A value the store may keep to tell whether a job holds the same secret (it reveals nothing)."""
    return hmac.new(secret, _CHECK_MESSAGE, hashlib.sha256).hexdigest()


def secret_file(events_url: str, env: Mapping[str, str] | None = None) -> Path:
    """Where the generated secret lives for the store at `events_url` (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get(SECRET_FILE_ENV):
        return Path(env[SECRET_FILE_ENV])
    if events_url.startswith("sqlite:///"):
        database = events_url.split("?", 1)[0][len("sqlite:///") :]
        if database and database != ":memory:":
            return Path(database + ".erasure-key")
    return PROJECT_DIR / "erasure.key"


def load_secret(events_url: str, env: Mapping[str, str] | None = None, create: bool = True) -> bytes:
    """The erasure secret for the store at `events_url`: the environment's, else the file's (created
    once with mode 0600 when `create`; concurrent creators agree on the first one written)."""
    env = os.environ if env is None else env
    if env.get(SECRET_ENV):
        return env[SECRET_ENV].encode("utf-8")
    path = secret_file(events_url, env)
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"erasure secret file {path} does not exist (set {SECRET_ENV})")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # atomic; fails if another process created it first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    text = path.read_text().strip()
    if len(text) < 32:
        raise ValueError(f"erasure secret file {path} holds fewer than 32 characters")
    return text.encode("utf-8")


def customer_ids(tables: Mapping[str, pd.DataFrame]) -> set[str]:
    """Every customer id in the customer-keyed tables."""
    ids: set[str] = set()
    for name in CUSTOMER_TABLES:
        frame = tables.get(name)
        if frame is not None and "customer_id" in frame.columns:
            ids.update(frame["customer_id"].dropna().astype(str).unique())
    return ids


def erased_ids(
    ids: Iterable[str], keys: Iterable[str], secret: bytes, legacy: Iterable[str] = ()
) -> set[str]:
    """The ids whose keyed erasure key is among `keys` (or whose unkeyed key is among `legacy`)."""
    wanted, old = set(keys), set(legacy)
    if not wanted and not old:
        return set()
    return {i for i in map(str, ids) if erasure_key(i, secret) in wanted or (old and legacy_key(i) in old)}


def drop_customers(tables: Mapping[str, pd.DataFrame], gone: set[str]) -> tuple[dict[str, pd.DataFrame], int]:
    """Tables without any row of the customers in `gone`, and how many of them held rows.

    Tables not keyed by customer (products, campaign_products) are returned as they are; nothing is
    copied when no customer matches.
    """
    out = dict(tables)
    present = gone & customer_ids(tables)
    if not present:
        return out, 0
    for name in CUSTOMER_TABLES:
        frame = out.get(name)
        if frame is not None and "customer_id" in frame.columns:
            keep = ~frame["customer_id"].astype(str).isin(present)
            out[name] = frame[keep].reset_index(drop=True)
    return out, len(present)


def drop_erased(
    tables: Mapping[str, pd.DataFrame], keys: Iterable[str], secret: bytes, legacy: Iterable[str] = ()
) -> tuple[dict[str, pd.DataFrame], int]:
    """Tables without any row of an erased customer, and how many distinct customers were dropped."""
    return drop_customers(tables, erased_ids(customer_ids(tables), keys, secret, legacy))
