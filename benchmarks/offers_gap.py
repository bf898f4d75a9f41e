"""Where the planner loses to the posterior reference (target 1 of the discount issue), per budget.

    .venv/bin/python benchmarks/offers_gap.py [--seeds 0 1 2] [--weeks 26] [--customers 5000] [--jobs 1]

For each seed and budget, all scored with the TRUE curves (`lab.evaluation.true_score`):

- model / posterior: the planner's plan (its budget promise's cost factor) against the posterior
  reference at the budget (`benchmarks.offers.posterior_rows`);
- spend: posterior at the model's TRUE spend / posterior at the budget: what the budget the promise
  leaves unspent costs a plan that ranks perfectly (given the data);
- ranking: model / posterior at the model's TRUE spend: what the model's curves cost at equal spend;
  model / posterior = spend x ranking;
- factor 1: the model's curves planned with no cost margin (its ceiling; it may overrun the budget);
- hindsight: the smallest cost factor that keeps the TRUE cost within the budget (needs the truth:
  no policy), and the plan it buys;
- which bound sets the factor: the plan's own cost over the bootstrap refits (mean, parameter and
  redemption sd) or the held-out check;
- true / expected cost of the model's plan (the bias the margin has to cover) and, with
  `--optimism`, the bootstrap's estimate of it: each refit plans on its own curves at the same
  factor and its plan is priced by the planning (mean) curves; mean of priced / own cost over the
  refits (Efron's optimism: a refit is to the full fit what the full fit is to the truth).

Prints the table and logs it as an MLflow run in the experiment benchmark-offers (variant
`gap`); nothing is written to benchmarks/results/ (docs/offers.md keeps the findings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.offers import (  # noqa: E402
    compare_policies,
    hindsight_margin_plan,
    posterior_reference,
    seed_frames,
)
from benchmarks.report import log_run, machine_note, markdown_table  # noqa: E402
from lab.evaluation import true_curves, true_score  # noqa: E402


def bootstrap_optimism(planner, budget: float) -> float:
    """Mean over the bootstrap refits of (cost of the plan made on the refit's curves, priced by the
    planner's curves) / (its cost on the refit's own curves), at the planner's current factor."""
    levels = np.asarray(planner.levels, dtype=float)
    value = planner.candidates_["value"].to_numpy()

    def cost(choice: np.ndarray, curves: np.ndarray) -> float:
        rows = np.flatnonzero(choice >= 0)
        return float(np.sum(levels[choice[rows]] * value[rows] * curves[rows, choice[rows]]))

    ratios = []
    for boot in planner.bootstrap_curves_:
        choice = planner.plan_on_curves(boot, budget, cost_factor=planner.cost_factor_).choice
        ratios.append(cost(choice, planner.curves_) / max(cost(choice, boot), 1e-12))
    return float(np.mean(ratios))


def gap_rows(args: argparse.Namespace, seed: int) -> pd.DataFrame:
    """One row per budget of `seed`: the decomposition in the module docstring."""
    cache = Path(args.cache) if args.cache else None
    data, planner, comp, budgets = compare_policies(
        args.customers, seed, args.weeks, posterior=False, cache=cache
    )
    reference = posterior_reference(planner, data, cache)
    true = true_curves(planner, data.truth["response"])
    c = planner.candidates_
    value, margin = c["value"].to_numpy(), c["margin"].to_numpy()

    def score(curves: np.ndarray, budget: float, factor: float = 1.0):
        alloc = planner.plan_on_curves(curves, budget, cost_factor=factor)
        return true_score(alloc.choice, true, value, margin, planner.levels)

    rows = []
    for b in budgets:
        planner.plan(b)
        model = true_score(planner.allocation_.choice, true, value, margin, planner.levels)
        oracle = score(true, b)
        post = score(reference, b)
        post_spent = score(reference, model.cost)
        post_factor = score(reference, b, planner.cost_factor_)
        free = score(planner.curves_, b)
        h_factor, hind = hindsight_margin_plan(planner, planner.curves_, data, b)
        expected = planner.allocation_.cost / planner.cost_factor_
        optimism = bootstrap_optimism(planner, b) if args.optimism else np.nan
        bound = planner.budget_promise_["plan_cost_bound"] or {}
        ratio = planner.cost_ratio_ or {}
        rows.append(
            {
                "seed": seed,
                "budget share": round(b / budgets[-1], 2),
                "model / posterior": model.profit / post.profit,
                "spend": post_spent.profit / post.profit,
                "ranking": model.profit / post_spent.profit,
                "true cost / budget": model.cost / b,
                "cost factor": planner.cost_factor_,
                "plan bound mean": bound.get("mean", np.nan),
                "parameter sd": bound.get("parameter_sd", np.nan),
                "redemption sd": bound.get("redemption_sd", np.nan),
                "plan bound": bound.get("upper", np.nan),
                "held-out ratio": ratio.get("ratio", np.nan),
                "held-out se": ratio.get("se", np.nan),
                "held-out offers": ratio.get("offers", np.nan),
                "held-out bound": ratio.get("upper", np.nan),
                "true / expected cost": model.cost / expected,
                "bootstrap optimism": optimism,
                "factor 1 / posterior": free.profit / post.profit,
                "factor 1 cost / budget": free.cost / b,
                "hindsight factor": h_factor,
                "hindsight / posterior": hind.profit / post.profit,
                "posterior at model factor / posterior": post_factor.profit / post.profit,
                "posterior / oracle": post.profit / oracle.profit,
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--weeks", type=int, default=26)
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--cache", default=None, help="directory of posterior references, reused when rerun")
    ap.add_argument("--optimism", action="store_true", help="the bootstrap's optimism (20 plans a budget)")
    args = ap.parse_args()
    table = pd.concat(seed_frames(gap_rows, args), ignore_index=True)
    print(f"# Offers gap: {args.customers} customers, {args.weeks} weeks ({machine_note()})\n")
    print(markdown_table(table, "{:.3f}"))
    params = {"run": "gap", "weeks": args.weeks, "customers": args.customers, "seeds": args.seeds}
    metrics = {
        "model_over_posterior.min": float(table["model / posterior"].min()),
        "spend.min": float(table["spend"].min()),
        "ranking.min": float(table["ranking"].min()),
    }
    log_run("offers", params, metrics, tables={"offers_gap.csv": table})


if __name__ == "__main__":
    main()
