"""Spark engine vs the local engine on Complete Journey: same tables, same lists, ALS quality, wall time.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/spark.py [--data data/cj] [--seeds 0 1 2]
        [--master local[2]] [--work /tmp/recsys-spark-bench]

1. prepare: `recsys.prepare.prepare_completejourney` vs `training.spark.prepare` into --work; row
   counts and manifest digests compared (both computed through recsys.data.io).
2. batch buy-again: the buy-again model fitted on train weeks < 50 of --data, lists (k = 10, the
   gluten-free diet, every customer) from `ProductSelector.recommend_frame` vs `recommend_spark`;
   compared row by row (items, order, scores, reasons).
3. ALS: the project's `als` model fitted by implicit and by MLlib (`training.spark.als`) for each
   seed, NDCG@10 and recall@10 on the all-purchases track by recsys.metrics.evaluation.evaluate; the
   seed spread of each is the noise band.
Writes benchmarks/results/spark.{md,csv} and logs an MLflow run in `benchmark-spark`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quality import completejourney_cutoff  # noqa: E402
from benchmarks.report import log_run, machine_note, write_results  # noqa: E402
from recsys.data.dataset import Dataset  # noqa: E402
from recsys.data.io import read_manifest  # noqa: E402
from recsys.data.splits import temporal_split  # noqa: E402
from recsys.diet.profiles import as_profile  # noqa: E402
from recsys.metrics.evaluation import evaluate  # noqa: E402
from recsys.models.buy_again import BuyAgain  # noqa: E402
from recsys.models.implicit_models import ALS  # noqa: E402
from recsys.models.model_dir import save_model_dir  # noqa: E402
from recsys.personalize import load_selector  # noqa: E402
from recsys.prepare import prepare_completejourney  # noqa: E402
from recsys.ranking.selection import ProductQuery  # noqa: E402
from training.markdown import markdown_table  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/cj", help="prepared Complete Journey (split and models)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--master", default="local[2]", help="Spark master (local mode on this machine)")
    ap.add_argument("--work", default="/tmp/recsys-spark-bench", help="scratch directory (replaced)")
    args = ap.parse_args()
    os.environ["RECSYS_SPARK_MASTER"] = args.master
    from training.spark.als import fit_with_spark
    from training.spark.prepare import prepare_completejourney_spark
    from training.spark.score import recommend_spark
    from training.spark.session import spark_session

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = []
    _, startup = timed(lambda: spark_session("recsys-bench"))

    _, local_s = timed(lambda: prepare_completejourney(work / "local"))
    _, spark_s = timed(lambda: prepare_completejourney_spark(work / "spark"))
    local_m, spark_m = read_manifest(work / "local"), read_manifest(work / "spark")
    same_tables = local_m["tables"] == spark_m["tables"] and local_m["digest"] == spark_m["digest"]
    rows.append(
        ("prepare Complete Journey", local_s, spark_s, f"digest {spark_m['digest']}: same={same_tables}")
    )

    dataset = Dataset.load(Path(args.data))
    split = temporal_split(dataset, completejourney_cutoff())
    model_dir = save_model_dir(
        BuyAgain().fit(split.train), dataset.items_table, work / "buy_again", split.train.interactions
    )
    selector = load_selector(model_dir)
    users = selector.model.users_.to_list()
    profile, query = as_profile("gluten-free"), ProductQuery(k=10)
    expected, batch_local = timed(
        lambda: selector.recommend_frame([query] * len(users), [selector.shopper(u, profile) for u in users])
    )
    got, batch_spark = timed(lambda: recommend_spark(model_dir, users, query, profile).toPandas())
    same_lists = got.astype({"rank": "int64"}).equals(expected.astype({"rank": "int64"}))
    rows.append(
        (
            f"batch buy-again, {len(users):,} customers, gluten-free",
            batch_local,
            batch_spark,
            f"same lists={same_lists}",
        )
    )

    quality = []
    for seed in args.seeds:
        for engine in ("implicit", "MLlib"):
            model = ALS(random_state=seed)
            fit = (
                (lambda m=model: fit_with_spark(m, split.train))
                if engine == "MLlib"
                else (lambda m=model: m.fit(split.train))
            )
            _, seconds = timed(fit)
            res = evaluate(model, split.train, split.test, k=10, track="all", beyond_accuracy=False)
            quality.append(
                {
                    "engine": engine,
                    "seed": seed,
                    "ndcg@10": res["ndcg"],
                    "recall@10": res["recall"],
                    "fit s": seconds,
                }
            )
    q = pd.DataFrame(quality)
    band = q.groupby("engine").agg(
        ndcg_mean=("ndcg@10", "mean"),
        ndcg_min=("ndcg@10", "min"),
        ndcg_max=("ndcg@10", "max"),
        recall_mean=("recall@10", "mean"),
        recall_min=("recall@10", "min"),
        recall_max=("recall@10", "max"),
        fit_s=("fit s", "mean"),
    )

    steps = pd.DataFrame(rows, columns=["step", "local s", "spark s", "check"])
    steps["spark / local"] = steps["spark s"] / steps["local s"]
    md = [
        "# Spark engine vs local engine (Complete Journey)",
        "",
        f"`benchmarks/spark.py --data {args.data} --master {args.master}`; {machine_note()}.",
        f"Spark session start (JVM): {startup:.1f} s, not counted below.",
        "",
        markdown_table(steps, "{:.2f}"),
        "",
        f"ALS (default params, train weeks < 50, test weeks 50-53, all purchases, k = 10), seeds {args.seeds}:",
        "",
        markdown_table(band.reset_index()),
        "",
        "MLlib scales regularisation by each row's rating count (ALS-WR), implicit does not: same params,",
        "different effective regularisation.",
    ]
    table = pd.concat([steps.assign(kind="step"), q.assign(kind="als")], ignore_index=True)
    write_results("spark", "\n".join(md), table)
    log_run(
        "spark",
        {"master": args.master, "seeds": args.seeds},
        {
            "prepare_ratio": float(steps["spark / local"].iloc[0]),
            "batch_ratio": float(steps["spark / local"].iloc[1]),
            **{f"ndcg10_{e}": float(v) for e, v in band["ndcg_mean"].items()},
        },
    )


if __name__ == "__main__":
    main()
