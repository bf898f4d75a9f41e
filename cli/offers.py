"""`recsys offers`: a budgeted discount plan for a campaign run, written as CSV."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

COLUMNS = (
    "customer_id",
    "product_group",
    "discount_level",
    "propensity",
    "expected_uplift",
    "expected_profit",
    "reason",
    "best_send_time",
)


def _cmd_offers(args: argparse.Namespace) -> int:
    if args.budget < 0:
        raise ValueError(f"--budget must be >= 0, got {args.budget}")
    if args.max_per_customer < 1:
        raise ValueError(f"--max-per-customer must be >= 1, got {args.max_per_customer}")
    if not 0 <= args.margin <= 1:
        raise ValueError(f"--margin must be a rate in [0, 1], got {args.margin}")
    if not 0 <= args.explore <= 1:
        raise ValueError(f"--explore must be a share in [0, 1], got {args.explore}")
    if args.lookback_weeks is not None and args.lookback_weeks < 1:
        raise ValueError(f"--lookback-weeks must be >= 1, got {args.lookback_weeks}")
    data = Path(args.data)
    if not data.is_dir():
        raise ValueError(f"--data {data} is not a directory (prepare one with 'recsys data prepare')")
    from recsys.data.io import read_tables
    from recsys.offers.policy import MIN_COST_CHECK_OFFERS, DiscountPlanner

    window = {}
    if args.lookback_weeks is not None:
        # a short lookback also shortens the history a training offer must have had in view
        window = {
            "lookback_weeks": args.lookback_weeks,
            "min_history_weeks": min(DiscountPlanner().min_history_weeks, args.lookback_weeks),
        }
    start = time.perf_counter()
    tables = read_tables(data, skip=("promotions",))  # the discount planner does not use it
    planner = DiscountPlanner(
        max_per_customer=args.max_per_customer,
        margin=args.margin,
        explore=args.explore,
        explore_seed=args.explore_seed,
        campaign_cost_check=args.campaign_cost_check,
        **window,
    ).fit(tables, args.as_of)
    plan = planner.plan(args.budget)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plan.loc[:, list(COLUMNS)].to_csv(out, index=False)
    kind = type(planner.response_).__name__
    print(
        f"{len(plan):,} offers for {plan['customer_id'].nunique():,} customers; expected discount cost "
        f"{plan['expected_cost'].sum():,.2f} of budget {args.budget:,.2f}; expected incremental profit "
        f"{plan['expected_profit'].sum():,.2f}; response model {kind}; as of {planner.as_of_.date()}"
    )
    ratio = getattr(planner, "cost_ratio_", None)
    if ratio:
        print(
            f"budget margin: planned cost = expected cost x {planner.cost_factor_:.3f}, from realised / "
            f"predicted discount cost {ratio['ratio']:.3f} (90% upper bound {ratio['upper']:.3f}) on "
            f"{ratio['offers']:,} {ratio['source']}"
        )
        if ratio["offers"] < MIN_COST_CHECK_OFFERS:
            print(
                f"warning: the budget margin rests on only {ratio['offers']:,} offers (fewer than "
                f"{MIN_COST_CHECK_OFFERS:,}): the plan's real cost may exceed the budget; hold some of the "
                "budget back, or log more offers with their propensities before relying on it",
                file=sys.stderr,
            )
    if args.explore > 0:
        explored = plan["reason"].str.startswith("exploration")
        controls = explored & (plan["discount_level"] == 0)
        print(
            f"exploration: {explored.sum():,} offers at a random level, {controls.sum():,} of them "
            "no-discount controls (log them as offers at level 0); log each offer with its propensity"
        )
    if kind == "PriorResponse":
        print("note: no logged offers with discount levels; levels come from the documented prior curves")
    print(f"Wrote {out} in {time.perf_counter() - start:.1f}s")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("offers", help="budgeted discount plan for a campaign run (CSV)")
    p.add_argument("--data", required=True, help="prepared data directory")
    p.add_argument("--budget", type=float, required=True, help="total expected discount cost allowed")
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument(
        "--as-of", dest="as_of", default=None, help="decision date (default: day after last purchase)"
    )
    p.add_argument("--max-per-customer", dest="max_per_customer", type=int, default=3)
    p.add_argument("--margin", type=float, default=0.3, help="retailer margin rate (default 0.3)")
    p.add_argument(
        "--lookback-weeks",
        dest="lookback_weeks",
        type=int,
        default=None,
        help="weeks of history behind every baseline, deal share and visit trend (default: the "
        "planner's, 26; longer lookbacks raised the synthetic benchmark's profit but overran its "
        "true budget, see benchmarks/offers_design_log.md)",
    )
    p.add_argument(
        "--explore",
        type=float,
        default=0.0,
        help="share of the offers sent at a random level (0%% = a no-discount control) with the level's "
        "propensity in the CSV, so the campaign's outcomes can train the next response fit (default 0)",
    )
    p.add_argument("--explore-seed", dest="explore_seed", type=int, default=0, help="seed of those draws")
    p.add_argument(
        "--campaign-cost-check",
        dest="campaign_cost_check",
        choices=["max", "instead", "off"],
        default="max",
        help="once 500+ logged offers carry a campaign id and a decided level, also measure the budget "
        "margin on them: 'max' (default) keeps the larger of that and the held-out check, 'instead' "
        "uses them alone, 'off' ignores them",
    )
    p.set_defaults(func=_cmd_offers)
