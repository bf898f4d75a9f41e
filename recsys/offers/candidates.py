"""The candidates of a plan: for each eligible customer, the product groups they buy most.

Why the groups they already buy: a discount on a group the customer never buys rarely moves them,
and the expected spend it is paid on is the least known. The candidates are each customer's
`n_groups` largest shares of recent spend among the groups the eligibility rules allow them
(`recsys.offers.eligibility`), with the expected spend per purchase, the margin rate and the
customer's lifecycle columns (segment, tier, churn risk, deal proneness, send time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.offers.eligibility import OfferRules, diet_compliant, eligible_pairs, may_receive_offers
from recsys.offers.groups import group_margin, group_value

#: Without retailer rules (simulations): a group is offered under a diet when at least this share of
#: its products comply.
DEFAULT_COMPLIANT_SHARE = 0.5

LIFECYCLE_COLUMNS: tuple[str, ...] = (
    "segment",
    "tier",
    "visit_change",
    "recency_days",
    "churn_risk",
    "deal_proneness",
    "best_send_time",
)


def eligible(pairs: pd.DataFrame, tables: dict[str, pd.DataFrame], rules: OfferRules | None) -> np.ndarray:
    """Mask of the (customer_id, product_group) rows that may be offered: the retailer's `rules`, or
    without them marketing consent and diet compliance at DEFAULT_COMPLIANT_SHARE only."""
    if rules is not None:
        return eligible_pairs(pairs, tables, rules)
    consenting = pairs["customer_id"].astype(str).isin(may_receive_offers(tables["customers"])).to_numpy()
    return consenting & diet_compliant(pairs, tables, DEFAULT_COMPLIANT_SHARE)


def candidate_table(
    history: pd.DataFrame,
    lifecycle: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    rules: OfferRules | None,
    n_groups: int,
    margin: float | dict[str, float],
) -> pd.DataFrame:
    """One row per candidate (customer_id, product_group), customers in id order, each customer's
    groups by share of their spend (ties by name): grp_share, value, margin and LIFECYCLE_COLUMNS."""
    hist = history.reset_index()
    hist = hist[eligible(hist[["customer_id", "product_group"]], tables, rules)]
    hist = hist.sort_values(["customer_id", "grp_share", "product_group"], ascending=[True, False, True])
    hist = hist[hist.groupby("customer_id").cumcount() < n_groups]
    cand = hist[["customer_id", "product_group", "grp_share"]].reset_index(drop=True)
    cand["value"] = group_value(history, cand)
    cand["margin"] = group_margin(cand["product_group"], margin)
    life = lifecycle.reindex(cand["customer_id"].to_numpy())
    for col in LIFECYCLE_COLUMNS:
        cand[col] = life[col].to_numpy()
    return cand
