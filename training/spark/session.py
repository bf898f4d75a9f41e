"""One SparkSession for the Spark jobs: spark-submit's master when there is one, else local mode."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Master when the job is not started by spark-submit (which sets spark.master itself).
LOCAL_MASTER = "local[*]"


def spark_session(app: str = "recsys") -> SparkSession:
    """The active session or a new one. Timestamps are UTC wall clock (the canonical tables' naive
    UTC), so reading and writing a timestamp never shifts it."""
    try:
        from pyspark import SparkConf
        from pyspark.sql import SparkSession
    except ImportError as exc:  # the optional extra is not installed
        raise RuntimeError("engine 'spark' needs pyspark: pip install 'grocery-recsys[spark]'") from exc

    # Python workers run this interpreter in local mode (a cluster sets PYSPARK_PYTHON itself).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app)
    if not SparkConf().contains("spark.master"):
        builder = builder.master(os.environ.get("RECSYS_SPARK_MASTER", LOCAL_MASTER))
    return (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
