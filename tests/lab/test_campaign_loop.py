"""Closed loop: a campaign's simulated outcomes are valid offer rows that the next fit learns from."""

import numpy as np
import pandas as pd
import pytest

from lab.campaigns import campaign_outcomes
from lab.synthetic import generate
from recsys.data.validation import validate_tables
from recsys.offers import budget_margin
from recsys.offers.offer_log import logged_offer_frame
from recsys.offers.planner import DiscountPlanner


@pytest.fixture(scope="module")
def data():
    return generate(n_customers=300, n_products=400, weeks=20, seed=5)


def _truth(pairs: pd.DataFrame, base_logit: float, uplift_max: float) -> pd.DataFrame:
    return pairs.assign(base_logit=base_logit, uplift_max=uplift_max, uplift_half=0.05)


def test_outcomes_follow_the_true_curve_known_answer():
    plan = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "product_group": ["Dairy", "Dairy", "Bakery", "Bakery"],
            "discount_level": [0.0, 0.30, 0.0, 0.30],
            "propensity": [0.1, 0.9, 1.0, 1.0],
        }
    )
    # base chance ~0 and an uplift of 60 logits: 0% never buys, 30% always does
    truth = _truth(plan[["customer_id", "product_group"]], -30.0, 60.0)
    sent = pd.Timestamp("2024-06-01 09:00")
    out = campaign_outcomes(plan, truth, sent, np.random.default_rng(0), "C1")
    assert out["redeemed_at"].notna().tolist() == [False, True, False, True]
    assert (out["redeemed_at"].dropna() <= out["expires_at"][out["redeemed_at"].notna()]).all()
    assert out["propensity"].tolist() == [0.1, 0.9, 1.0, 1.0]
    assert out["offer_id"].is_unique and set(out["campaign_id"]) == {"C1"}
    empty = campaign_outcomes(plan.iloc[:0], truth, sent, np.random.default_rng(0), "C0")
    assert empty.empty and list(empty.columns) == list(out.columns)


def test_redemption_rate_matches_the_true_probability():
    n = 20_000
    plan = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "product_group": "Dairy",
            "discount_level": 0.10,
            "propensity": 1.0,
        }
    )
    truth = _truth(plan[["customer_id", "product_group"]], 0.0, 0.0)  # P = 0.5 at every level
    out = campaign_outcomes(plan, truth, pd.Timestamp("2024-06-01"), np.random.default_rng(1), "C2")
    assert abs(out["redeemed_at"].notna().mean() - 0.5) < 0.015


def test_appended_campaign_is_valid_and_trains_the_next_fit(data):
    tables = dict(data.tables)
    as_of = tables["interactions"]["timestamp"].max().normalize() + pd.Timedelta(days=1)
    planner = DiscountPlanner().fit(tables, as_of)
    plan = planner.plan(200.0)
    assert len(plan) > 0
    new = campaign_outcomes(
        plan, data.truth["response"], as_of - pd.Timedelta(weeks=1), np.random.default_rng(2), "R1"
    )
    tables["offers"] = pd.concat([tables["offers"], new], ignore_index=True)
    _, problems = validate_tables(tables)
    assert problems == []
    before = logged_offer_frame(data.tables, as_of, 12.0, planner.lookback_weeks)
    after = logged_offer_frame(tables, as_of, 12.0, planner.lookback_weeks)
    added = after[after["sent_at"] == (as_of - pd.Timedelta(weeks=1))]
    assert len(after) - len(before) == len(added) > 0
    assert (
        added["bought"].sum()
        == new.set_index(["customer_id", "product_group"])
        .loc[pd.MultiIndex.from_frame(added[["customer_id", "product_group"]]), "redeemed_at"]
        .notna()
        .sum()
    )


def _with_campaign(data, redeemed: bool) -> tuple[dict, pd.Timestamp, int]:
    """The tables plus one campaign of the planner's own offers, every one redeemed (or none)."""
    tables = dict(data.tables)
    as_of = tables["interactions"]["timestamp"].max().normalize() + pd.Timedelta(days=1)
    plan = DiscountPlanner().fit(tables, as_of).plan(300.0)
    sent = as_of - pd.Timedelta(weeks=1)
    new = campaign_outcomes(plan, data.truth["response"], sent, np.random.default_rng(3), "C9")
    new["redeemed_at"] = (sent + pd.Timedelta(days=2)) if redeemed else pd.NaT
    new["redeemed_at"] = new["redeemed_at"].astype("datetime64[ns]")
    tables["offers"] = pd.concat([tables["offers"], new], ignore_index=True)
    return tables, as_of, int((new["discount_level"] > 0).sum())


@pytest.mark.slow  # two planner fits with bootstrap refits (~15 s)
def test_cost_check_moves_to_past_campaigns_when_there_are_enough(data, monkeypatch):
    tables, as_of, n = _with_campaign(data, redeemed=True)
    assert n >= 50
    monkeypatch.setattr(budget_margin, "MIN_CAMPAIGN_OFFERS", 50)  # a small world: fewer offers suffice
    monkeypatch.setattr(budget_margin, "MIN_COST_CHECK_OFFERS", 1)
    planner = DiscountPlanner().fit(tables, as_of)
    # every planned offer redeemed: realised cost = L x v per offer, predicted L x v x P(buy) < it
    assert planner.cost_ratio_["source"] == "offers of past campaigns"
    assert planner.cost_ratio_["offers"] <= n
    assert planner.cost_ratio_["ratio"] > 1.5
    assert planner.cost_factor_ >= planner.cost_ratio_["upper"]  # or the plan's own bound, if larger
    monkeypatch.setattr(budget_margin, "MIN_CAMPAIGN_OFFERS", n + 1)
    held_out = DiscountPlanner().fit(tables, as_of)
    assert held_out.cost_ratio_["source"] == "held-out logged offers"


@pytest.mark.slow  # two planner fits with bootstrap refits (~19 s)
def test_campaign_that_cost_nothing_still_keeps_the_floor_and_max_keeps_the_held_out_check(data, monkeypatch):
    tables, as_of, _ = _with_campaign(data, redeemed=False)
    monkeypatch.setattr(budget_margin, "MIN_CAMPAIGN_OFFERS", 50)
    monkeypatch.setattr(budget_margin, "MIN_COST_CHECK_OFFERS", 1)
    alone = DiscountPlanner(campaign_cost_check="instead").fit(tables, as_of)
    assert alone.cost_ratio_["source"] == "offers of past campaigns"
    assert alone.cost_ratio_["ratio"] == 0.0
    assert alone.cost_factor_ >= 1.0  # the floor (and the plan's own bound) still hold
    # the default takes the larger bound: a campaign that cost nothing never lowers the margin
    both = DiscountPlanner().fit(tables, as_of)
    off = DiscountPlanner(campaign_cost_check="off").fit(tables, as_of)
    assert both.cost_ratio_["source"] == off.cost_ratio_["source"] == "held-out logged offers"
    assert both.cost_factor_ == pytest.approx(off.cost_factor_)


def test_unknown_campaign_check_is_refused(data):
    with pytest.raises(
        ValueError, match=r"campaign_cost_check must be one of \('max', 'instead', 'off'\), got 'all'"
    ):
        DiscountPlanner(campaign_cost_check="all").fit(data.tables)
