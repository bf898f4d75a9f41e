"""Closed-loop campaign simulation on synthetic data: a campaign's offers and their outcomes, drawn
from the TRUE response curves, as the retailer's systems would log them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lab.evaluation import truth_rows
from lab.synthetic import true_response_probability


def campaign_outcomes(
    plan: pd.DataFrame,
    truth_response: pd.DataFrame,
    sent_at: pd.Timestamp,
    rng: np.random.Generator,
    campaign_id: str,
    window_days: int = 7,
) -> pd.DataFrame:
    """A campaign's rows for the offers table, as the retailer's systems would log them: every planned
    offer sent at `sent_at` with its level and propensity, redeemed (bought from the group within the
    window) with its TRUE probability under the synthetic truth. Appended to the offers table, they are
    what the next fit learns from: the closed loop a campaign runs in."""
    rows = truth_rows(truth_response, plan)
    level = plan["discount_level"].to_numpy(float)
    ladder = np.unique(level)
    p = true_response_probability(rows, ladder)[np.arange(len(plan)), np.searchsorted(ladder, level)]
    bought = rng.random(len(plan)) < p
    sent = pd.Timestamp(sent_at)
    redeemed = sent + pd.Timedelta(days=3)  # any time inside the window; no interaction line carries it
    return pd.DataFrame(
        {
            "offer_id": [f"{campaign_id}-{i}" for i in range(len(plan))],
            "customer_id": plan["customer_id"].to_numpy(),
            "product_group": plan["product_group"].to_numpy(),
            "discount_level": level,
            "sent_at": np.full(len(plan), sent.to_datetime64()).astype("datetime64[ns]"),
            "expires_at": np.full(len(plan), (sent + pd.Timedelta(days=window_days)).to_datetime64()).astype(
                "datetime64[ns]"
            ),
            "channel": "email",
            "redeemed_at": pd.Series(np.where(bought, redeemed.to_datetime64(), np.datetime64("NaT"))).astype(
                "datetime64[ns]"
            ),
            "propensity": plan["propensity"].to_numpy(float),
            "campaign_id": campaign_id,
        }
    )
