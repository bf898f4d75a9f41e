"""A hand-made raw Complete Journey (the eight tables in the package's layout and dtypes), small
enough for Spark's local mode, with every case the adapter treats specially: non-merchandise
products and their lines, returns (quantity <= 0), an orphan redemption, a household known only from
demographics or campaigns, promotion rows of unknown products or weeks and duplicate placements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def raw_tables(seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    products = pd.DataFrame(
        {
            "product_id": np.arange(100, 130, dtype=np.int64),
            "manufacturer_id": np.arange(30, dtype=np.int64),
            "department": ["GROCERY", "PRODUCE", "MEAT", "DRUG GM", "PASTRY"] * 5
            + ["FUEL", "COUPON"] * 2
            + ["GROCERY"],
            "brand": (["National", "Private", None] * 10),
            "product_category": ["BAKED BREAD/BUNS/ROLLS", "FLUID MILK PRODUCTS", "BEEF", "VITAMINS", None]
            * 6,
            "product_type": ["WHITE BREAD", None, "LEAN", "MULTI", "ROLLS", "SKIM MILK"] * 5,
            "package_size": ["16 OZ", None, "1 LB ", "", "12 CT"] * 6,
        }
    )
    products = products.astype({c: "string" for c in products.columns[2:]})
    start = pd.Timestamp("2017-01-02 05:10:00")
    n = 400
    households = rng.integers(1, 9, n).astype(np.int64)
    product = rng.choice(products["product_id"].to_numpy(), n)
    quantity = rng.choice([1, 1, 2, 3, 0, -1], n).astype(np.int64)
    sales = rng.choice([1.99, 2.49, 3.5, 0.89, 4.25], n) * np.maximum(quantity, 1)
    week = rng.integers(0, 6, n)
    ts = (
        start + pd.to_timedelta(week * 7, unit="D") + pd.to_timedelta(rng.integers(0, 6 * 86400, n), unit="s")
    )
    transactions = pd.DataFrame(
        {
            "household_id": households,
            "store_id": rng.choice([300, 301, 302], n).astype(np.int64),
            "basket_id": (households * 1000 + week).astype(np.int64),
            "product_id": product.astype(np.int64),
            "quantity": quantity,
            "sales_value": sales,
            "retail_disc": rng.choice([0.0, 0.0, 0.3, 0.55], n),
            "coupon_disc": rng.choice([0.0, 0.0, 0.0, 0.5], n),
            "coupon_match_disc": rng.choice([0.0, 0.0, 0.0, 0.25], n),
            "week": (week + 1).astype(np.int64),
            "transaction_timestamp": ts.astype("datetime64[ns]"),
        }
    )
    demographics = pd.DataFrame(
        {
            "household_id": np.array([1, 3, 5, 11], dtype=np.int64),
            "age": ["25-34", "45-54", None, "65+"],
            "income": ["50-74K", None, "100-124K", "Under 15K"],
            "home_ownership": ["Homeowner"] * 4,
            "marital_status": ["Married"] * 4,
            "household_size": ["2", "5+", None, "1"],
            "household_comp": ["2 Adults No Kids"] * 4,
            "kids_count": ["0"] * 4,
        }
    ).astype({c: "string" for c in ("age", "income", "home_ownership", "marital_status", "household_size")})
    campaigns = pd.DataFrame(
        {
            "campaign_id": np.array([1, 1, 2, 2, 2], dtype=np.int64),
            "household_id": np.array([1, 2, 2, 12, 4], dtype=np.int64),
        }
    )
    campaign_descriptions = pd.DataFrame(
        {
            "campaign_id": np.array([1, 2], dtype=np.int64),
            "campaign_type": pd.Series(["Type A", "Type B"], dtype="string"),
            "start_date": pd.to_datetime(["2017-01-09", "2017-01-23"]).astype("datetime64[ns]"),
            "end_date": pd.to_datetime(["2017-02-12", "2017-02-26"]).astype("datetime64[ns]"),
        }
    )
    coupons = pd.DataFrame(
        {
            "coupon_upc": np.arange(8, dtype=np.int64),
            "product_id": np.array([100, 101, 101, 125, 102, 102, 103, 126], dtype=np.int64),
            "campaign_id": np.array([1, 1, 1, 1, 2, 2, 2, 2], dtype=np.int64),
        }
    )
    coupon_redemptions = pd.DataFrame(
        {
            "household_id": np.array([2, 2, 7], dtype=np.int64),
            "coupon_upc": np.array([1, 4, 6], dtype=np.int64),
            "campaign_id": np.array([2, 2, 1], dtype=np.int64),
            "redemption_date": pd.to_datetime(["2017-01-30", "2017-01-25", "2017-01-20"]).astype(
                "datetime64[ns]"
            ),
        }
    )
    m = 300
    promotions = pd.DataFrame(
        {
            "product_id": rng.choice(np.arange(98, 130), m).astype(np.int64),
            "store_id": rng.choice([300, 301], m).astype(np.int64),
            "display_location": pd.Series(rng.choice(["0", "1", "5", "A"], m), dtype="string"),
            "mailer_location": pd.Series(rng.choice(["0", "0", "D", "F"], m), dtype="string"),
            "week": rng.integers(1, 9, m).astype(np.int64),
        }
    )
    return {
        "transactions": transactions,
        "products": products,
        "demographics": demographics,
        "campaigns": campaigns,
        "campaign_descriptions": campaign_descriptions,
        "coupons": coupons,
        "coupon_redemptions": coupon_redemptions,
        "promotions": promotions,
    }


def write_raw(raw: dict[str, pd.DataFrame], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in raw.items():
        frame.to_parquet(
            out / f"{name}.parquet", index=False, coerce_timestamps="us"
        )  # Spark reads no nanoseconds
    return out
