"""Planner on small synthetic data: diet respected, budget kept, monotone response, reasons, the
public plan-on-curves call, scikit-learn conventions, CLI errors."""

import numpy as np
import pandas as pd
import pytest

from lab.synthetic import generate
from recsys.offers import budget_margin
from recsys.offers.economics import price_options
from recsys.offers.explain import no_offer_reason
from recsys.offers.lifecycle import TierRule
from recsys.offers.planner import DiscountPlanner


@pytest.fixture(scope="module")
def data():
    return generate(n_customers=400, n_products=400, weeks=16, seed=3)


@pytest.fixture(scope="module")
def planner(data):
    return DiscountPlanner().fit(data.tables)


def test_budget_kept_and_columns(planner):
    plan = planner.plan(25.0)
    assert plan["expected_cost"].sum() <= 25.0
    assert len(plan) > 0
    assert (plan["discount_level"] > 0).all()
    assert plan.groupby("customer_id").size().max() <= planner.max_per_customer
    assert plan["reason"].str.len().min() > 10
    assert planner.plan(50.0)["expected_profit"].sum() >= plan["expected_profit"].sum() - 1e-9


def test_vegan_never_gets_meat(data):
    tables = dict(data.tables)
    customers = tables["customers"].copy()
    customers["diet_exclusions"] = customers["diet_exclusions"].astype(object)
    customers.loc[:, "diet_exclusions"] = "vegan"
    customers["consent_marketing"] = True
    tables["customers"] = customers
    tables["household_members"] = tables["household_members"].iloc[0:0]
    planner = DiscountPlanner(tiers={}).fit(tables)
    meat = {
        "BEEF",
        "CHICKEN",
        "PORK",
        "LUNCHMEAT",
        "BACON",
        "SEAFOOD - FROZEN",
        "FLUID MILK PRODUCTS",
        "CHEESE",
        "EGGS",
    }
    assert not set(planner.candidates_["product_group"]) & meat
    plan = planner.plan(1e6)
    assert not set(plan["product_group"]) & meat


def test_response_model_is_monotone_in_level(planner):
    assert type(planner.response_).__name__ == "StructuralResponse"  # logged levels: the fitted model
    assert np.all(np.diff(planner.curves_, axis=1) >= 0)
    assert planner.cost_factor_ >= 1.0 and planner.cost_ratio_["source"] == "held-out logged offers"


def test_the_plan_is_priced_so_its_own_cost_bound_holds(planner):
    planner.plan(25.0)
    boots = planner.bootstrap_curves_
    assert boots.shape[1:] == planner.curves_.shape and len(boots) >= 2
    assert np.allclose(planner.curves_, boots.mean(axis=0, dtype=float))  # plans on the bagged curves
    widen = max(planner.cost_bound_["form_ratio"], planner.cost_ratio_["caution"])
    bound = planner.cost_bound_["upper"] * widen
    assert planner.cost_factor_ >= max(1.0, planner.cost_ratio_["upper"])
    assert planner.cost_factor_ * (1 + budget_margin.PROMISE_TOLERANCE) >= bound
    assert planner.budget_promise_["plan_cost_bound"]["parameter_sd"] > 0
    # the plan is also priced under the other response forms; the bound carries their largest ratio
    assert planner.form_curves_.shape == (len(budget_margin.ALTERNATIVE_HALVES), *planner.curves_.shape)
    assert planner.cost_bound_["form_ratio"] >= 1.0


def test_without_logged_levels_the_prior_plans(data):
    tables = {**data.tables, "offers": data.tables["offers"].iloc[0:0]}
    prior = DiscountPlanner().fit(tables)
    assert type(prior.response_).__name__ == "PriorResponse" and prior.cost_ratio_ is None
    assert prior.cost_factor_ == 1.15 and np.all(np.diff(prior.curves_, axis=1) >= 0)


def test_planner_follows_scikit_learn_conventions(planner):
    fresh = DiscountPlanner(n_groups=4)
    assert not [k for k in vars(fresh) if k.endswith("_")]  # __init__ stores parameters only
    assert fresh.get_params()["n_groups"] == 4 and fresh.get_params()["tiers"] is None
    assert planner.tiers_ and planner.get_params()["tiers"] is None  # defaults resolved in fit


