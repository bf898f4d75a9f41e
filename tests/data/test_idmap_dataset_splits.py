from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.dataset import Dataset
from recsys.data.idmap import IdMap, UnknownIdError
from recsys.data.io import read_tables
from recsys.data.splits import last_n_baskets_split, temporal_split
from recsys.data.validation import validated


def test_idmap_round_trips_and_add_keeps_old_indices():
    m = IdMap(["a", "b", 3])
    assert m.to_internal(["3", "a"]).tolist() == [2, 0]
    assert m.to_external([0, 2]).tolist() == ["a", "3"]
    bigger = m.add(["c", "a", "d", "c"])
    assert bigger.to_list() == ["a", "b", "3", "c", "d"]
    assert bigger.to_internal(m.to_list()).tolist() == [0, 1, 2]
    assert len(m) == 3  # the original is untouched
    assert m.to_internal(["zz", "a"], strict=False).tolist() == [-1, 0]
    with pytest.raises(UnknownIdError, match="'zz'"):
        m.to_internal(["zz"])
    with pytest.raises(ValueError, match="duplicate"):
        IdMap(["a", "a"])


@pytest.fixture
def dataset(tables) -> Dataset:
    return Dataset.from_tables(validated(tables))


def test_matrix_weightings(dataset):
    counts = dataset.user_item_matrix("count").toarray()
    # c2 bought p1 twice, c1 bought p2 and p3 once
    assert counts[1, 0] == 2 and counts[0, 1] == 1 and counts[0, 2] == 1
    assert dataset.user_item_matrix("binary").toarray()[1, 0] == 1
    rec = dataset.user_item_matrix(
        "recency", half_life_days=7, now=pd.Timestamp("2024-02-01T09:00:00")
    ).toarray()
    # p1 bought by c2 today (weight 1) and 29 days ago (0.5 ** (29/7))
    assert rec[1, 0] == pytest.approx(1 + 0.5 ** (29 / 7), rel=1e-5)
    bm25 = dataset.user_item_matrix("bm25").toarray()
    assert (bm25 >= 0).all() and bm25.shape == (3, 3)
    with pytest.raises(ValueError, match="unknown weighting"):
        dataset.user_item_matrix("tfidf")


def test_temporal_split_leaks_nothing(dataset):
    split = temporal_split(dataset, "2024-01-05")
    assert (split.train.interactions["timestamp"] < pd.Timestamp("2024-01-05")).all()
    assert (split.test.interactions["timestamp"] >= pd.Timestamp("2024-01-05")).all()
    assert len(split.train.interactions) + len(split.test.interactions) == len(dataset.interactions)
    assert split.train.users == dataset.users and split.test.items == dataset.items


def test_last_n_baskets_split_is_per_user_and_leak_free(dataset):
    split = last_n_baskets_split(dataset, n=1)
    test = split.test.interactions
    assert sorted(test["basket_id"]) == ["b2", "b4", "b5"]
    last_train = split.train.interactions.groupby("user_idx")["timestamp"].max()
    first_test = test.groupby("user_idx")["timestamp"].min()
    common = last_train.index.intersection(first_test.index)
    assert (last_train[common] < first_test[common]).all()
    assert np.intersect1d(split.train.interactions["basket_id"], test["basket_id"]).size == 0


def test_lines_read_from_parquet_by_duckdb_match_the_in_memory_path(tmp_path):
    from lab.synthetic import generate, write_synthetic_parts
    from recsys.data.io import read_tables
    from recsys.models.buy_again import BuyAgain

    write_synthetic_parts(tmp_path / "d", n_customers=90, n_products=150, weeks=6, seed=3, block=40)
    memory = Dataset.from_tables(generate(90, 150, weeks=6, seed=3, block=40).tables)
    parquet = Dataset.load(tmp_path / "d")
    a, b = memory.interactions, parquet.interactions
    for column in ("user_idx", "item_idx", "timestamp", "quantity", "value", "discount"):
        np.testing.assert_array_equal(a[column].to_numpy(), b[column].to_numpy())
    assert (a["channel"].astype(str).to_numpy() == b["channel"].astype(str).to_numpy()).all()
    # basket ids become numbers in id order: the same baskets, sorted the same way
    np.testing.assert_array_equal(a["basket_id"].rank(method="dense"), b["basket_id"].rank(method="dense"))
    for weighting in ("count", "binary", "log", "recency", "bm25"):
        assert (memory.user_item_matrix(weighting) != parquet.user_item_matrix(weighting)).nnz == 0
    users = np.arange(memory.n_users)
    np.testing.assert_array_equal(
        BuyAgain().fit(memory).recommend_idx(users, k=5)[0],
        BuyAgain().fit(parquet).recommend_idx(users, k=5)[0],
    )
    assert len(read_tables(tmp_path / "d")["interactions"]) == len(b)


def test_training_lines_read_before_a_time_are_the_temporal_split(tmp_path):
    from lab.synthetic import write_synthetic_parts

    write_synthetic_parts(tmp_path / "d", n_customers=60, n_products=100, weeks=6, seed=5, block=25)
    cut = pd.Timestamp("2024-01-29")
    train = temporal_split(Dataset.load(tmp_path / "d"), cut).train
    before = Dataset.from_tables(
        {n: t for n, t in read_tables(tmp_path / "d").items() if n != "interactions"}, tmp_path / "d", cut
    )
    assert 0 < len(before.interactions) == len(train.interactions)
    assert (train.user_item_matrix("recency") != before.user_item_matrix("recency")).nnz == 0
    with pytest.raises(ValueError, match="needs `lines`"):
        Dataset.from_tables(read_tables(tmp_path / "d"), before=cut)
