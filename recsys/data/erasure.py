"""Erasure keys: how an erased customer is recognised without keeping the customer's id.

The service's event store records `erasure_key(customer_id)` for every erased customer (never the id
itself); training drops those customers from the canonical tables with `drop_erased` before it
splits or fits anything. One function for both sides, so they can never disagree on the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import pandas as pd

#: Canonical tables keyed by customer: every row of an erased customer goes.
CUSTOMER_TABLES: tuple[str, ...] = ("customers", "interactions", "offers", "household_members")


def erasure_key(customer_id: str) -> str:
    """SHA-256 hex digest of the customer id (UTF-8): what the `erasures` table stores."""
    return hashlib.sha256(str(customer_id).encode("utf-8")).hexdigest()


def erased_ids(tables: Mapping[str, pd.DataFrame], keys: Iterable[str]) -> set[str]:
    """The customer ids in `tables` whose erasure key is among `keys`."""
    wanted = set(keys)
    if not wanted:
        return set()
    ids: set[str] = set()
    for name in CUSTOMER_TABLES:
        frame = tables.get(name)
        if frame is not None and "customer_id" in frame.columns:
            ids.update(frame["customer_id"].dropna().astype(str).unique())
    return {i for i in ids if erasure_key(i) in wanted}


def drop_erased(
    tables: Mapping[str, pd.DataFrame], keys: Iterable[str]
) -> tuple[dict[str, pd.DataFrame], int]:
    """Tables without any row of an erased customer, and how many distinct customers were dropped.

    Tables not keyed by customer (products, campaign_products) are returned as they are; nothing is
    copied when no customer matches.
    """
    gone = erased_ids(tables, keys)
    out = dict(tables)
    if not gone:
        return out, 0
    for name in CUSTOMER_TABLES:
        frame = out.get(name)
        if frame is not None and "customer_id" in frame.columns:
            keep = ~frame["customer_id"].astype(str).isin(gone)
            out[name] = frame[keep].reset_index(drop=True)
    return out, len(gone)