def test_plan_on_curves_is_the_plan_and_changes_nothing(planner):
    plan = planner.plan(25.0)
    same = planner.plan_on_curves(planner.curves_, 25.0, cost_factor=planner.cost_factor_)
    assert np.array_equal(same.choice, planner.allocation_.choice) and same.cost == planner.allocation_.cost
    before = planner.curves_.copy()
    flat = np.repeat(planner.curves_[:, :1], planner.curves_.shape[1], axis=1)  # nobody responds
    assert (planner.plan_on_curves(flat, 1e6).choice == -1).all()
    assert np.array_equal(planner.curves_, before) and planner.plan(25.0).equals(plan)
    with pytest.raises(ValueError, match="curves must be candidates x levels"):
        planner.plan_on_curves(flat[:, :3], 1.0)


def _reason(planner, customer, curves, tiers=None):
    """`no_offer_reason` for one customer on given curves and tier rules."""
    rows = np.flatnonzero(planner.candidates_["customer_id"].to_numpy() == customer)
    options = price_options(curves, planner.candidates_, planner.levels, tiers or planner.tiers_, 1.0)
    return no_offer_reason(
        planner.candidates_.iloc[rows],
        curves[rows],
        options.profit[rows],
        options.cost[rows],
        options.allowed[rows],
        np.asarray(planner.levels),
        tiers or planner.tiers_,
        0.0,
    )


def test_zero_uplift_customer_gets_nothing_and_hears_why(planner):
    cid = planner.candidates_["customer_id"].iloc[0]
    p = planner.curves_.copy()
    rows = planner.candidates_["customer_id"].to_numpy() == cid
    p[rows] = p[rows, :1]  # this customer buys with the same probability whatever the discount
    choice = planner.plan_on_curves(p, 1e6).choice
    assert (choice[rows] == -1).all()
    assert "no discount pays for itself" in _reason(planner, cid, p)


def test_no_offer_reasons_name_the_cause(planner):
    plan = planner.plan(5.0)  # a tight budget: a high shadow price leaves profitable customers out
    reasons = planner.no_offer_reasons(plan)
    assert not set(reasons.index) & set(plan["customer_id"])
    assert set(reasons.index) | set(plan["customer_id"]) == set(planner.candidates_["customer_id"])
    assert reasons.str.contains("below the campaign's cut-off").any()
    strict = {t: TierRule(max_level=0.0) for t in planner.tiers_}  # no tier may get a discount
    profitable = planner.candidates_["customer_id"][(planner.options_.profit > 0).any(axis=1)].iloc[0]
    assert "tier rule" in _reason(planner, profitable, planner.curves_, strict)


def test_cli_bad_input(tmp_path, capsys):
    from cli.main import main

    assert (
        main(
            [
                "offers",
                "--data",
                str(tmp_path / "missing"),
                "--budget",
                "10",
                "--out",
                str(tmp_path / "o.csv"),
            ]
        )
        == 2
    )
    assert "not a directory" in capsys.readouterr().err
    assert main(["offers", "--data", str(tmp_path), "--budget", "-1", "--out", str(tmp_path / "o.csv")]) == 2
    assert "budget" in capsys.readouterr().err
    args = ["offers", "--data", str(tmp_path), "--budget", "5", "--out", str(tmp_path / "o.csv")]
    assert main([*args, "--lookback-weeks", "0"]) == 2
    assert "--lookback-weeks must be >= 1, got 0" in capsys.readouterr().err
    assert main([*args, "--explore", "2"]) == 2
    assert "--explore must be a share in [0, 1], got 2.0" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_lookback_shorter_than_the_training_history_is_refused(data):
    with pytest.raises(ValueError, match=r"min_history_weeks \(12\) exceeds lookback_weeks \(8\)"):
        DiscountPlanner(lookback_weeks=8).fit(data.tables)
    with pytest.raises(ValueError, match="lookback_weeks must be a whole number of weeks >= 1, got 2.5"):
        DiscountPlanner(lookback_weeks=2.5, min_history_weeks=2).fit(data.tables)


