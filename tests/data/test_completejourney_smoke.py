"""The one smoke path on the real Complete Journey data: adapter -> validated Parquet -> Dataset."""

from __future__ import annotations

import pytest

from recsys.data.dataset import Dataset
from recsys.data.io import read_manifest
from recsys.data.schema import DIET_ATTRIBUTES


@pytest.mark.realdata
def test_completejourney_prepares_valid_canonical_tables(completejourney_dir):
    out, tables, report = completejourney_dir
    assert report.raw_sizes["transactions"] == 1_469_307
    assert report.raw_sizes["products"] == 92_331
    assert len(tables["customers"]) == 2_469
    # every raw line is either kept or counted as dropped, with its reason
    kept = len(tables["interactions"])
    dropped = sum(n for reason, n in report.dropped.items() if reason.startswith("lines"))
    assert kept + dropped == 1_469_307
    products = tables["products"]
    assert not products["department"].isin(["COUPON", "FUEL", "KIOSK-GAS", "MISCELLANEOUS"]).any()
    for attr in DIET_ATTRIBUTES:
        assert set(products[attr].unique()) <= {"yes", "no", "unknown"}
    offers = tables["offers"]
    assert len(offers) == 6_589 and offers["redeemed_at"].notna().sum() > 0
    # promotion calendar: every raw row kept, merged (same product, store, week) or counted as dropped
    promotions = tables["promotions"]
    merged = report.dropped["duplicate promotion rows merged (same product, store and week)"]
    outside = report.dropped["promotion rows of products outside the merchandise catalog"]
    assert len(promotions) + merged + outside == report.raw_sizes["promotions"] == 20_940_529
    assert (
        promotions["week_start"].nunique() == 53
        and (promotions["display"] | promotions["mailer"]).mean() > 0.99
    )

    manifest = read_manifest(out)
    assert manifest["source"] == "completejourney" and manifest["tables"]["interactions"] == kept
    dataset = Dataset.load(out)
    assert (
        dataset.n_users == 2_469 and dataset.user_item_matrix().nnz == 859_089
    )  # distinct household x product pairs
    assert len(dataset.promotions) == len(promotions) and (dataset.promotions["item_idx"] >= 0).all()
