"""What diet constraints and CO2e re-ranking cost in ranking quality, on Complete Journey.

(a) NDCG@10 cost of hard constraints, per named diet, for two cohorts of evaluation users:
    - "strict": every test purchase is compliant under the fail-closed mask. The mask then only
      removes non-relevant items, so NDCG cannot drop (a sanity check of the mask-before-top-k path);
    - "followers": no test purchase is labelled 'yes' for an excluded attribute, but some may be
      'unknown'. These customers plausibly follow the diet; fail-closed hides their 'unknown'
      purchases, so this is the real price of never guessing.
(b) CO2e/NDCG trade-off over the re-ranking weight lambda: NDCG@10 and the mean CO2e per kg of the
    lists (items with a known CO2e; averaged over users) for all evaluation users.
(c) label coverage: share of food purchase lines whose attribute is decided (yes/no) and decided 'no',
    with the labels the data directory was prepared with and with the current rules (the benchmark
    relabels the catalog, so every other part runs on the current rules); and the shelves
    (department, category, type) holding the most lines still undecided under the current rules.
(d) diet lists through the served selection path (`ProductSelector`), k=20, every evaluation user:
    non-food share and NDCG@10 without a diet, with the diet, and with the diet food-first.
(e) recipe variety: recipes that pass vegan / vegetarian, that can be shopped with compliant products,
    and over 500 households given the diet (k=5) the distinct recipes and the largest share of lists.

Split: train weeks < 50, test weeks 50-53 (Complete Journey's week 50 starts 2017-12-04 05:10; week
49 ends 04:52). Metrics: `recsys.metrics.evaluation.evaluate` (the same code as the quality
benchmark, tests and MLflow). Model: any registry name; the default is the served champion
(the grocery ranker).

    .venv/bin/python benchmarks/constraints.py [--data data/cj] [--model grocery_ranker|buy_again|...]
Writes benchmarks/results/constraints.md, constraints.csv and co2_tradeoff.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import log_run, markdown_table, write_results  # noqa: E402
from recsys.data.dataset import Dataset  # noqa: E402
from recsys.data.splits import temporal_split  # noqa: E402
from recsys.diet.constraints import ConstraintEngine  # noqa: E402
from recsys.diet.labeler import OUTPUTS, attribute_coverage, label_products  # noqa: E402
from recsys.diet.profiles import parse_profile  # noqa: E402
from recsys.metrics.evaluation import evaluate, evaluation_users  # noqa: E402
from recsys.metrics.ranking import ndcg_at_k  # noqa: E402
from recsys.personalize import align_items  # noqa: E402
from recsys.ranking.food_first import is_food_column  # noqa: E402
from recsys.ranking.rerank import co2e_summary, rerank  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CUTOFF = pd.Timestamp("2017-12-04 05:00:00")  # start of Complete Journey week 50
K = 10
DIETS = (
    "vegan",
    "vegetarian",
    "pescetarian",
    "gluten-free",
    "lactose-free",
    "nut-free",
    "no-added-sugar",
    "alcohol-free",
)
LIST_K = 20
COVERAGE_TARGET = {"contains_gluten": 0.8, "contains_meat": 0.8, "contains_dairy": 0.8, "contains_egg": 0.8}
SHELF = ["department", "category", "type"]
UNDECIDED_TOP = 15
LAMBDAS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
POOL = 100


class Constrained:
    """A fitted model seen through a mask and the CO2e re-ranker; `evaluate` only calls recommend_idx.

    The lists it hands out are kept so the benchmark can report their CO2e.
    """

    def __init__(self, model, allowed: np.ndarray | None = None, co2e=None, co2_weight: float = 0.0):
        self.model, self.allowed, self.co2e, self.co2_weight = model, allowed, co2e, co2_weight
        self.lists: list[np.ndarray] = []

    def recommend_idx(self, user_idx, k, allowed=None, exclude_seen=False):
        if exclude_seen:
            raise NotImplementedError("this benchmark runs the 'all' track")
        scores = self.model.score(user_idx)
        items, top = rerank(scores, k, self.allowed, co2e=self.co2e, co2_weight=self.co2_weight, pool=POOL)
        self.lists.append(items)
        return items, top


def load(data_dir: Path) -> Dataset:
    if not (data_dir / "manifest.json").exists():
        cmd = [str(ROOT / ".venv" / "bin" / "recsys"), "data", "prepare", "--source", "completejourney"]
        subprocess.run([*cmd, "--out", str(data_dir)], check=True)
    return Dataset.load(data_dir)


def relabel(dataset: Dataset) -> Dataset:
    """The dataset with its diet labels recomputed from the current rules."""
    items = dataset.items_table.copy()
    labels = label_products(items)
    for col in (*OUTPUTS, "food_group", "co2e_per_kg"):
        if col in labels:
            items[col] = labels[col].to_numpy()
    return dataclasses.replace(dataset, items_table=items)


def coverage(before: Dataset, after: Dataset) -> pd.DataFrame:
    """Food purchase lines decided and decided 'no' per attribute, prepared vs current labels."""
    lines = pd.DataFrame(
        {"product_id": before.items_table["product_id"].to_numpy()[before.interactions["item_idx"]]}
    )
    rows = []
    for name, data in (("prepared", before), ("current", after)):
        cov = attribute_coverage(data.items_table, lines)
        food = data.items_table["is_food"].to_numpy() != "no"
        per_item = lines["product_id"].value_counts()
        n = data.items_table["product_id"].map(per_item).fillna(0).to_numpy()
        for attr in OUTPUTS[1:]:
            no = (data.items_table[attr].to_numpy() == "no") & food
            rows.append(
                {
                    "labels": name,
                    "attribute": attr,
                    "food_lines_decided_pct": 100.0 * cov.loc[attr, "food_lines_decided"],
                    "food_lines_no_pct": 100.0 * n[no].sum() / n[food].sum(),
                    "target_pct": 100.0 * COVERAGE_TARGET.get(attr, np.nan),
                }
            )
    out = pd.DataFrame(rows)
    for r in out.itertuples():
        print(
            f"  {r.labels:8s} {r.attribute:16s} decided {r.food_lines_decided_pct:5.1f}%  no {r.food_lines_no_pct:5.1f}%"
        )
    return out


def undecided_shelves(data: Dataset, top: int = UNDECIDED_TOP) -> pd.DataFrame:
    """The shelves with the most food purchase lines still 'unknown' for the targeted attributes.

    Per shelf and attribute: the points of food-line coverage the shelf would add if it were decided.
    This is where more coverage would have to come from; docs/diet.md says why each stays unknown.
    """
    items = data.items_table
    lines = np.bincount(data.interactions["item_idx"], minlength=len(items))
    food = (items["is_food"] != "no").to_numpy()
    frame = items.loc[food, SHELF].copy()
    for attr in COVERAGE_TARGET:
        frame[attr] = np.where(items.loc[food, attr] == "unknown", lines[food], 0)
    per_shelf = frame.groupby(SHELF, observed=True)[list(COVERAGE_TARGET)].sum()
    per_shelf = per_shelf.loc[per_shelf.sum(axis=1).nlargest(top).index]
    out = (100.0 * per_shelf / lines[food].sum()).rename(columns=lambda a: f"{a}_pts")
    return out.reset_index()


def diet_lists(model, train: Dataset, test: Dataset) -> pd.DataFrame:
    """Non-food share (k=LIST_K) and NDCG@K per diet: without, with, with food-first (one selector path)."""
    from recsys.ranking.selection import ProductQuery, ProductSelector

    users, truth = evaluation_users(train, test)
    table = align_items(train.items_table, model.items_)
    selectors = {ff: ProductSelector(model, table, food_first=ff) for ff in (False, True)}
    food = is_food_column(table)
    ids = model.users_.to_external(users)
    query = ProductQuery(k=LIST_K)

    def run(selector, diet: str | None) -> tuple[float, float]:
        profile = parse_profile(diet)
        recs = np.full((len(ids), LIST_K), -1, dtype=np.int64)
        shoppers = [selector.shopper(u, profile) for u in ids]
        for lo in range(0, len(shoppers), 256):
            batch = shoppers[lo : lo + 256]
            for r, sel in enumerate(selector.select([query] * len(batch), batch)):
                recs[lo + r, : len(sel.items)] = sel.items
        valid = recs >= 0
        nonfood = float((~food[np.maximum(recs, 0)] & valid).sum() / valid.sum())
        return 100.0 * nonfood, ndcg_at_k(recs, truth, K)

    base_nonfood, base_ndcg = run(selectors[False], None)
    rows = []
    for diet in DIETS:
        plain_nonfood, plain_ndcg = run(selectors[False], diet)
        ff_nonfood, ff_ndcg = run(selectors[True], diet)
        row = {
            "diet": diet,
            "users": len(ids),
            "nonfood_pct_without": base_nonfood,
            "nonfood_pct_with": plain_nonfood,
            "nonfood_pct_food_first": ff_nonfood,
            "ndcg_without": base_ndcg,
            "ndcg_with": plain_ndcg,
            "ndcg_food_first": ff_ndcg,
            "ndcg_cost_pct_with": 100.0 * (base_ndcg - plain_ndcg) / base_ndcg,
            "ndcg_cost_pct_food_first": 100.0 * (base_ndcg - ff_ndcg) / base_ndcg,
        }
        rows.append(row)
        print(
            f"  {diet:15s} non-food {base_nonfood:.1f}% -> {plain_nonfood:.1f}% (food-first {ff_nonfood:.1f}%), "
            f"NDCG@{K} {base_ndcg:.4f} -> {plain_ndcg:.4f} (food-first {ff_ndcg:.4f})"
        )
    return pd.DataFrame(rows)


RECIPE_DIETS = ("vegan", "vegetarian")
RECIPE_HOUSEHOLDS = 500
RECIPE_K = 5


def recipe_variety(model, train: Dataset) -> pd.DataFrame:
    """Per diet and pantry setting: recipes that pass the diet, that can be shopped entirely with
    compliant products, and, over RECIPE_HOUSEHOLDS households given the diet, k=RECIPE_K: distinct
    recipes recommended and the largest share of lists one recipe is in."""
    from recsys.personalize import Personalizer

    personalizer = Personalizer(model, train)
    rec = personalizer.recipe_recommender
    rng = np.random.default_rng(0)
    users, _ = evaluation_users(train, train)
    chosen = model.users_.to_external(
        rng.choice(users, size=min(RECIPE_HOUSEHOLDS, len(users)), replace=False)
    )
    rows = []
    for diet in RECIPE_DIETS:
        profile = parse_profile(diet)
        ok = rec.diet_allowed(profile)
        buyable = rec.engine.allowed(profile)
        for pantry in (False, True):
            shoppable = sum(
                1
                for r, lines in enumerate(rec.shopping)
                if ok[r] and all(buyable[rec.shelf_items[s]].any() for _, s, p in lines if not (p and pantry))
            )
            counts: dict[str, int] = {}
            for user in chosen:
                frame = personalizer.recommend_recipes(user, RECIPE_K, profile=profile, pantry_at_home=pantry)
                for rid in frame["recipe_id"]:
                    counts[rid] = counts.get(rid, 0) + 1
            rows.append(
                {
                    "diet": diet,
                    "pantry_at_home": pantry,
                    "recipes_pass_diet": int(ok.sum()),
                    "recipes_shoppable": shoppable,
                    "households": len(chosen),
                    "distinct_recommended": len(counts),
                    "max_share_pct": 100.0 * max(counts.values(), default=0) / max(len(chosen), 1),
                }
            )
            r = rows[-1]
            print(
                f"  {diet:11s} pantry={pantry!s:5s} pass {r['recipes_pass_diet']}, shoppable {shoppable}, "
                f"distinct {r['distinct_recommended']}, max share {r['max_share_pct']:.0f}%"
            )
    return pd.DataFrame(rows)


def fit_model(name: str, train: Dataset):
    import recsys.models  # noqa: F401  (registers every model)
    from recsys.models.base import Recommender

    if name not in Recommender.registry:
        raise ValueError(f"unknown model {name!r}; use one of {sorted(Recommender.registry)}")
    return Recommender.registry[name]().fit(train)


def subset(test: Dataset, users: np.ndarray) -> Dataset:
    inter = test.interactions
    return test.with_interactions(inter[inter["user_idx"].isin(users)])


def constraint_costs(model, train: Dataset, test: Dataset, engine: ConstraintEngine) -> pd.DataFrame:
    users, _ = evaluation_users(train, test)
    inter = test.interactions[test.interactions["user_idx"].isin(users)]
    rows = []
    for diet in DIETS:
        profile = parse_profile(diet)
        allowed = engine.allowed(profile)
        said_yes = np.zeros(engine.n_items, dtype=bool)
        for attr in profile.exclusions:
            said_yes |= engine.values(attr) == "yes"
        per_user = (
            pd.DataFrame(
                {
                    "user": inter["user_idx"].to_numpy(),
                    "blocked": ~allowed[inter["item_idx"].to_numpy()],
                    "yes": said_yes[inter["item_idx"].to_numpy()],
                }
            )
            .groupby("user")[["blocked", "yes"]]
            .any()
        )
        cohorts = {
            "strict": per_user.index[~per_user["blocked"]].to_numpy(),
            "followers": per_user.index[~per_user["yes"]].to_numpy(),
        }
        for cohort, cohort_users in cohorts.items():
            row = {"diet": diet, "cohort": cohort, "users": len(cohort_users)}
            if len(cohort_users):
                sub = subset(test, cohort_users)
                base = evaluate(Constrained(model), train, sub, k=K, beyond_accuracy=False)
                masked = evaluate(Constrained(model, allowed), train, sub, k=K, beyond_accuracy=False)
                row.update(
                    ndcg_without=base["ndcg"],
                    ndcg_with=masked["ndcg"],
                    cost_pct=100.0 * (base["ndcg"] - masked["ndcg"]) / base["ndcg"]
                    if base["ndcg"]
                    else np.nan,
                    allowed_items_pct=100.0 * allowed.mean(),
                )
            rows.append(row)
            print(
                f"  {diet:15s} {cohort:9s} "
                + ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("diet", "cohort"))
            )
    return pd.DataFrame(rows)


def co2_tradeoff(model, train: Dataset, test: Dataset, co2e: np.ndarray) -> pd.DataFrame:
    rows = []
    for lam in LAMBDAS:
        wrapped = Constrained(model, co2e=co2e, co2_weight=lam)
        metrics = evaluate(wrapped, train, test, k=K, beyond_accuracy=False)
        lists = np.concatenate(wrapped.lists)
        summaries = [co2e_summary(row, co2e) for row in lists]
        means = np.array([s.mean for s in summaries])
        rows.append(
            {
                "lambda": lam,
                "ndcg": metrics["ndcg"],
                "mean_co2e_per_kg": float(np.nanmean(means)),
                "lists_with_known_co2e_pct": 100.0 * np.isfinite(means).mean(),
                "known_co2e_items_per_list": float(np.mean([s.n_known for s in summaries])),
            }
        )
        print(f"  lambda={lam:<5} ndcg={metrics['ndcg']:.4f} mean_co2e={rows[-1]['mean_co2e_per_kg']:.2f}")
    out = pd.DataFrame(rows)
    out["ndcg_loss_pct"] = 100.0 * (out["ndcg"].iloc[0] - out["ndcg"]) / out["ndcg"].iloc[0]
    out["co2e_reduction_pct"] = 100.0 * (1.0 - out["mean_co2e_per_kg"] / out["mean_co2e_per_kg"].iloc[0])
    return out


def plot(tradeoff: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(tradeoff["co2e_reduction_pct"], tradeoff["ndcg"], marker="o")
    for _, r in tradeoff.iterrows():
        ax.annotate(
            f"λ={r['lambda']:g}",
            (r["co2e_reduction_pct"], r["ndcg"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.axhline(tradeoff["ndcg"].iloc[0] * 0.95, color="grey", ls="--", lw=0.8, label="5% NDCG loss")
    ax.axvline(25, color="grey", ls=":", lw=0.8, label="25% lower CO2e")
    ax.set_xlabel("mean CO2e per kg of a list: reduction vs. λ=0 (%)")
    ax.set_ylabel("NDCG@10")
    ax.set_title("CO2e-aware re-ranking on Complete Journey (test weeks 50-53)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "cj"))
    parser.add_argument("--model", default="grocery_ranker", help="registry name (default: the champion)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    prepared = load(Path(args.data))
    dataset = relabel(prepared)
    print("(c) label coverage")
    cov = coverage(prepared, dataset)
    shelves = undecided_shelves(dataset)
    split = temporal_split(dataset, CUTOFF)
    print(f"train {len(split.train.interactions):,} lines, test {len(split.test.interactions):,} lines")
    model = fit_model(args.model, split.train)
    engine = ConstraintEngine(dataset.items_table)
    co2e = pd.to_numeric(dataset.items_table["co2e_per_kg"], errors="coerce").to_numpy(dtype=np.float64)
    print("(a) constraint cost")
    costs = constraint_costs(model, split.train, split.test, engine)
    print("(b) CO2e trade-off")
    tradeoff = co2_tradeoff(model, split.train, split.test, co2e)
    print(f"(d) diet lists (k={LIST_K})")
    lists = diet_lists(model, split.train, split.test)
    print(f"(e) recipe variety ({RECIPE_HOUSEHOLDS} households, k={RECIPE_K})")
    variety = recipe_variety(model, split.train)
    RESULTS.mkdir(parents=True, exist_ok=True)
    both = pd.concat(
        [
            costs.assign(part="constraint_cost"),
            tradeoff.assign(part="co2_tradeoff"),
            cov.assign(part="label_coverage"),
            shelves.assign(part="undecided_shelves"),
            lists.assign(part="diet_lists"),
            variety.assign(part="recipe_variety"),
        ],
        ignore_index=True,
    )
    plot(tradeoff, RESULTS / "co2_tradeoff.png")
    ok = tradeoff[(tradeoff["ndcg_loss_pct"] <= 5.0)]
    best = ok.loc[ok["co2e_reduction_pct"].idxmax()]
    md = [
        "# Diet constraints and CO2e re-ranking: cost in NDCG@10 (Complete Journey)",
        "",
        f"Model: {args.model}; split: train weeks < 50, test weeks 50-53 (cutoff {CUTOFF}); "
        f"metric: recsys.metrics.evaluation.evaluate, track 'all', k={K}; re-ranking pool {POOL}. "
        f"Generated by `benchmarks/constraints.py` in {time.perf_counter() - start:.0f}s.",
        "",
        "## (a) Hard constraints (fail-closed masks)",
        "",
        "strict = every test purchase is compliant under the mask (the mask can only remove non-relevant "
        "items, so the cost is <= 0 by construction); followers = no test purchase is labelled 'yes' for "
        "an excluded attribute, but some are 'unknown' and hidden by the fail-closed mask. "
        "cost_pct = relative NDCG@10 loss from applying the mask (negative = gain).",
        "",
        markdown_table(costs, "{:.4f}"),
        "",
        "## (b) CO2e / NDCG trade-off over lambda",
        "",
        "score' = z(score) - lambda * z(co2e_per_kg) over each user's top-100 allowed candidates; "
        "unknown CO2e = catalog median (neutral). mean_co2e_per_kg = mean over lists of the list's mean "
        "over items with a known CO2e.",
        "",
        markdown_table(tradeoff, "{:.3f}"),
        "",
        f"Best within 5% NDCG loss: lambda={best['lambda']:g}: {best['co2e_reduction_pct']:.1f}% lower mean "
        f"CO2e per list at {best['ndcg_loss_pct']:.1f}% NDCG loss (target: >= 25% at <= 5%).",
        "",
        "![CO2e trade-off](co2_tradeoff.png)",
        "",
        "## (c) Label coverage (food purchase lines, all 53 weeks)",
        "",
        "decided = the attribute is 'yes' or 'no'; no = decided 'no' (what a diet customer can be shown). "
        "prepared = the labels in the data directory; current = the rules in recsys/diet/data/diet_rules.csv, "
        "used by every other part of this run.",
        "",
        markdown_table(cov, "{:.1f}"),
        "",
        f"The {UNDECIDED_TOP} shelves holding the most food lines still undecided (current rules); each "
        "column is the points of coverage the shelf would add to that attribute if decided. Why each stays "
        "unknown: docs/diet.md.",
        "",
        markdown_table(shelves, "{:.2f}"),
        "",
        f"## (d) Diet lists through the served selection path (k={LIST_K}, NDCG@{K}, all evaluation users)",
        "",
        "without = no diet; with = the diet's fail-closed mask; food_first = the mask and food-first "
        "(non-food capped at the count of the same list without the diet, freed places filled with compliant "
        "food). Non-food = items the labeler does not call food.",
        "",
        markdown_table(lists, "{:.4f}"),
        "",
        f"## (e) Recipe variety ({RECIPE_HOUSEHOLDS} evaluation households given the diet, k={RECIPE_K})",
        "",
        "pass_diet = recipes whose ingredients are all labelled compliant; shoppable = of those, recipes whose "
        "every ingredient to buy has a product labelled compliant (the others are recommended with that "
        "ingredient named and no product offered); distinct / max_share = over the households' lists. "
        "pantry_at_home = the customers say they keep salt, pepper, oils and common spices.",
        "",
        markdown_table(variety, "{:.1f}"),
        "",
    ]
    write_results("constraints", "\n".join(md), both)
    log_run(
        "constraints",
        {"model": args.model},
        {
            "best_lambda": float(best["lambda"]),
            "co2e_reduction_pct": float(best["co2e_reduction_pct"]),
            "ndcg_loss_pct": float(best["ndcg_loss_pct"]),
            **{
                f"decided_pct_{r.attribute}": float(r.food_lines_decided_pct)
                for r in cov[cov["labels"] == "current"].itertuples()
            },
            **{
                f"nonfood_pct_food_first_{r.diet}": float(r.nonfood_pct_food_first)
                for r in lists.itertuples()
            },
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
