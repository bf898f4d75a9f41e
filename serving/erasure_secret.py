"""The event store's erasure secret: claimed once per store, and old unkeyed erasure rows re-keyed.

Erasure keys are HMACs under a secret (recsys.data.erasure). The first process with keyed hashes that
opens a store records the secret's fingerprint and, in the same transaction, moves any rows written
before keyed hashes (unkeyed SHA-256) to `erasures_legacy`. A process opening the store with another
secret stops: its keys would match nobody, and erased customers would come back.

`rekey_legacy` turns legacy rows of known customers (the model's at service start, the data set's when
it is published: serving/publish.py) into keyed rows; the rest stay in `erasures_legacy`, where batch jobs still match them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from recsys.data.erasure import erasure_key, legacy_key, secret_fingerprint

logger = logging.getLogger("serving")


class SecretMismatch(RuntimeError):
    """The store's erasure keys were made with another secret."""


def claim_secret(engine: Engine, secret: bytes) -> None:
    """Record this secret's fingerprint in a store that has none; refuse a store made with another."""
    from serving.events import erasure_secret, erasures, erasures_legacy

    mine = secret_fingerprint(secret)
    with engine.begin() as conn:
        known = set(conn.execute(select(erasure_secret.c.fingerprint)).scalars())
        if mine in known:
            return
        if known:
            raise SecretMismatch(
                f"the event store {engine.url.render_as_string(hide_password=True)} holds erasure keys made "
                "with another secret; set RECSYS_ERASURE_SECRET (or its file) to the one it was written with"
            )
        old = conn.execute(select(erasures.c.id_hash, erasures.c.erased_at)).all()
        if old:
            conn.execute(insert(erasures_legacy), [{"id_hash": h, "erased_at": t} for h, t in old])
            conn.execute(delete(erasures))
        conn.execute(insert(erasure_secret), [{"fingerprint": mine}])


def rekey_legacy(engine: Engine, secret: bytes, customer_ids: Iterable[str]) -> int:
    """Replace the legacy rows of these customers with keyed rows; returns how many were re-keyed."""
    from serving.events import erasures, erasures_legacy

    with engine.begin() as conn:
        legacy = dict(conn.execute(select(erasures_legacy.c.id_hash, erasures_legacy.c.erased_at)).all())
        if not legacy:
            return 0
        found = [
            (str(i), legacy[legacy_key(i)]) for i in set(map(str, customer_ids)) if legacy_key(i) in legacy
        ]
        for cid, erased_at in found:
            key = erasure_key(cid, secret)
            conn.execute(delete(erasures).where(erasures.c.id_hash == key))
            conn.execute(insert(erasures), [{"id_hash": key, "erased_at": erased_at}])
            conn.execute(delete(erasures_legacy).where(erasures_legacy.c.id_hash == legacy_key(cid)))
    return len(found)


def known_customers(runtime: Any) -> set[str]:
    """Every customer id a serving runtime knows: the model's users (the data set's customers are
    re-keyed when they are published, serving/publish.py)."""
    return set(map(str, runtime.model.users_.to_list()))


def rekey_at_start(store: Any, runtime: Any) -> int:
    """`rekey_legacy` for the customers a starting service knows; a store that cannot be reached now
    is logged, not fatal (batch jobs still match the legacy rows; the next start re-keys them)."""
    try:
        return rekey_legacy(store.engine, store.secret, known_customers(runtime))
    except SQLAlchemyError as exc:
        logger.warning("legacy erasure keys not re-keyed (event store: %s)", type(exc).__name__)
        return 0
