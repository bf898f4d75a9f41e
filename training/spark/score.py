"""Batch selection in Spark: every customer's list through the one selection path, in Spark tasks.

Customers are spread over partitions; each task loads the saved model and its catalog once
(`recsys.personalize.load_selector`, from storage every executor can read) and answers its customers
with `ProductSelector.recommend_frame`, the code `recsys recommend`, the service and the promotion
gate use. Scores, diet masks (fail-closed), top-k and tie-breaking are therefore those of the local
engine by construction; Spark adds only the distribution and the final ordering.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recsys.diet.profiles import EMPTY_PROFILE, DietProfile
from recsys.ranking.selection import ProductQuery

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

OUTPUT_SCHEMA = "user_id string, item_id string, rank long, score double, reason string, _pos long"
#: Customers per task batch (Arrow batch size of the tasks' input).
BATCH = 2048


def _positions(recs: pd.DataFrame, users: list[str], positions: np.ndarray) -> np.ndarray:
    """Each output row's customer position: a list starts at rank 1 and belongs to the next customer
    of the batch with that id (customers with an empty list have no rows)."""
    out = np.empty(len(recs), dtype=np.int64)
    starts = np.flatnonzero(recs["rank"].to_numpy() == 1)
    ends = np.append(starts[1:], len(recs))
    j = 0
    for lo, hi in zip(starts, ends, strict=True):
        user = recs["user_id"].iat[lo]
        while users[j] != user:
            j += 1
        out[lo:hi] = positions[j]
        j += 1
    return out


def recommend_spark(
    model_dir: Path,
    users: list[str],
    query: ProductQuery,
    profile: DietProfile = EMPTY_PROFILE,
    withdrawn: set[str] | frozenset[str] = frozenset(),
    data_dir: Path | None = None,
    partitions: int | None = None,
) -> DataFrame:
    """user_id, item_id, rank, score, reason for `users` in their order (a Spark DataFrame, lazy):
    the rows `ProductSelector.recommend_frame` gives for the same customers. `withdrawn` customers
    get the non-personalised list. `model_dir` (and `data_dir`) must be readable by every executor."""
    from recsys.personalize import load_selector
    from training.spark.session import spark_session

    spark = spark_session("recsys-recommend")
    model_dir = str(Path(model_dir).resolve())
    data = str(Path(data_dir).resolve()) if data_dir else None
    customers = pd.DataFrame(
        {
            "_pos": np.arange(len(users), dtype=np.int64),
            "user_id": pd.Series(users, dtype=object),
            "personalised": [u not in withdrawn for u in users],
        }
    )
    frame = spark.createDataFrame(customers, "_pos long, user_id string, personalised boolean")
    frame = frame.repartition(partitions or spark.sparkContext.defaultParallelism, "_pos")

    def select(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        selector = load_selector(Path(model_dir), Path(data) if data else None)
        for batch in batches:
            ids = batch["user_id"].astype(str).tolist()
            shoppers = [
                selector.shopper(u, profile, personalised=bool(p))
                for u, p in zip(ids, batch["personalised"], strict=True)
            ]
            recs = selector.recommend_frame([query] * len(shoppers), shoppers)
            recs["_pos"] = _positions(recs, ids, batch["_pos"].to_numpy())
            # object columns: pyspark's Arrow bridge does not take pandas 3's Arrow-backed strings
            yield recs.astype({"user_id": object, "item_id": object, "reason": object, "rank": "int64"})

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH))
    return frame.mapInPandas(select, OUTPUT_SCHEMA).orderBy("_pos", "rank").drop("_pos")
