"""`recsys recipes`: diet-safe recipe recommendations for a list of customers (campaign runs).

The model directory comes from `recsys train`; the product table the masks need is read from
`<model>/items.parquet` when the train command saved it there, else from `--data DIR` (a canonical
data directory, whose purchases then also count as "recent purchases" for ingredient coverage).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cli.common import EXIT_BAD_INPUT, batch_customers, privacy_note, read_users

#: Passed instead of a customer id who withdrew personalisation consent: no model knows it.
ANONYMOUS = "\x00anonymous"


def _cmd_recipes(args: argparse.Namespace) -> int:
    import sys

    import pandas as pd

    import recsys.models  # noqa: F401  (registers the model classes for Recommender.load)
    from recsys.data.csv_safety import write_csv
    from recsys.diet.profiles import parse_profile
    from recsys.models.base import Recommender
    from recsys.models.model_dir import load_items_table
    from recsys.personalize import Personalizer

    start = time.perf_counter()
    if args.k < 1:
        raise ValueError(f"--k must be >= 1, got {args.k}")
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.max_minutes is not None and args.max_minutes < 1:
        raise ValueError(f"--max-minutes must be >= 1, got {args.max_minutes}")
    profile = parse_profile(args.diet)  # an unknown diet fails before any work
    users = read_users(Path(args.users))
    if not users:
        print(f"error: no user ids in {args.users}", file=sys.stderr)
        return EXIT_BAD_INPUT
    users, erased, withdrawn = batch_customers(users)
    model = Recommender.load(Path(args.model))
    if args.data:  # its purchases count as recent purchases: never an erased customer's
        from training.data import load_without_erased

        dataset, _ = load_without_erased(Path(args.data))
        items_table = dataset.items_table
    else:
        items_table, dataset = load_items_table(Path(args.model), None)
    recipes = None
    if args.recipes:
        from recsys.recipes.catalog import load_recipes

        recipes = load_recipes(Path(args.recipes))
    personalizer = Personalizer(model, dataset if dataset is not None else items_table, recipes=recipes)
    frames = []
    for user in users:
        recs = personalizer.recommend_recipes(
            ANONYMOUS if user in withdrawn else user,
            args.k,
            profile=profile,
            max_steps=args.max_steps,
            max_minutes=args.max_minutes,
            pantry_at_home=args.pantry_at_home,
        )
        frames.append(recs.assign(user_id=user))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out = to_csv_frame(out)
    write_csv(out, args.out)
    n_empty = len(set(users) - set(out["user_id"]))
    print(
        f"Wrote {len(out):,} recipe recommendations for {len(users):,} customers to {args.out} "
        f"({profile.describe()}; {n_empty} customer(s) with no compliant recipe) "
        f"in {time.perf_counter() - start:.1f}s" + privacy_note(erased, withdrawn)
    )
    return 0


CSV_COLUMNS = [
    "user_id",
    "recipe_id",
    "name",
    "rank",
    "score",
    "steps",
    "minutes",
    "missing",
    "ingredients",
    "instructions",
]


def to_csv_frame(recs):
    """Recipe rows as flat CSV text: `missing` is 'ingredient=product_id' (empty id: no product can be
    vouched for), `ingredients` 'quantity unit name' lines, `instructions` the steps; all '; '-joined."""

    def missing(row) -> str:
        pairs = zip(row["missing_ingredients"], row["missing_product_ids"], strict=True)
        return "; ".join(f"{name}={'' if pid is None else pid}" for name, pid in pairs)

    def lines(ingredients) -> str:
        return "; ".join(
            f"{i['quantity']:g} {i['unit']} {i['name']}" + (" (optional)" if i["optional"] else "")
            for i in ingredients
        )

    if recs.empty:
        return recs.reindex(columns=CSV_COLUMNS)
    recs = recs.copy()
    recs["missing"] = recs.apply(missing, axis=1)
    recs["ingredients"] = recs["ingredients"].map(lines)
    recs["instructions"] = recs["instructions"].map("; ".join)
    return recs[CSV_COLUMNS]


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipes", help="recipe recommendations for a list of customers (diet-safe)")
    p.add_argument("--model", required=True, help="model directory from `recsys train`")
    p.add_argument("--users", required=True, help="CSV with a user_id column, or one customer id per line")
    p.add_argument("--k", type=int, default=5, help="recipes per customer (default 5)")
    p.add_argument("--diet", help="diets/exclusions for every listed customer, e.g. 'vegan,nuts'")
    p.add_argument("--max-steps", type=int, help="only recipes with at most this many steps")
    p.add_argument("--max-minutes", type=int, help="only recipes ready within this many minutes")
    p.add_argument(
        "--pantry-at-home",
        action="store_true",
        help="the customers keep pantry staples (salt, pepper, oils, common spices): never missing",
    )
    p.add_argument(
        "--data",
        help="data directory (needed when the model dir has no items.parquet); its purchases of the last "
        "28 days count as at home",
    )
    p.add_argument("--recipes", help="recipe YAML file or directory (default: the shipped catalog)")
    p.add_argument("--out", required=True, help=f"output CSV: {', '.join(CSV_COLUMNS)}")
    p.set_defaults(func=_cmd_recipes)
