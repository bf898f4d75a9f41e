"""Closed-loop discount campaigns on synthetic data: does the planner learn from its own campaigns?

Each round refits the planner on the offer log, scores its plan (no exploration) at 25/50/100% of the
oracle's unconstrained spend against the TRUE curves, then runs one campaign at `--campaign-budget`
with `--explore` of its offers at a random level. The campaign's outcomes are drawn from the true
curves (`lab.campaigns.campaign_outcomes`) and appended to the offer log for the next round.

The world is frozen between rounds: every campaign is sent in the last week of the history, at the
response the truth holds for the end of the period (the one the oracle plans with), so the rounds
measure learning from the campaigns' own offers, not a changing customer base.

    .venv/bin/python benchmarks/offers_rounds.py [--rounds 4] [--explore 0.1] [--campaign-budget 0.5]
        [--seeds 0 1 2 3 4] [--customers 5000] [--weeks 26] [--jobs 2]

Prints the table and logs it as an MLflow run in the experiment benchmark-offers_rounds
(benchmarks/report.py); nothing is written to benchmarks/results/ (docs/offers.md keeps the findings).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.offers import (  # noqa: E402
    hindsight_rows,
    offers_at_default_rate,
    seed_frames,
)
from benchmarks.report import log_run, markdown_table  # noqa: E402
from lab.campaigns import campaign_outcomes  # noqa: E402
from lab.evaluation import policy_comparison, true_curves, true_score  # noqa: E402
from lab.synthetic import generate  # noqa: E402
from lab.synthetic_catalog import GROUPS  # noqa: E402
from recsys.offers.planner import DiscountPlanner  # noqa: E402


def round_rows(planner: DiscountPlanner, data, budgets: list[float]) -> list[dict]:
    """The exploit plan's TRUE share of the oracle and cost at each budget, with the hindsight margin."""
    comp = policy_comparison(planner, data.truth["response"], budgets)
    comp = pd.concat([comp, hindsight_rows(planner, data, comp, budgets)], ignore_index=True)
    rows = []
    for b, sub in comp.groupby("budget", sort=True):
        sub = sub.set_index("policy")
        m, o, h = (
            sub.loc["model policy"],
            sub.loc["oracle (true curves)"],
            sub.loc["model, hindsight cost margin"],
        )
        rows.append(
            {
                "budget share": round(b / budgets[-1], 2),
                "model / oracle": m["true_profit"] / o["true_profit"],
                "true cost / budget": m["true_cost"] / b,
                "cost factor": planner.cost_factor_,
                "hindsight factor": h["cost_factor"],
                "hindsight: model / oracle": h["true_profit"] / o["true_profit"],
            }
        )
    return rows


def send_campaign(
    planner: DiscountPlanner, truth: pd.DataFrame, budget: float, as_of, rng, campaign_id: str
) -> tuple[pd.DataFrame, dict]:
    """Plan a campaign (with the planner's exploration), draw its redemptions from the truth in the
    last week before `as_of`, and score it: (offer rows to log, summary columns)."""
    plan = planner.plan(budget)
    new = campaign_outcomes(plan, truth, as_of - pd.Timedelta(weeks=1), rng, campaign_id)
    c, choice = planner.candidates_, planner.allocation_.choice
    value, margin = c["value"].to_numpy(), c["margin"].to_numpy()
    true = true_curves(planner, truth)
    s = true_score(choice, true, value, margin, planner.levels)
    o = true_score(planner.plan_on_curves(true, budget).choice, true, value, margin, planner.levels)
    predicted = true_score(choice, planner.curves_, value, margin, planner.levels).cost  # the model's
    key = ["customer_id", "product_group"]
    v_new = new[key].merge(c[key + ["value"]], on=key, how="left")["value"].to_numpy()
    realised = float((new["discount_level"] * v_new * new["redeemed_at"].notna()).sum())
    return new, {
        "campaign offers": float(len(new)),
        "campaign / oracle": s.profit / o.profit,
        "campaign true cost / budget": s.cost / budget,
        "campaign realised / predicted cost": realised / predicted,
        "campaign true / predicted cost": s.cost / predicted,
    }


