"""Spark MLlib ALS (implicit feedback) as the distributed way to fit the project's `als` model.

The model is the same `recsys.models.ALS` (same parameters, same user x item weighting, same saved
format, same selection and serving); only its factorisation runs in MLlib instead of `implicit`:
`regularization` -> regParam, `alpha` -> alpha (confidence 1 + alpha * weight), `factors` -> rank,
`iterations` -> maxIter, `random_state` -> seed. MLlib scales the regularisation by each row's number
of ratings (ALS-WR), so the same value regularises more than in `implicit`; benchmarks/spark.py
compares the two on the project's split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.models.base import Recommender
from recsys.models.implicit_models import ALS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def mllib_factorize(spark: SparkSession, model: ALS, matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(user factors, item factors), float32, of a weighted users x items matrix, fitted by MLlib.
    Users or items MLlib never saw (no positive weight) keep zero factors."""
    from pyspark.ml.recommendation import ALS as MLlibALS

    coo = matrix.tocoo()
    ratings = pd.DataFrame(
        {
            "user": coo.row.astype(np.int32),
            "item": coo.col.astype(np.int32),
            "rating": coo.data.astype(np.float32),
        }
    )
    frame = spark.createDataFrame(ratings, "user int, item int, rating float")
    fitted = MLlibALS(
        rank=model.factors,
        maxIter=model.iterations,
        regParam=model.regularization,
        alpha=model.alpha,
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
