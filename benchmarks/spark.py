"""Spark engine vs the local engine on Complete Journey: same tables, same lists, ALS quality, wall time.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/spark.py [--data data/cj] [--seeds 0 1 2]
        [--master local[2]] [--work /tmp/recsys-spark-bench] [--steps prepare batch als]

1. prepare: `recsys.prepare.prepare_completejourney` vs `training.spark.prepare` into --work; row
   counts and manifest digests compared (both computed through recsys.data.io).
2. batch buy-again: the buy-again model fitted on train weeks < 50 of --data, lists (k = 10, the
   gluten-free diet, every customer) from `ProductSelector.recommend_frame` vs `recommend_spark`;
   compared row by row (items, order, scores, reasons).
3. ALS: the project's `als` model fitted by implicit and by MLlib (`training.spark.als`) for each
   seed, NDCG@10 and recall@10 on the all-purchases track by recsys.metrics.evaluation.evaluate; the
   seed spread of each is the noise band.
Writes benchmarks/results/spark.{md,csv} and logs an MLflow run in `benchmark-spark`. `--steps`
re-runs only the named steps and keeps the other steps' rows of the existing results file (the md
says which rows come from which run).
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
    ap.add_argument(
        "--steps",
        nargs="+",
        choices=STEPS,
        default=list(STEPS),
        help="steps to run; the others keep their rows of the existing results file",
    )
    args = ap.parse_args()
    steps_run = [s for s in STEPS if s in args.steps]
    kept, kept_note = previous_rows([s for s in STEPS if s not in steps_run])
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

    if "prepare" in steps_run:
        _, local_s = timed(lambda: prepare_completejourney(work / "local"))
        _, spark_s = timed(lambda: prepare_completejourney_spark(work / "spark"))
        local_m, spark_m = read_manifest(work / "local"), read_manifest(work / "spark")
        same_tables = local_m["tables"] == spark_m["tables"] and local_m["digest"] == spark_m["digest"]
        rows.append(
            ("prepare Complete Journey", local_s, spark_s, f"digest {spark_m['digest']}: same={same_tables}")
        )

    if "batch" in steps_run or "als" in steps_run:
        dataset = Dataset.load(Path(args.data))
        split = temporal_split(dataset, completejourney_cutoff())
    if "batch" in steps_run:
        rows.append(batch_row(split, dataset, work, recommend_spark))
    quality = als_rows(split, args.seeds, fit_with_spark) if "als" in steps_run else []

    fresh = pd.DataFrame(rows, columns=["step", "local s", "spark s", "check"])
    fresh["spark / local"] = fresh["spark s"] / fresh["local s"]
    steps = pd.concat([fresh, kept["step"]], ignore_index=True) if len(kept["step"]) else fresh
    steps = steps.sort_values("step", key=lambda c: c.map(step_order), kind="stable", ignore_index=True)
    q = pd.DataFrame(quality) if quality else kept["als"]
    band = q.groupby("engine").agg(
        ndcg_mean=("ndcg@10", "mean"),
        ndcg_min=("ndcg@10", "min"),
        ndcg_max=("ndcg@10", "max"),
        recall_mean=("recall@10", "mean"),
        recall_min=("recall@10", "min"),
        recall_max=("recall@10", "max"),
        fit_s=("fit s", "mean"),
    )

    steps_flag = "" if steps_run == list(STEPS) else f" --steps {' '.join(steps_run)}"
    md = [
        "# Spark engine vs local engine (Complete Journey)",
        "",
        f"`benchmarks/spark.py --data {args.data} --master {args.master}{steps_flag}`; {machine_note()}",
        "(the machine was shared with other jobs: timings are only comparable within a row).",
        f"Spark session start (JVM): {startup:.1f} s, not counted below.",
    ]
    if kept_note:
        md += [
            "",
            f"Steps not re-run here ({', '.join(s for s in STEPS if s not in steps_run)}) keep their rows "
            f"from the previous run: {kept_note}",
        ]
    md += [
        "",
        markdown_table(steps, "{:.2f}"),
        "",
        "ALS (default params, train weeks < 50, test weeks 50-53, all purchases, k = 10), "
        f"seeds {sorted(q['seed'].astype(int).unique().tolist())}:",
        "",
        markdown_table(band.reset_index()),
        "",
        "MLlib fits implicit's loss through `training.spark.als`: ratings = implicit's confidence - 1",
        "(alpha 1; a purchase whose confidence is below 1 gets 1), regParam = regularization x rows /",
        "(2 x cells), so that MLlib's count-scaled (ALS-WR) regularisation equals implicit's on average.",
    ]
    table = pd.concat([steps.assign(kind="step"), q.assign(kind="als")], ignore_index=True)
    write_results("spark", "\n".join(md), table)
    log_run(
        "spark",
        {"master": args.master, "seeds": args.seeds, "steps": steps_run},
        {
            **{
                f"{key}_ratio": float(steps.loc[steps["step"].map(step_order) == i, "spark / local"].iloc[0])
                for i, key in enumerate(("prepare", "batch"))
                if (steps["step"].map(step_order) == i).any()
            },
            **{f"ndcg10_{e}": float(v) for e, v in band["ndcg_mean"].items()},
        },
    )


STEPS = ("prepare", "batch", "als")


def step_order(step: str) -> int:
    """Index in STEPS of a steps-table row (by the start of its name)."""
    return 0 if step.startswith("prepare") else 1


def previous_rows(steps: list[str]) -> tuple[dict[str, pd.DataFrame], str]:
    """The rows of `steps` in the existing results file ({"step": ..., "als": ...}) and the line of
    its md that says how it was run; empty when no step is kept."""
    from benchmarks.report import RESULTS

    kept = {"step": pd.DataFrame(), "als": pd.DataFrame()}
    if not steps:
        return kept, ""
    csv, md = RESULTS / "spark.csv", RESULTS / "spark.md"
    if not csv.exists():
        raise SystemExit(f"--steps without {', '.join(steps)} needs their rows in {csv}; run them once")
    old = pd.read_csv(csv)
    table_steps = old[old["kind"] == "step"]
    keep = table_steps["step"].map(step_order).map(lambda i: STEPS[i] in steps)
    kept["step"] = table_steps[keep][["step", "local s", "spark s", "check", "spark / local"]]
    if "als" in steps:
        kept["als"] = old[old["kind"] == "als"][["engine", "seed", "ndcg@10", "recall@10", "fit s"]].astype(
            {"seed": int}
        )
    note = next((line for line in md.read_text().splitlines() if line.startswith("`benchmarks/")), "")
    return kept, note.split(" (the machine")[0]


def batch_row(split, dataset, work, recommend_spark) -> tuple:
    """Step 2: buy-again lists of every customer, local selection path vs Spark, and the timings."""
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
    return (
        f"batch buy-again, {len(users):,} customers, gluten-free",
        batch_local,
        batch_spark,
        f"same lists={same_lists}",
    )


def als_rows(split, seeds: list[int], fit_with_spark) -> list[dict]:
    """Step 3: the project's ALS fitted by implicit and by MLlib per seed, quality and fit time."""
    quality = []
    for seed in seeds:
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
    return quality


if __name__ == "__main__":
    main()
