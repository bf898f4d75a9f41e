"""Lab: which part of the MLlib / implicit ALS mapping matters, on a validation split (no test weeks).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/spark_als_mapping.py [--data data/cj]
        [--seed 0] [--master local[1]] [--variants implicit implicit-1+w ... mllib-mapped]

Train on Complete Journey weeks < 46, evaluate on weeks 46-49 (all purchases, NDCG@10 and recall@10
by recsys.metrics.evaluation.evaluate), the project's `als` with its defaults, one seed. Variants:

- implicit: the project's fit (confidence alpha x weight, flat regularisation).
- implicit-1+w / implicit-max1: implicit fed MLlib's confidence form, 1 + alpha x weight, or the
  mapped one, max(alpha x weight, 1): the confidence's effect without ALS-WR.
- mllib-raw: MLlib with the weights as ratings and regParam = regularization (the old mapping).
- mllib-raw-reg / mllib-conf: only the regParam mapping, only the ratings mapping.
- mllib-shift: ratings = confidence - 1 without the clamp (weights below 1 become negative ratings,
  which MLlib reads as "not bought").
- mllib-mapped: `training.spark.als` as it is (both mappings).
Prints a table; MLlib variants take minutes each. Nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quality import completejourney_cutoff  # noqa: E402
from recsys.data.dataset import Dataset  # noqa: E402
from recsys.data.splits import temporal_split  # noqa: E402
from recsys.metrics.evaluation import evaluate  # noqa: E402
from recsys.models.implicit_models import ALS  # noqa: E402
from training.markdown import markdown_table  # noqa: E402

IMPLICIT = {
    "implicit": None,
    "implicit-1+w": lambda c: 1.0 + c,
    "implicit-max1": lambda c: np.maximum(c, 1.0),
}
#: MLlib variants: (ratings from implicit's confidence, whether regParam is mapped)
MLLIB = {
    "mllib-raw": ("raw", False),
    "mllib-raw-reg": ("raw", True),
    "mllib-conf": ("mapped", False),
    "mllib-shift": ("shift", True),
    "mllib-mapped": ("mapped", True),
}


def implicit_factorize(model: ALS, confidence):
    """model.factorize with implicit's confidence replaced by confidence(alpha x weight)."""
    plain = model.factorize

    def factorize(matrix, start=None):
        if confidence is None:
            return plain(matrix, start)
        m = matrix.copy()
        m.data = (confidence(model.alpha * m.data.astype(np.float64)) / model.alpha).astype(np.float32)
        return plain(m, start)

    return factorize


def mllib_factorize_variant(spark, model: ALS, ratings: str, mapped_reg: bool):
    """training.spark.als.mllib_factorize with one or both of its mappings replaced."""
    from training.spark import als

    def factorize(matrix, start=None):
        saved = als.mllib_ratings, als.mllib_reg_param
        if ratings == "raw":  # rating alpha x weight, MLlib's confidence 1 + alpha x weight
            als.mllib_ratings = lambda c: np.asarray(c, dtype=np.float32)
        elif ratings == "shift":
            als.mllib_ratings = lambda c: (np.asarray(c) - 1.0).astype(np.float32)
        if not mapped_reg:
            als.mllib_reg_param = lambda reg, m: float(reg)
        try:
            return als.mllib_factorize(spark, model, matrix)
        finally:
            als.mllib_ratings, als.mllib_reg_param = saved

    return factorize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/cj")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--master", default="local[1]")
    ap.add_argument("--variants", nargs="+", choices=[*IMPLICIT, *MLLIB], default=[*IMPLICIT, *MLLIB])
    args = ap.parse_args()
    os.environ["RECSYS_SPARK_MASTER"] = args.master

    dataset = Dataset.load(Path(args.data))
    split = temporal_split(dataset, completejourney_cutoff(46), completejourney_cutoff(50))
    spark = None
    rows = []
    for name in args.variants:
        model = ALS(random_state=args.seed)
        if name in IMPLICIT:
            model.factorize = implicit_factorize(model, IMPLICIT[name])
        else:
            if spark is None:
                from training.spark.session import spark_session

                spark = spark_session("recsys-als-mapping")
            model.factorize = mllib_factorize_variant(spark, model, *MLLIB[name])
        start = time.perf_counter()
        model.fit(split.train)
        seconds = time.perf_counter() - start
        del model.factorize
        res = evaluate(model, split.train, split.test, k=10, track="all", beyond_accuracy=False)
        rows.append({"variant": name, "ndcg@10": res["ndcg"], "recall@10": res["recall"], "fit s": seconds})
        print(rows[-1], flush=True)
    print(f"\nValidation (train weeks < 46, weeks 46-49), seed {args.seed}:\n")
    print(markdown_table(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
