"""Coupon-campaign redemption on real data (Complete Journey): who redeems a campaign they were sent?

Complete Journey's coupons carry no discount level, so this is not a level-response model; it checks
on real households that the lifecycle and history features predict offer response at all. Split by
time: train on campaigns that started before `split`, test on the later ones, and compare with a
deal-proneness-only baseline measured on the same test offers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.offers.lifecycle import lifecycle_metrics

CAMPAIGN_FEATURES: tuple[str, ...] = (
    "deal_proneness",
    "discount_share",
    "log_frequency",
    "log_monetary",
    "log_recency",
    "log_visit_ratio",
    "churn_risk",
    "log_campaign_spend",
    "campaign_products_bought",
    "campaign_share",
    "campaign_weeks",
    "campaign_size",
)


def campaign_offer_features(tables: dict[str, pd.DataFrame], lookback_weeks: int = 12) -> pd.DataFrame:
    """One row per campaign offer (household x campaign) with features as of the campaign start."""
    offers = tables["offers"]
    offers = offers[offers["campaign_id"].notna()].copy()
    inter = tables["interactions"]
    cprod = tables["campaign_products"]
    parts = []
    life_cache: dict[pd.Timestamp, pd.DataFrame] = {}
    for cid, grp in offers.groupby("campaign_id"):
        start = grp["sent_at"].min()
        if start not in life_cache:
            life_cache[start] = lifecycle_metrics(inter, start, churn="heuristic")
        life = life_cache[start].reindex(grp["customer_id"].to_numpy())
        products = cprod.loc[cprod["campaign_id"] == cid, "product_id"]
        ts = inter["timestamp"]
        window = inter[(ts < start) & (ts >= start - pd.Timedelta(weeks=lookback_weeks))]
        hits = window[window["product_id"].isin(products)]
        spend = hits.groupby("customer_id")["value"].sum()
        distinct = hits.groupby("customer_id")["product_id"].nunique()
        total = window.groupby("customer_id")["value"].sum()
        cust = grp["customer_id"]
        expires = grp["expires_at"].fillna(start + pd.Timedelta(weeks=4))
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": cust.to_numpy(),
                    "campaign_id": cid,
                    "start": start,
                    "redeemed": grp["redeemed_at"].notna().astype(int).to_numpy(),
                    "deal_proneness": life["deal_proneness"].fillna(0.0).to_numpy(),
                    "discount_share": life["discount_share"].fillna(0.0).to_numpy(),
                    "log_frequency": np.log1p(life["frequency"].fillna(0.0).to_numpy()),
                    "log_monetary": np.log1p(life["monetary"].fillna(0.0).to_numpy()),
                    "log_recency": np.log1p(life["recency_days"].fillna(365.0).to_numpy()),
                    "log_visit_ratio": np.log(life["visit_ratio"].fillna(1.0).clip(0.05, 20).to_numpy()),
                    "churn_risk": life["churn_risk"].fillna(1.0).to_numpy(),
                    "log_campaign_spend": np.log1p(cust.map(spend).fillna(0.0).to_numpy(float)),
                    "campaign_products_bought": np.log1p(cust.map(distinct).fillna(0).to_numpy(float)),
                    "campaign_share": (cust.map(spend).fillna(0.0) / cust.map(total).where(lambda s: s > 0))
                    .fillna(0.0)
                    .to_numpy(float),
                    "campaign_weeks": ((expires - grp["sent_at"]).dt.days / 7.0).to_numpy(float),
                    "campaign_size": np.log1p(float(len(products))),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def redemption_benchmark(
    tables: dict[str, pd.DataFrame], test_share: float = 0.3, seed: int = 0
) -> dict[str, float]:
    """Time-split AUC of a gradient-boosted redemption model vs deal proneness alone.

    The latest campaigns (by start date) holding about `test_share` of the offers are the test set.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    frame = campaign_offer_features(tables)
    starts = frame.groupby("campaign_id")["start"].min().sort_values()
    cum = frame["campaign_id"].value_counts().reindex(starts.index).cumsum() / len(frame)
    test_campaigns = cum.index[cum > 1 - test_share]
    split = starts[test_campaigns].min()
    test = frame["campaign_id"].isin(test_campaigns).to_numpy()
    x = frame[list(CAMPAIGN_FEATURES)].to_numpy(float)
    y = frame["redeemed"].to_numpy()
    model = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=50, random_state=seed
    ).fit(x[~test], y[~test])
    p = model.predict_proba(x[test])[:, 1]
    return {
        "train_offers": int((~test).sum()),
        "test_offers": int(test.sum()),
        "train_campaigns": int(len(starts) - len(test_campaigns)),
        "test_campaigns": int(len(test_campaigns)),
        "split_date": str(pd.Timestamp(split).date()),
        "test_redemption_rate": float(y[test].mean()),
        "auc_model": float(roc_auc_score(y[test], p)),
        "auc_deal_proneness": float(roc_auc_score(y[test], frame.loc[test, "deal_proneness"])),
        "auc_campaign_history": float(roc_auc_score(y[test], frame.loc[test, "log_campaign_spend"])),
    }
