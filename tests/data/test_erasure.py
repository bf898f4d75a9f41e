"""Erasure keys and dropping erased customers from canonical tables (known answers)."""

from __future__ import annotations

import pandas as pd

from recsys.data.erasure import drop_erased, erased_ids, erasure_key

KEY_C1 = "d0f631ca1ddba8db3bcfcb9e057cdc98d0379f1bee00e75a545147a27dadd982"  # sha256(b"c1")


def with_optional_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    offers = pd.DataFrame(
        {
            "offer_id": ["o1", "o2", "o3"],
            "customer_id": ["c1", "c2", "c1"],
            "product_group": ["BREAD", "BREAD", "MILK"],
            "sent_at": ["2024-01-01T00:00:00"] * 3,
        }
    )
    members = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c3"],
            "member_id": ["m1", "m2", "m1"],
            "diet_exclusions": ["nuts", "", ""],
        }
    )
    return {**tables, "offers": offers, "household_members": members}


def test_erasure_key_is_sha256_hex_of_the_utf8_id():
    assert erasure_key("c1") == KEY_C1
    assert erasure_key("kund-ö") == "5f4321b95ce353565caef47f581470659b7a9298502d336a1a82c7e1ac89d405"
    assert len(erasure_key("x")) == 64


def test_drop_erased_removes_every_row_of_the_customer(tables):
    full = with_optional_tables(tables)
    kept, dropped = drop_erased(full, {KEY_C1})
    assert dropped == 1
    for name in ("customers", "interactions", "offers", "household_members"):
        assert "c1" not in set(kept[name]["customer_id"]), name
    assert list(kept["customers"]["customer_id"]) == ["c2", "c3"]
    assert list(kept["interactions"]["customer_id"]) == ["c2", "c2", "c3"]
    assert list(kept["offers"]["offer_id"]) == ["o2"]
    assert list(kept["household_members"]["customer_id"]) == ["c3"]
    # other customers' rows are untouched, tables not keyed by customer are the same objects
    pd.testing.assert_frame_equal(
        kept["interactions"],
        full["interactions"][full["interactions"]["customer_id"] != "c1"].reset_index(drop=True),
    )
    assert kept["products"] is full["products"]
    # the input is not modified
    assert len(full["customers"]) == 3 and len(full["offers"]) == 3


def test_drop_erased_counts_distinct_customers_and_ignores_unknown_keys(tables):
    keys = {erasure_key("c1"), erasure_key("c3"), erasure_key("not-a-customer")}
    kept, dropped = drop_erased(tables, keys)
    assert dropped == 2
    assert list(kept["customers"]["customer_id"]) == ["c2"]
    assert erased_ids(tables, keys) == {"c1", "c3"}


def test_nothing_erased_leaves_tables_unchanged(tables):
    for keys in (set(), {erasure_key("somebody-else")}):
        kept, dropped = drop_erased(tables, keys)
        assert dropped == 0
        for name, frame in tables.items():
            assert kept[name] is frame


def test_serving_stores_the_same_key():
    from serving.events import id_hash

    assert id_hash("c1") == KEY_C1 == erasure_key("c1")
