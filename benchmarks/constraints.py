"""What diet constraints and CO2e re-ranking cost in ranking quality, on Complete Journey.

(a) NDCG@10 cost of hard constraints, per named diet, for two cohorts of evaluation users:
    - "strict": every test purchase is compliant under the fail-closed mask. The mask then only
      removes non-relevant items, so NDCG cannot drop (a sanity check of the mask-before-top-k path);
    - "followers": no test purchase is labelled 'yes' for an excluded attribute, but some may be
      'unknown'. These customers plausibly follow the diet; fail-closed hides their 'unknown'
      purchases, so this is the real price of never guessing.
(b) CO2e/NDCG trade-off over the re-ranking weight lambda: NDCG@10 and the mean CO2e per kg of the
    lists (items with a known CO2e; averaged over users) for all evaluation users.

Split: train weeks < 50, test weeks 50-53 (Complete Journey's week 50 starts 2017-12-04 05:10; week
49 ends 04:52). Metrics: `recsys.metrics.evaluation.evaluate` (the same code as the quality
benchmark, tests and MLflow). Model: any registry name; the default is the served champion
(the grocery ranker).

    .venv/bin/python benchmarks/constraints.py [--data data/cj] [--model grocery_ranker|buy_again|...]
Writes benchmarks/results/constraints.md, constraints.csv and co2_tradeoff.png.
"""

from __future__ import annotations

import argparse
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
from recsys.diet.profiles import parse_profile  # noqa: E402
from recsys.metrics.evaluation import evaluate, evaluation_users  # noqa: E402
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
    dataset = load(Path(args.data))
    split = temporal_split(dataset, CUTOFF)
    print(f"train {len(split.train.interactions):,} lines, test {len(split.test.interactions):,} lines")
    model = fit_model(args.model, split.train)
    engine = ConstraintEngine(dataset.items_table)
    co2e = pd.to_numeric(dataset.items_table["co2e_per_kg"], errors="coerce").to_numpy(dtype=np.float64)
    print("(a) constraint cost")
    costs = constraint_costs(model, split.train, split.test, engine)
    print("(b) CO2e trade-off")
    tradeoff = co2_tradeoff(model, split.train, split.test, co2e)
    RESULTS.mkdir(parents=True, exist_ok=True)
    both = pd.concat(
        [costs.assign(part="constraint_cost"), tradeoff.assign(part="co2_tradeoff")], ignore_index=True
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
    ]
    write_results("constraints", "\n".join(md), both)
    log_run(
        "constraints",
        {"model": args.model},
        {
            "best_lambda": float(best["lambda"]),
            "co2e_reduction_pct": float(best["co2e_reduction_pct"]),
            "ndcg_loss_pct": float(best["ndcg_loss_pct"]),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