def run_seed(args: argparse.Namespace, seed: int) -> pd.DataFrame:
    start = time.perf_counter()
    data = generate(
        n_customers=args.customers,
        n_products=3000,
        weeks=args.weeks,
        seed=seed,
        offers_per_customer=offers_at_default_rate(args.weeks),
    )
    truth = data.truth["response"]
    tables = dict(data.tables)
    as_of = tables["interactions"]["timestamp"].max().normalize() + pd.Timedelta(days=1)
    margins = {g.category: g.margin for g in GROUPS}
    lookback = args.lookback or args.weeks
    rng = np.random.default_rng(10_000 + seed)
    budgets: list[float] = []
    out = []
    for r in range(args.rounds + 1):
        planner = DiscountPlanner(
            margin=margins, lookback_weeks=lookback, campaign_cost_check=args.campaign_check
        ).fit(tables, as_of)
        if not budgets:
            full = planner.plan_on_curves(true_curves(planner, truth), 1e12).cost
            budgets = [round(f * full, 2) for f in (0.25, 0.5, 1.0)]
        logged = len(planner.training_frame_)
        rows = round_rows(planner, data, budgets)
        ratio = planner.cost_ratio_
        check = {"cost check on": ratio["source"], "checked offers": float(ratio["offers"])}
        campaign: dict = {}
        if r < args.rounds:
            planner.set_params(explore=args.explore, explore_seed=1000 * seed + r)  # read by plan()
            new, campaign = send_campaign(
                planner, truth, args.campaign_budget * budgets[-1], as_of, rng, f"S{seed}R{r + 1}"
            )
            tables["offers"] = pd.concat([tables["offers"], new], ignore_index=True)
        for row in rows:
            out.append({"seed": seed, "round": r, "logged offers used": logged, **row, **check, **campaign})
        print(f"seed {seed} round {r}: {time.perf_counter() - start:.0f}s", flush=True)
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4, help="campaigns run (and refits after them)")
    ap.add_argument("--explore", type=float, default=0.1, help="share of each campaign's offers explored")
    ap.add_argument(
        "--campaign-budget", type=float, default=0.5, help="campaign budget, share of the oracle's full spend"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--weeks", type=int, default=26)
    ap.add_argument("--lookback", type=int, default=None, help="planner lookback (default: --weeks)")
    ap.add_argument(
        "--campaign-check",
        choices=["max", "instead", "off"],
        default=DiscountPlanner().campaign_cost_check,
        help="DiscountPlanner(campaign_cost_check=...): cost check on past campaigns' offers",
    )
    ap.add_argument("--jobs", type=int, default=1, help="seeds run at a time")
    args = ap.parse_args()
    table = pd.concat(seed_frames(run_seed, args), ignore_index=True)
    last = table[table["round"] == args.rounds]
    first = table[table["round"] == 0]
    md = (
        f"# Offers benchmark: {args.rounds} campaign rounds, {args.explore:.0%} explored per campaign\n\n"
        f"Generated by `benchmarks/offers_rounds.py --rounds {args.rounds} --explore {args.explore:g} "
        f"--campaign-budget {args.campaign_budget:g} --weeks {args.weeks} --campaign-check {args.campaign_check}` ({args.customers:,} customers, seeds "
        f"{', '.join(map(str, args.seeds))}). Round 0 is the one-shot benchmark; each later round refits on "
        "the offer log after one more campaign, sent in the last week at the end-of-period truth. "
        "'model / oracle' and 'true cost / budget' score the plan WITHOUT exploration at each budget share; "
        "'campaign' columns score the explored campaign that was sent. 'hindsight': the model's curves with "
        "the cost factor that, known from the truth, makes the true cost meet the budget.\n\n"
        + markdown_table(table, "{:.3f}")
        + f"\n\nRound 0: model / oracle min {first['model / oracle'].min():.3f}, mean "
        f"{first['model / oracle'].mean():.3f}, true cost / budget max {first['true cost / budget'].max():.3f}. "
        f"Round {args.rounds}: min {last['model / oracle'].min():.3f}, mean {last['model / oracle'].mean():.3f}, "
        f"true cost / budget max {last['true cost / budget'].max():.3f}; hindsight min "
        f"{last['hindsight: model / oracle'].min():.3f}.\n"
    )
    print(md)
    params = {
        k: getattr(args, k) for k in ("rounds", "explore", "campaign_budget", "seeds", "customers", "weeks")
    }
    params.update(lookback=args.lookback or args.weeks, campaign_check=args.campaign_check)
    metrics = {
        "round0.model_over_oracle.min": float(first["model / oracle"].min()),
        "round0.model_over_oracle.mean": float(first["model / oracle"].mean()),
        "last.model_over_oracle.min": float(last["model / oracle"].min()),
        "last.model_over_oracle.mean": float(last["model / oracle"].mean()),
        "last.true_cost_over_budget.max": float(last["true cost / budget"].max()),
        "all.true_cost_over_budget.max": float(table["true cost / budget"].max()),
        "last.hindsight_over_oracle.min": float(last["hindsight: model / oracle"].min()),
    }
    log_run("offers_rounds", params, metrics, tables={"offers_rounds.csv": table})


if __name__ == "__main__":
    main()
