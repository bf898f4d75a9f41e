"""Sticky, uniform assignment: a customer's bucket is a hash of (salt, customer id).

No state is stored: the same id always lands in the same variant of the same experiment, on every
worker and after restarts, and experiments with different salts are independent (SHA-256 makes the
buckets of two salts unrelated). Changing a share moves only the customers at the boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np

from recsys.diet.profiles import parse_profile
from recsys.experiments.config import Experiment

_SCALE = float(2**64)


def bucket(salt: str, customer_id: str) -> float:
    """Uniform in [0, 1): the first 8 bytes of SHA-256(salt ':' id) as a fraction."""
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def buckets(salt: str, customer_ids: Iterable[str]) -> np.ndarray:
    prefix = f"{salt}:".encode()
    return (
        np.fromiter(
            (
                int.from_bytes(hashlib.sha256(prefix + str(c).encode()).digest()[:8], "big")
                for c in customer_ids
            ),
            dtype=np.uint64,
        ).astype(np.float64)
        / _SCALE
    )


def variant_index(shares: Sequence[float], u: np.ndarray | float) -> np.ndarray:
    """Index of the variant whose cumulative-share interval holds each bucket."""
    edges = np.cumsum(np.asarray(shares, dtype=np.float64))
    edges[-1] = 1.0 + 1e-12  # float rounding of the shares must never leave a bucket unassigned
    return np.searchsorted(edges, u, side="right")


def eligible(exp: Experiment, consent: bool, exclusions: Iterable[str] = ()) -> bool:
    """Population rule: personalisation consent always; a diet segment when the config names some
    (a segment matches when the customer's hard exclusions cover all of its exclusions)."""
    if not consent:
        return False
    if exp.population.diets is None:
        return True
    have = set(exclusions)
    return any(parse_profile([d]).exclusions <= have for d in exp.population.diets)


def is_running(exp: Experiment, now: datetime) -> bool:
    if exp.start.tzinfo is None:
        now = now.replace(tzinfo=None)
    return exp.start <= now < exp.stop


def assign(exp: Experiment, customer_id: str, consent: bool, exclusions: Iterable[str] = ()) -> str | None:
    """The variant name, or None when the customer is not in the population."""
    if not eligible(exp, consent, exclusions):
        return None
    i = int(variant_index([v.share for v in exp.variants], bucket(exp.hash_salt, customer_id)))
    return exp.variants[i].name


def assign_many(exp: Experiment, customer_ids: Sequence[str]) -> np.ndarray:
    """Variant names for ids already known to be eligible (analysis, simulation, SRM checks)."""
    idx = variant_index([v.share for v in exp.variants], buckets(exp.hash_salt, customer_ids))
    return np.asarray([v.name for v in exp.variants], dtype=object)[idx]
