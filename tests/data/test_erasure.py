"""Erasure keys and dropping erased customers from canonical tables (known answers)."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from recsys.data.erasure import (
    customer_ids,
    drop_erased,
    erased_ids,
    erasure_key,
    legacy_key,
    load_secret,
    secret_file,
)

SECRET = b"0123456789abcdef0123456789abcdef"
KEY_C1 = erasure_key("c1", SECRET)
LEGACY_C1 = "d0f631ca1ddba8db3bcfcb9e057cdc98d0379f1bee00e75a545147a27dadd982"  # sha256(b"c1")


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
    engagement = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c1"],
            "channel": ["email", "app", "store"],
            "timestamp": ["2024-01-01T09:00:00"] * 3,
            "event": ["open", "open", "visit"],
        }
    )
    return {**tables, "offers": offers, "household_members": members, "engagement": engagement}


def test_erasure_key_is_an_hmac_under_the_secret():
    # HMAC-SHA256("secret", "c1"): a known answer, so serving and batch jobs can never drift apart
    assert erasure_key("c1", b"secret") == "4d8f8eb560906bfedd2951eca48d35962c05bb79ee4d6026625da3a3d9f07493"
    assert len(KEY_C1) == 64 and KEY_C1 != LEGACY_C1 == legacy_key("c1")
    assert erasure_key("c1", b"another secret") != KEY_C1  # without the secret, trying ids finds nothing


def test_secret_from_env_else_a_0600_file_next_to_the_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    assert load_secret(url, {"RECSYS_ERASURE_SECRET": "s" * 40}) == b"s" * 40
    path = secret_file(url, {})
    assert path == tmp_path / "events.db.erasure-key" and not path.exists()
    with pytest.raises(FileNotFoundError):
        load_secret(url, {}, create=False)
    first = load_secret(url, {})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(first) == 64
    assert load_secret(url, {}) == first  # kept, not regenerated
    other = tmp_path / "k"
    assert secret_file(url, {"RECSYS_ERASURE_SECRET_FILE": str(other)}) == other


def test_drop_erased_removes_every_row_of_the_customer(tables):
    full = with_optional_tables(tables)
    kept, dropped = drop_erased(full, {KEY_C1}, SECRET)
    assert dropped == 1
    for name in ("customers", "interactions", "offers", "household_members", "engagement"):
        assert "c1" not in set(kept[name]["customer_id"]), name
    assert list(kept["customers"]["customer_id"]) == ["c2", "c3"]
    assert list(kept["interactions"]["customer_id"]) == ["c2", "c2", "c3"]
    assert list(kept["offers"]["offer_id"]) == ["o2"]
    assert list(kept["household_members"]["customer_id"]) == ["c3"]
    assert list(kept["engagement"]["channel"]) == ["app"]  # the erased customer's engagement is gone
    # other customers' rows are untouched, tables not keyed by customer are the same objects
    pd.testing.assert_frame_equal(
        kept["interactions"],
        full["interactions"][full["interactions"]["customer_id"] != "c1"].reset_index(drop=True),
    )
    assert kept["products"] is full["products"]
    # the input is not modified
    assert len(full["customers"]) == 3 and len(full["offers"]) == 3


def test_drop_erased_counts_distinct_customers_and_ignores_unknown_keys(tables):
    keys = {erasure_key("c1", SECRET), erasure_key("not-a-customer", SECRET)}
    kept, dropped = drop_erased(tables, keys, SECRET, legacy={legacy_key("c3")})
    assert dropped == 2
    assert list(kept["customers"]["customer_id"]) == ["c2"]
    assert erased_ids(customer_ids(tables), keys, SECRET, {legacy_key("c3")}) == {"c1", "c3"}


def test_nothing_erased_leaves_tables_unchanged(tables):
    for keys in (set(), {erasure_key("somebody-else", SECRET)}):
        kept, dropped = drop_erased(tables, keys, SECRET)
        assert dropped == 0
        for name, frame in tables.items():
            assert kept[name] is frame


def test_serving_stores_the_same_key(tmp_path):
    from serving.events import EventStore

    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}", secret=SECRET)
    try:
        assert store.id_hash("c1") == KEY_C1
    finally:
        store.close()
