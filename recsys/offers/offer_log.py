"""The offer log as training data: logged offers with their point-in-time inputs and outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.offers.baseline import point_in_time_baseline, structural_features
from recsys.offers.groups import organic_interactions


def logged_offer_frame(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    min_history_weeks: float = 2.0,
    lookback_weeks: int = 26,
) -> pd.DataFrame | None:
    """The response model's training rows: logged offers (level and propensity known, window closed
    before `as_of`) with its inputs computed AT EACH OFFER'S OWN SEND TIME from the organic history
    strictly before it (`point_in_time_baseline`, `structural_features`), so an offer's outcome never
    leaks into its own features. Offers whose customer had less than `min_history_weeks` of history
    at send time are dropped (no usable baseline yet). `bought`: redeemed within the offer's window.

    Columns: the `structural_features`, customer_id, product_group, level, propensity, bought,
    window_weeks, sent_at, campaign_id. None when there are no such offers (Complete Journey coupons
    carry no level). `attrs['shape_prior']` holds the visit-trend prior, reused for the candidates.
    """
    offers = tables.get("offers")
    if offers is None or offers.empty or "propensity" not in offers:
        return None
    off = offers[offers["discount_level"].notna() & offers["propensity"].notna()]
    expires = off["expires_at"].fillna(off["sent_at"] + pd.Timedelta(weeks=1))
    keep = (expires <= as_of).to_numpy()
    off, expires = off[keep], expires[keep]
    if off.empty:
        return None
    window = ((expires - off["sent_at"]).dt.total_seconds() / 604800.0).clip(lower=1 / 7).to_numpy()
    bought = (off["redeemed_at"].notna() & (off["redeemed_at"] <= expires)).astype(int).to_numpy()
    organic = organic_interactions(tables["interactions"], offers)
    base = point_in_time_baseline(
        organic,
        tables["products"],
        off["customer_id"].to_numpy(),
        off["product_group"].to_numpy(),
        off["sent_at"].to_numpy(),
        lookback_weeks=lookback_weeks,
    )
    frame = structural_features(base, window).assign(
        customer_id=off["customer_id"].to_numpy(),
        product_group=off["product_group"].to_numpy(),
        level=off["discount_level"].to_numpy(float),
        propensity=off["propensity"].to_numpy(float),
        bought=bought,
        window_weeks=window,
        sent_at=off["sent_at"].to_numpy(),
        campaign_id=off["campaign_id"].to_numpy() if "campaign_id" in off else None,
    )
    ok = (base["observed_weeks"].to_numpy() >= min_history_weeks) & base["base_trip_rate"].notna().to_numpy()
    frame = frame[ok].reset_index(drop=True)
    frame.attrs["shape_prior"] = base.attrs.get("shape_prior")  # reused for the candidates
    return frame if len(frame) else None


def campaign_planned_offers(frame: pd.DataFrame) -> np.ndarray:
    """Mask of the logged offers a plan chose: sent in a campaign (a campaign id) at a level the plan
    decided (propensity >= 0.5; explored offers at another level have far less). Their realised cost
    is the one a plan's cost check should match: they were selected as a plan selects."""
    if "campaign_id" not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame["campaign_id"].notna().to_numpy() & (frame["propensity"].to_numpy(float) >= 0.5)
