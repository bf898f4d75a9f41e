"""Customer profiles: the lifecycle figures the planner uses, one row per customer, for people.

A thin view over `recsys.offers.lifecycle` (one computation, shared by the planner, `recsys customers`
and `/v1/customers/profile`): segment, churn risk and tier, CLV, average order value, visit
frequency, recency and the best time to send an offer. Who may be profiled (consent, erasure) is the
caller's decision; this module only computes.
"""

from __future__ import annotations

import pandas as pd

from recsys.offers.lifecycle import churn_tier, lifecycle_metrics

#: exposed columns, in output order
PROFILE_COLUMNS: tuple[str, ...] = (
    "segment",
    "churn_risk",
    "churn_tier",
    "clv",
    "avg_order_value",
    "frequency",
    "weekly_spend",
    "recency_days",
    "visits",
    "best_send_time",
    "churn_method",
)


def customer_profiles(
    interactions: pd.DataFrame, as_of: str | pd.Timestamp | None = None, churn: str = "auto"
) -> pd.DataFrame:
    """Profiles indexed by the interactions' customer key (customer_id, or any id column named so).

    `interactions` needs customer_id, basket_id, timestamp, value and discount.
    """
    if interactions.empty:
        return pd.DataFrame(columns=list(PROFILE_COLUMNS))
    metrics = lifecycle_metrics(interactions, as_of, churn=churn)
    metrics["churn_tier"] = churn_tier(metrics)
    return metrics[list(PROFILE_COLUMNS)]
