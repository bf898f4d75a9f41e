"""Spark MLlib ALS (implicit feedback) as the distributed way to fit the project's `als` model.

The model is the same `recsys.models.ALS` (same parameters, same user x item weighting, same saved
format, same selection and serving); only its factorisation runs in MLlib instead of `implicit`:
`factors` -> rank, `iterations` -> maxIter, `random_state` -> seed, and `alpha` and
`regularization` through `mllib_ratings` and `mllib_reg_param`, because the two libraries write the
same loss (Hu, Koren, Volinsky 2008) with different conventions:

- confidence: implicit weighs a purchase by alpha x weight; MLlib by 1 + alpha' x rating, and reads
  only a positive rating as a purchase (preference 1). Passing the weights as ratings adds 1 to
  every purchase's confidence, which shifts the balance between bought and not-bought cells;
  `mllib_ratings` passes implicit's confidence minus 1 (with alpha' = 1) instead.
- regularisation: MLlib multiplies regParam by each row's number of ratings (ALS-WR), implicit adds
  `regularization` to every row; `mllib_reg_param` makes the two equal on average over the rows.
benchmarks/spark.py compares the two fits on the project's split.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.models.base import Recommender
from recsys.models.implicit_models import ALS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


#: The rating a purchase whose implicit confidence is at most 1 gets: MLlib's confidence cannot go
#: below 1 (that of a cell not bought), and only a positive rating keeps preference 1.
MIN_RATING = 1e-3


def mllib_ratings(confidence: np.ndarray) -> np.ndarray:
    """MLlib ratings (for alpha = 1) of implicit confidences (alpha x weight of each stored cell).

    MLlib's confidence is 1 + |rating|, preference 1 for a positive rating and 0 otherwise; implicit's
    is the value itself, preference 1 for a positive value and 0 (confidence |value|) for a negative
    one. So a rating is the confidence minus 1, which gives the same confidence whenever implicit's
    is at least 1. A purchase weighted below 1 (a staple nearly everyone buys, under BM25) cannot
    weigh less than a cell not bought in MLlib: it gets the nearest it can, confidence 1 with
    preference 1, rather than a negative rating, which MLlib would read as "not bought"."""
    confidence = np.asarray(confidence, dtype=np.float64)
    positive = np.maximum(confidence - 1.0, MIN_RATING)
    negative = -np.maximum(-confidence - 1.0, 0.0)
    return np.where(confidence > 0, positive, negative).astype(np.float32)


def mllib_reg_param(regularization: float, matrix: sp.csr_matrix) -> float:
    """MLlib regParam for implicit's `regularization` on this users x items matrix.

    MLlib adds regParam x (the row's number of purchases) to each user's and each item's normal
    equations (ALS-WR), implicit adds `regularization` to every row. Every stored cell counts once
    for its user and once for its item, so over the rows MLlib solves (users and items with at least
    one purchase) the average added term equals `regularization` when regParam = regularization x
    rows / (2 x cells). One value cannot match every row: heavy buyers and popular items still get
    more shrinkage than in implicit, rare ones less."""
    positive = matrix.tocsr().copy()
    positive.data = (positive.data > 0).astype(np.float32)
    positive.eliminate_zeros()
    if positive.nnz == 0:
        return float(regularization)
    rows = int((np.diff(positive.indptr) > 0).sum()) + int(np.unique(positive.indices).size)
    return float(regularization) * rows / (2.0 * positive.nnz)


def checkpointed(spark: SparkSession) -> None:
    """Give a local session a checkpoint directory if it has none (removed when Python exits).

    MLlib ALS cuts the lineage of its factor RDDs every `checkpointInterval` iterations only when
    the context has a checkpoint directory; without one the lineage of every iteration travels with
    each task, and deserialising it can overflow an executor thread's stack (StackOverflowError).
    A cluster job sets its own directory on shared storage (`SparkContext.setCheckpointDir`)."""
    context = spark.sparkContext
    if context.getCheckpointDir() is None and context.master.startswith("local"):
        path = tempfile.mkdtemp(prefix="recsys-als-checkpoints-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        context.setCheckpointDir(path)


def mllib_factorize(spark: SparkSession, model: ALS, matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(user factors, item factors), float32, of a weighted users x items matrix, fitted by MLlib
    on the loss implicit minimises for `model` (`mllib_ratings`, `mllib_reg_param`). Users or items
    MLlib never saw (no purchase) keep zero factors."""
    from pyspark.ml.recommendation import ALS as MLlibALS

    checkpointed(spark)
    coo = matrix.tocoo()
    ratings = pd.DataFrame(
        {
            "user": coo.row.astype(np.int32),
            "item": coo.col.astype(np.int32),
            "rating": mllib_ratings(model.alpha * coo.data.astype(np.float64)),
        }
    )
    frame = spark.createDataFrame(ratings, "user int, item int, rating float")
    fitted = MLlibALS(
        rank=model.factors,
        maxIter=model.iterations,
        regParam=mllib_reg_param(model.regularization, matrix),
        alpha=1.0,
        implicitPrefs=True,
        seed=model.random_state,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
    ).fit(frame)

    def dense(factors, rows: int) -> np.ndarray:
        got = factors.toPandas()
        out = np.zeros((rows, model.factors), dtype=np.float32)
        if len(got):
            out[got["id"].to_numpy()] = np.stack(got["features"].to_numpy()).astype(np.float32)
        return out

    return dense(fitted.userFactors, matrix.shape[0]), dense(fitted.itemFactors, matrix.shape[1])


def fit_with_spark(model: Recommender, dataset: Dataset) -> Recommender:
    """`model.fit(dataset)` with the factorisation in Spark (engine: spark); only ALS has one."""
    if not isinstance(model, ALS):
        raise ValueError(
            f"engine 'spark' fits the als model (MLlib ALS); {model.name!r} trains with engine 'local'"
        )
    from training.spark.session import spark_session

    spark = spark_session("recsys-train")
    # the instance's factorisation step, for this fit only; everything else is ALS.fit
    model.factorize = lambda matrix, start=None: mllib_factorize(spark, model, matrix)
    try:
        return model.fit(dataset)
    finally:
        del model.factorize
