"""Who is asking: consent, diet profile, model row and fresh history of one customer.

Precedence, most recent word first: the event store's override (what the app told us since the
data was prepared) > the customers table of the data set (published into the store,
serving/publish.py) > the server default. An erased id keeps only what was recorded after the
erasure; its rows in the model are never used again.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from recsys.diet.profiles import EMPTY_PROFILE, DietProfile, parse_profile
from recsys.ranking.selection import Shopper
from serving.events import CustomerState
from serving.runtime import Runtime


def diet_profile(diet: list[str] | None) -> DietProfile | None:
    """Request diet override -> profile; ValueError (-> 400) names an unknown diet."""
    if diet is None:
        return None
    if any(not name.strip() for name in diet):
        raise ValueError(f"diet names must not be empty, got {diet!r}")
    return _parse_diet(tuple(diet))


@lru_cache(maxsize=1024)
def _parse_diet(diet: tuple[str, ...]) -> DietProfile:
    """Parsed once per distinct list (profiles are immutable; errors are not cached)."""
    return parse_profile(list(diet))


def resolve(
    rt: Runtime,
    customer_id: str,
    state: CustomerState,
    override: DietProfile | None,
    default_consent: bool,
) -> Shopper:
    record = state.record
    base = None if state.erased else state.base
    if record is not None:
        consent, marketing = record.consent_personalisation, record.consent_marketing
        excl, prefs = record.diet_exclusions, record.diet_preferences
    elif base is not None:
        consent, marketing = base.consent_personalisation, base.consent_marketing
        excl, prefs = base.diet_exclusions, base.diet_preferences
    else:
        consent, marketing, excl, prefs = default_consent, False, None, None
    # The diet is applied with or without consent to personalise: it is a safety rule.
    profile = override if override is not None else _stored_profile(excl, prefs)
    empty = np.empty(0, dtype=np.int64)
    if not consent:
        known = record is not None or base is not None
        return Shopper(customer_id, False, -1, empty, empty, profile, marketing, known)
    user_idx = -1 if state.erased else rt.user_index(customer_id)
    model_hist = rt.history(user_idx)
    if not state.fresh_items:  # the common case: nothing new since the model was trained
        return Shopper(customer_id, True, user_idx, model_hist, empty, profile, marketing)
    fresh = rt.item_index(list(state.fresh_items))
    fresh = np.setdiff1d(fresh[fresh >= 0], model_hist)
    history = np.union1d(model_hist, fresh) if len(fresh) else model_hist
    return Shopper(customer_id, True, user_idx, history, fresh, profile, marketing)


@lru_cache(maxsize=4096)
def _stored_profile(exclusions: str | None, preferences: str | None) -> DietProfile:
    if not exclusions and not preferences:
        return EMPTY_PROFILE
    try:
        return parse_profile(exclusions, preferences)
    except ValueError:
        # A stored profile we cannot read must not widen what is shown: exclude everything unknown
        # by treating every attribute as excluded (fail-closed), rather than ignoring the profile.
        from recsys.data.schema import DIET_ATTRIBUTES

        return DietProfile(frozenset(DIET_ATTRIBUTES))
