"""An out-of-core Dataset (lines left in Parquet parts) gives the models exactly what the in-memory
one gives: the same per-pair matrices and buy-again statistics, the same fitted scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lab.synthetic import write_synthetic_parts
from recsys.data.dataset import Dataset
from recsys.data.io import read_tables, table_files
from recsys.models.buy_again import BuyAgain
from recsys.models.implicit_models import ALS

BEFORE = pd.Timestamp("2024-02-12")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ooc") / "data"
    write_synthetic_parts(out, 300, 200, 8, seed=3, block=100)  # three parts of purchase lines
    assert len(table_files(out, "interactions")) >= 3
    return out


def both(data_dir, tables=None, before=BEFORE) -> tuple[Dataset, Dataset]:
    tables = tables or read_tables(data_dir, skip=("interactions",))
    memory = Dataset.from_tables(tables, lines=data_dir, before=before)
    disk = Dataset.from_tables(tables, lines=data_dir, before=before, in_memory=False)
    assert disk.interactions is None and memory.interactions is not None
    return memory, disk


@pytest.mark.parametrize("weighting", ["binary", "count", "log", "bm25"])
def test_matrices_are_equal(data_dir, weighting):
    memory, disk = both(data_dir)
    a, b = memory.user_item_matrix(weighting), disk.user_item_matrix(weighting)
    assert a.nnz > 0 and a.shape == b.shape and (a != b).nnz == 0
    assert disk.n_lines == memory.n_lines == len(memory.interactions)


def test_recency_needs_the_lines_in_memory(data_dir):
    _, disk = both(data_dir)
    with pytest.raises(ValueError, match="recency weighting needs the lines in memory"):
        disk.user_item_matrix("recency")


def test_buy_again_fits_the_same_from_disk(data_dir):
    memory, disk = both(data_dir)
    a, b = BuyAgain().fit(memory), BuyAgain().fit(disk)
    users = np.arange(memory.n_users)
    np.testing.assert_allclose(a.score(users), b.score(users), rtol=1e-6)
    assert a.now_[0] == b.now_[0]
    # the statistics against a direct count: baskets per pair from the lines themselves
    inter = memory.interactions
    pairs = (
        inter.drop_duplicates(["user_idx", "item_idx", "basket_id"]).groupby(["user_idx", "item_idx"]).size()
    )
    got = b.n_.tocoo()
    assert (
        dict(zip(zip(got.row, got.col, strict=True), got.data, strict=True)) == pairs.astype(float).to_dict()
    )


def test_als_factors_are_identical(data_dir):
    memory, disk = both(data_dir)
    a = ALS(factors=4, iterations=2).fit(memory)
    b = ALS(factors=4, iterations=2).fit(disk)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)


def test_customers_missing_from_the_tables_are_dropped(data_dir):
    tables = read_tables(data_dir, skip=("interactions",))
    gone = tables["customers"]["customer_id"].iloc[:10]
    tables["customers"] = tables["customers"].iloc[10:]  # as erased customers are
    memory, disk = both(data_dir, tables)
    assert disk.n_lines == memory.n_lines
    assert disk.user_item_matrix("count").shape[0] == len(tables["customers"])
    assert not set(gone) & set(disk.users.to_list())


def test_basket_sample_keeps_whole_baskets(data_dir):
    memory, disk = both(data_dir)
    everything = disk.basket_lines()
    assert len(everything) == memory.n_lines  # under the cap: every line
    sample = disk.basket_lines(max_lines=memory.n_lines // 4)
    assert 0.1 < len(sample) / memory.n_lines < 0.45
    sizes = everything.groupby("basket_id").size()
    sampled = sample.groupby("basket_id").size()
    assert (sizes.loc[sampled.index] == sampled).all()  # no basket cut in two


def test_aggregates_in_customer_passes_equal_one_pass(data_dir, monkeypatch):
    from recsys.data import pairs

    _, disk = both(data_dir)
    whole = (disk.user_item_matrix("count"), disk.basket_stats(90.0))
    monkeypatch.setattr(pairs, "LINES_PER_PASS", 1_000)  # many passes over customer ranges
    _, disk = both(data_dir)
    parts = (disk.user_item_matrix("count"), disk.basket_stats(90.0))
    assert (whole[0] != parts[0]).nnz == 0
    assert (whole[1].matrix_pattern != parts[1].matrix_pattern).nnz == 0
    for key in ("first", "last", "wcount"):
        np.testing.assert_array_equal(getattr(whole[1], key), getattr(parts[1], key))


def test_windows_are_equal_and_match_the_lines(data_dir):
    memory, disk = both(data_dir)
    after, before = pd.Timestamp("2024-01-15"), pd.Timestamp("2024-02-01")
    a = memory.window(after=after, before=before).user_item_matrix("count")
    b = disk.window(after=after, before=before).user_item_matrix("count")
    assert a.nnz > 0 and (a != b).nnz == 0
    ts = memory.interactions["timestamp"]
    assert a.sum() == ((ts >= after) & (ts < before)).sum()
    # a window of a window narrows it: it never reaches past the outer one
    assert disk.window(before=before).window(before=BEFORE).latest() < before
    assert memory.latest() == disk.latest() == ts.max()


def test_subset_is_a_program_of_its_own(data_dir, tmp_path):
    memory, disk = both(data_dir)
    idx = np.array([3, 50, 51, 120, 299])
    full = memory.user_item_matrix("count")
    for sub in (memory.subset(idx), disk.subset(idx), disk.subset(idx, tmp_path / "lines")):
        assert sub.users.to_list() == [memory.users.to_list()[i] for i in idx]
        assert (sub.user_item_matrix("count") != full[idx]).nnz == 0
    # written once, then read from its own file
    assert disk.subset(idx, tmp_path / "w").lines.files == (tmp_path / "w" / "lines.parquet",)


def test_customer_stats_equal_a_direct_count(data_dir):
    memory, disk = both(data_dir)
    inter = memory.interactions
    for stats in (memory.customer_stats(), disk.customer_stats()):
        baskets = inter.groupby("user_idx")["basket_id"].nunique()
        np.testing.assert_array_equal(stats.baskets[baskets.index], baskets.to_numpy())
        last = inter.groupby("user_idx")["timestamp"].max()
        np.testing.assert_array_equal(stats.last[last.index], last.to_numpy())
    main = disk.customer_stats(with_store=True).store
    visits = inter.drop_duplicates(["user_idx", "basket_id"])
    top = visits.groupby("user_idx")["store_id"].agg(lambda s: s.astype(str).value_counts().max())
    got = main.set_index("user_idx")["store_id"]
    counted = visits.assign(s=visits["store_id"].astype(str)).groupby(["user_idx", "s"]).size()
    assert all(counted[(u, got[u])] == top[u] for u in got.index)  # a store with the most visits