def test_cli_writes_plan(tmp_path, data, capsys):
    from cli.main import main
    from lab.synthetic import write_synthetic

    write_synthetic(data, tmp_path / "syn")
    out = tmp_path / "offers.csv"
    base = ["offers", "--no-track", "--data", str(tmp_path / "syn"), "--budget", "20"]
    assert main([*base, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    promise_line = printed.out.split("budget promise: planned cost")[1].splitlines()[0]
    assert "held-out logged offers" in promise_line and "plan's own cost bound" in promise_line
    # a small log: the check rests on few offers, so the planner promises nothing and says so
    assert "no promise: the cost check rests on" in promise_line
    assert "warning: no promise: the cost check rests on" in printed.err
    # a lookback shorter than the planner's training-history minimum: that minimum follows it
    short = tmp_path / "short.csv"
    assert main([*base, "--out", str(short), "--lookback-weeks", "8"]) == 0
    assert len(pd.read_csv(short)) > 0
    plan = pd.read_csv(out)
    assert list(plan.columns) == [
        "customer_id",
        "product_group",
        "discount_level",
        "propensity",
        "expected_uplift",
        "expected_profit",
        "reason",
        "best_send_time",
        "channel",
    ]
    assert (plan["propensity"] == 1.0).all()
    explored = tmp_path / "explored.csv"
    assert main([*base, "--out", str(explored), "--explore", "0.5"]) == 0
    assert (pd.read_csv(explored)["propensity"] < 1.0).any()


def test_lookback_bounds_the_history_behind_every_estimate(data):
    # data: 16 weeks. With a 4-week lookback the candidates' deal share is the share of the last 4
    # weeks' lines only: exactly what point_in_time_baseline gives for that window.
    from recsys.offers.baseline import point_in_time_baseline
    from recsys.offers.groups import organic_interactions

    short = DiscountPlanner(lookback_weeks=4, min_history_weeks=2).fit(data.tables)
    assert type(short.response_).__name__ == "StructuralResponse"
    organic = organic_interactions(data.tables["interactions"], data.tables["offers"])

    def deal_share_over_4_weeks(rows, at) -> np.ndarray:
        base = point_in_time_baseline(
            organic,
            data.tables["products"],
            rows["customer_id"].to_numpy(),
            rows["product_group"].to_numpy(),
            at,
            lookback_weeks=4,
        )
        return base["deal_share"].to_numpy()

    cand = short.candidates_
    expected = deal_share_over_4_weeks(cand, np.full(len(cand), short.as_of_.to_datetime64()))
    assert np.allclose(short.features_["deal_proneness"], expected, equal_nan=True)
    # and the training offers' inputs come from the 4 weeks before each offer was sent
    frame = short.training_frame_
    at_send = deal_share_over_4_weeks(frame, frame["sent_at"].to_numpy())
    assert np.allclose(frame["deal_proneness"], at_send, equal_nan=True)
    # the candidate groups' spend history (shares, basket values) covers the same 4 weeks
    recent = data.tables["interactions"]["timestamp"] >= short.as_of_ - pd.Timedelta(weeks=4)
    bought_lately = set(data.tables["interactions"].loc[recent, "customer_id"])
    assert set(short.history_.index.get_level_values("customer_id")) == bought_lately
    assert short.history_["weeks_observed"].max() <= 4.0
    # the whole 16 weeks (default lookback 26) sees more lines, so different shares for some customers
    full = DiscountPlanner(min_history_weeks=2).fit(data.tables)
    assert len(full.candidates_) > len(short.candidates_)  # groups bought only before the 4 weeks

    def deal_by_pair(planner) -> pd.Series:
        pairs = pd.MultiIndex.from_frame(planner.candidates_[["customer_id", "product_group"]])
        return pd.Series(planner.features_["deal_proneness"].to_numpy(), index=pairs)

    both = deal_by_pair(short).to_frame("short").join(deal_by_pair(full).rename("full"), how="inner")
    assert len(both) > 0
    assert not np.allclose(both["short"], both["full"], equal_nan=True)
