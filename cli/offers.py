"""`recsys offers`: the discount planner's training job (training/offers.py) from its config.

Fits the planner, plans one campaign within the budget, logs the run to MLflow and registers the plan
as grocery-discount-planner@champion, which the service answers /v1/discounts from. Flags override the
config; `--out` also writes the plan as CSV, `--plan-dir` the plan artifact, `--no-track` skips MLflow.
"""

from __future__ import annotations

import argparse
import sys
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
    "channel",
)


def _check_flags(args: argparse.Namespace) -> None:
    if args.budget is not None and args.budget < 0:
        raise ValueError(f"--budget must be >= 0, got {args.budget}")
    if args.max_per_customer is not None and args.max_per_customer < 1:
        raise ValueError(f"--max-per-customer must be >= 1, got {args.max_per_customer}")
    if args.margin is not None and not 0 <= args.margin <= 1:
        raise ValueError(f"--margin must be a rate in [0, 1], got {args.margin}")
    if args.explore is not None and not 0 <= args.explore <= 1:
        raise ValueError(f"--explore must be a share in [0, 1], got {args.explore}")
    if args.lookback_weeks is not None and args.lookback_weeks < 1:
        raise ValueError(f"--lookback-weeks must be >= 1, got {args.lookback_weeks}")
    if args.data is not None and not Path(args.data).is_dir():
        raise ValueError(f"--data {args.data} is not a directory (prepare one with 'recsys data prepare')")
    if args.no_track and args.out is None and args.plan_dir is None:
        raise ValueError("--no-track keeps nothing unless --out or --plan-dir is given")


def _config(args: argparse.Namespace):
    from training.offers_config import load_offers_config, with_overrides

    config = load_offers_config(args.config)
    overrides = {
        "budget": args.budget,
        "max_per_customer": args.max_per_customer,
        "planner.margin": args.margin,
        "planner.explore": args.explore,
        "planner.explore_seed": args.explore_seed,
        "planner.campaign_cost_check": args.campaign_cost_check,
        "planner.lookback_weeks": args.lookback_weeks,
        "data.as_of": args.as_of,
    }
    if args.data is not None:  # a prepared directory: read as it is, never re-prepared
        overrides.update({"data.dir": str(args.data), "data.source": str(args.data)})
    if args.lookback_weeks is not None and config.planner.min_history_weeks is None:
        # a short lookback also shortens the history a training offer must have had in view
        overrides["planner.min_history_weeks"] = float(min(12, args.lookback_weeks))
    return with_overrides(config, overrides)


def _cmd_offers(args: argparse.Namespace) -> int:
    from training.offers import plan_summary, run_offers

    _check_flags(args)
    config = _config(args)
    result = run_offers(config, plan_dir=args.plan_dir, track=not args.no_track, model_name=args.model)
    artifact, planner = result.artifact, result.planner
    plan, meta = artifact.plan, artifact.meta
    if args.out is not None:
        from recsys.data.csv_safety import write_csv

        write_csv(plan.loc[:, list(COLUMNS)], args.out)
    kind = meta["response_model"]
    print(
        f"{len(plan):,} offers for {plan['customer_id'].nunique():,} customers; expected discount cost "
        f"{meta['expected_cost']:,.2f} of budget {meta['budget']:,.2f}; expected incremental profit "
        f"{meta['expected_profit']:,.2f}; response model {kind}; as of {planner.as_of_.date()}"
    )
    if result.erased_customers or result.overridden_customers:
        print(
            f"event store: {result.erased_customers:,} erased customers left out, "
            f"{result.overridden_customers:,} with consent or diet updated through the service"
        )
    summary = plan_summary(artifact)
    print("offers per tier: " + ", ".join(f"{k} {v:,}" for k, v in summary["per_tier"].items()))
    print("offers per department: " + ", ".join(f"{k} {v:,}" for k, v in summary["per_department"].items()))
    ratio = getattr(planner, "cost_ratio_", None)
    if ratio:
        promise = planner.budget_promise_
        own = promise["plan_cost_bound"] or {}
        print(
            f"budget promise: planned cost = expected cost x {planner.cost_factor_:.3f}, the larger of the "
            f"plan's own cost bound {own.get('upper', float('nan')):.3f} (bootstrap refits and redemptions) "
            f"x {own.get('widening', 1.0):.3f} (the costliest other response "
            "form, or the small base's caution when larger) "
            f"and realised / predicted discount cost {ratio['ratio']:.3f} +- {ratio['se']:.3f} on "
            f"{ratio['offers']:,} {ratio['source']}; {promise['statement']}"
        )
        if not promise["supported"]:
            print(
                f"warning: {promise['statement']}; log more offers with their propensities before "
                "relying on the budget",
                file=sys.stderr,
            )
    if config.planner.explore > 0:
        explored = plan["reason"].str.startswith("exploration")
        controls = explored & (plan["discount_level"] == 0)
        print(
            f"exploration: {explored.sum():,} offers at a random level, {controls.sum():,} of them "
            "no-discount controls (log them as offers at level 0); log each offer with its propensity"
        )
    if kind == "PriorResponse":
        print("note: no logged offers with discount levels; levels come from the documented prior curves")
    if result.run_id:
        print(
            f"MLflow run {result.run_id}"
            + (f"; registered version {result.version} @champion" if result.version else "")
        )
    if args.plan_dir:
        print(f"plan artifact: {args.plan_dir}")
    if args.out:
        print(f"Wrote {args.out}")
    print(f"done in {result.seconds:.1f}s")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from training.offers_config import DEFAULT_OFFERS_CONFIG

    p = sub.add_parser(
        "offers", help="fit the discount planner, plan a campaign within the budget, register the plan"
    )
    p.add_argument("--config", default=str(DEFAULT_OFFERS_CONFIG), help="offers YAML (default %(default)s)")
    p.add_argument("--data", default=None, help="prepared data directory (default: the config's data.dir)")
    p.add_argument("--budget", type=float, default=None, help="total expected discount cost allowed")
    p.add_argument("--out", default=None, help="also write the plan as CSV here")
    p.add_argument("--plan-dir", dest="plan_dir", default=None, help="also save the plan artifact here")
    p.add_argument("--no-track", dest="no_track", action="store_true", help="no MLflow run, no registry")
    p.add_argument("--model", default=None, help="registered model name (default grocery-discount-planner)")
    p.add_argument(
        "--as-of", dest="as_of", default=None, help="decision date (default: day after last purchase)"
    )
    p.add_argument("--max-per-customer", dest="max_per_customer", type=int, default=None)
    p.add_argument("--margin", type=float, default=None, help="retailer margin rate")
    p.add_argument(
        "--lookback-weeks",
        dest="lookback_weeks",
        type=int,
        default=None,
        help="weeks of history behind every baseline, deal share and visit trend (default: the config's)",
    )
    p.add_argument(
        "--explore",
        type=float,
        default=None,
        help="share of the offers sent at a random level (0%% = a no-discount control) with the level's "
        "propensity in the CSV, so the campaign's outcomes can train the next response fit",
    )
    p.add_argument("--explore-seed", dest="explore_seed", type=int, default=None, help="seed of those draws")
    p.add_argument(
        "--campaign-cost-check",
        dest="campaign_cost_check",
        choices=["max", "instead", "off"],
        default=None,
        help="once 500+ logged offers carry a campaign id and a decided level, also measure the budget "
        "margin on them: 'max' keeps the larger of that and the held-out check, 'instead' uses them "
        "alone, 'off' ignores them",
    )
    p.set_defaults(func=_cmd_offers)
