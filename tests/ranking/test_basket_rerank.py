"""The learned basket re-ranker: features with known answers, no leakage from the held-out baskets,
save/load/validate of its file, and the one selection path's guarantees (basket items never
recommended, diet fail-closed, k honoured) with it on. Tiny fixtures only: nothing fits on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.diet.profiles import as_profile
from recsys.models.base import Recommender
from recsys.models.buy_again import BuyAgain
from recsys.models.model_dir import save_model_dir, write_checksums
from recsys.models.validate import ModelCorrupt
from recsys.personalize import align_items
from recsys.ranking.basket import BasketCompleter
from recsys.ranking.basket_rerank import (
    FEATURES,
    RERANK_FILE,
    BasketReranker,
    PurchaseStats,
    fit_basket_reranker,
    training_rows,
)
from recsys.ranking.selection import ProductQuery, ProductSelector
from tests.serving.conftest import BREAD_BUYERS, MEAT_BUYERS, make_tables

T0 = pd.Timestamp("2024-01-01")


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset.from_tables(make_tables())


@pytest.fixture(scope="module")
def fitted(dataset):
    """BuyAgain + its re-ranker on the serving fixture (baskets of 2+ products: the fixture is small)."""
    model = BuyAgain().fit(dataset)
    reranker = fit_basket_reranker(model, dataset, min_known=2, min_cases=5)
    assert reranker is not None
    completer = BasketCompleter.from_interactions(dataset.interactions, dataset.n_items)
    completer.reranker = reranker
    return model, completer


def _stats() -> PurchaseStats:
    lines = pd.DataFrame(
        {
            "user_idx": [0, 0, 0, 0, 1],
            "item_idx": [2, 3, 2, 0, 2],
            "basket_id": ["a", "b", "c", "c", "d"],
            "timestamp": T0 + pd.to_timedelta([0, 5, 10, 10, 1], unit="D"),
        }
    )
    return PurchaseStats.from_interactions(lines, n_users=2, n_items=6)


def test_purchase_stats_count_baskets_and_the_last_purchase():
    stats = _stats()
    n, since = stats.lookup(0, np.array([2, 3, 4]))
    assert n.tolist() == [2, 1, 0]
    assert since[:2].tolist() == [0.0, 5.0] and np.isnan(since[2])  # days before the last line
    assert stats.user_baskets.tolist() == [3, 1]
    assert stats.pop.tolist() == [1, 0, 3, 1, 0, 0]  # baskets holding each product
    n, since = stats.lookup(-1, np.array([2]))  # an unknown customer: never bought anything
    assert n.tolist() == [0] and np.isnan(since).all()


def test_candidate_cooccurrence_sums_maxes_and_counts_partners():
    nb = sp.csr_matrix(
        (np.array([0.5, 0.2, 0.3, 0.1]), (np.array([0, 0, 1, 1]), np.array([2, 3, 2, 4]))), shape=(6, 6)
    )
    total, best, hits = BasketCompleter(nb).candidate_cooccurrence(np.array([0, 1]), np.array([4, 2, 3, 5]))
    assert total.tolist() == pytest.approx([0.1, 0.8, 0.2, 0.0])
    assert best.tolist() == pytest.approx([0.1, 0.5, 0.2, 0.0])
    assert hits.tolist() == [1, 2, 1, 0]


def test_features_have_known_values():
    nb = sp.csr_matrix(
        (np.array([0.5, 0.2, 0.3, 0.1]), (np.array([0, 0, 1, 1]), np.array([2, 3, 2, 4]))), shape=(6, 6)
    )
    completer = BasketCompleter(nb)
    types = np.array([0, 1, 0, 2, 1, -1])
    rr = BasketReranker({}, _stats(), types, np.full(6, -1), candidates=3)
    blended = np.array([-np.inf, -np.inf, 0.9, 0.5, 0.7, 0.1], dtype=np.float32)  # basket masked
    personal = np.array([0.0, 1.0, 4.0, 2.0, 0.0, 0.0], dtype=np.float32)
    cands, X = rr.features(completer, 0, np.array([0, 1]), blended, personal)
    assert cands.tolist() == [2, 4, 3]  # the blend's top 3
    f = {name: X[:, j] for j, name in enumerate(FEATURES)}
    assert f["blend"] == pytest.approx([0.9, 0.7, 0.5])
    assert f["blend_rank"].tolist() == [0, 1, 2]
    assert f["personal"] == pytest.approx([1.0, 0.0, 0.5])
    assert f["cooc_sum"] == pytest.approx([0.8, 0.1, 0.2])
    assert f["cooc_max"] == pytest.approx([0.5, 0.1, 0.2])
    assert f["cooc_hits"].tolist() == [2, 1, 1]
    assert f["cooc_rel"] == pytest.approx([1.0, 0.125, 0.25])
    assert f["n"].tolist() == [2, 0, 1]
    assert f["since"][0] == 0 and np.isnan(f["since"][1]) and f["since"][2] == 5
    assert f["share"] == pytest.approx([2 / 3, 0, 1 / 3])
    assert f["user_baskets"].tolist() == [3, 3, 3]
    assert f["log_pop"] == pytest.approx(np.log1p([3, 0, 1]))
    assert f["same_type"].tolist() == [1, 1, 0]  # basket types {0, 1}; item 3 is type 2
    assert f["same_category"].tolist() == [0, 0, 0]  # no codes: never counted
    assert f["basket_size"].tolist() == [2, 2, 2]
    # P(c | b) = cosine * sqrt(n_c / n_b), baskets per product n = pop (at least 1): n_2 = 3, others 1
    r3 = np.sqrt(3.0)
    assert f["cond_max"] == pytest.approx([0.5 * r3, 0.1, 0.2])
    assert f["cond_sum"] == pytest.approx([0.8 * r3, 0.1, 0.2])
    # lift = cosine * baskets (4) / sqrt(n_b n_c)
    assert f["lift_max"] == pytest.approx([0.5 * 4 / r3, 0.4, 0.8])
    # the customer's lines of each type per basket: type 0 (items 2 twice, 0 once) 3/3, type 1 none
    assert f["type_share"] == pytest.approx([1.0, 0.0, 1 / 3])
    assert f["category_share"].tolist() == [0, 0, 0]
    assert f["personal_rank"].tolist() == [0, 2, 1]  # personal 4, 0, 2


def test_training_rows_see_only_the_data_before_the_held_out_baskets(dataset):
    model = BuyAgain().fit(dataset)
    X, y, cases, reached = training_rows(model, dataset, holdout_days=28, min_known=2)
    assert reached > 0 and y.sum() == reached  # one hidden product per case that the candidates reach
    inter = dataset.interactions
    split = inter["timestamp"].max() - pd.Timedelta(days=28)
    before = inter[inter["timestamp"] < split].drop_duplicates(["user_idx", "item_idx", "basket_id"])
    most = before.groupby(["user_idx", "item_idx"]).size().max()
    # `n` counts baskets before the split only: never more than any pair had there
    assert X[:, FEATURES.index("n")].max() <= most
    pop = before.groupby("item_idx").size()
    assert np.expm1(X[:, FEATURES.index("log_pop")]).max() == pytest.approx(pop.max())


def test_an_older_window_is_held_out_from_its_own_older_data(dataset):
    model = BuyAgain().fit(dataset)
    X, y, cases, reached = training_rows(model, dataset, holdout_days=20, min_known=2, window=1)
    assert cases > 0 and y.sum() == reached
    inter = dataset.interactions
    split = inter["timestamp"].max() - pd.Timedelta(days=40)  # before the window [max-40d, max-20d)
    before = inter[inter["timestamp"] < split].drop_duplicates(["user_idx", "item_idx", "basket_id"])
    assert X[:, FEATURES.index("n")].max() <= before.groupby(["user_idx", "item_idx"]).size().max()
    pop = before.groupby("item_idx").size()
    assert np.expm1(X[:, FEATURES.index("log_pop")]).max() == pytest.approx(pop.max())
    # both windows feed one fit; a window reaching before the data is skipped, not an error
    two = fit_basket_reranker(model, dataset, holdout_days=20, min_known=2, min_cases=5, windows=2)
    assert two is not None and two.fit_info["windows"] == 2
    one = fit_basket_reranker(model, dataset, holdout_days=40, min_known=2, min_cases=5, windows=2)
    assert one is not None and one.fit_info["windows"] == 1


def test_too_little_data_fits_no_reranker(dataset):
    model = BuyAgain().fit(dataset)
    assert fit_basket_reranker(model, dataset, holdout_days=365) is None  # nothing before the holdout
    assert fit_basket_reranker(model, dataset, min_known=2, min_cases=10_000) is None


def _selector(model, dataset, completer) -> ProductSelector:
    return ProductSelector(model, align_items(dataset.items_table, model.items_), baskets=completer)


@pytest.mark.parametrize("diet", [None, "gluten-free", "vegan"])
def test_reranked_baskets_stay_diet_safe_and_never_return_the_basket(fitted, dataset, diet):
    model, completer = fitted
    sel = _selector(model, dataset, completer)
    profile = as_profile(diet) if diet else None
    allowed = sel.engine.allowed(profile) if profile else np.ones(sel.n_items, dtype=bool)
    basket = ("p_bread", "p_beef", "p_mystery")
    for c in [*BREAD_BUYERS, *MEAT_BUYERS, "somebody-new"]:
        shopper = sel.shopper(c, profile) if profile else sel.shopper(c)
        (got,) = sel.select([ProductQuery(k=10, mode="complete_basket", basket=basket)], [shopper])
        ids = sel.item_ids[got.items].tolist()
        assert ids and allowed[got.items].all() and not set(basket) & set(ids)


def test_k_is_honoured_beyond_the_candidates(fitted, dataset):
    model, completer = fitted
    few = BasketReranker(
        completer.reranker.trees,
        completer.reranker.stats,
        completer.reranker.type_codes,
        completer.reranker.category_codes,
        candidates=2,
    )
    sel = _selector(model, dataset, BasketCompleter(completer.neighbours, completer.weight, few))
    plain = _selector(model, dataset, BasketCompleter(completer.neighbours, completer.weight))
    query = ProductQuery(k=6, mode="complete_basket", basket=("p_beef",))
    (got,) = sel.select([query], [sel.shopper(MEAT_BUYERS[0])])
    (base,) = plain.select([query], [plain.shopper(MEAT_BUYERS[0])])
    assert len(got.items) == 6
    # the two re-scored candidates are the blend's top two; the rest keeps the blend's order
    assert set(got.items[:2].tolist()) == set(base.items[:2].tolist())
    assert got.items[2:].tolist() == base.items[2:].tolist()


def test_saved_reranker_loads_and_scores_the_same(fitted, dataset, tmp_path):
    model, completer = fitted
    save_model_dir(model, dataset.items_table, tmp_path, dataset.interactions)
    completer.save(tmp_path)
    write_checksums(tmp_path)
    loaded = BasketCompleter.load(tmp_path)
    assert loaded.reranker is not None
    query = ProductQuery(k=5, mode="complete_basket", basket=("p_beef", "p_apple"))
    a, b = _selector(model, dataset, completer), _selector(model, dataset, loaded)
    for c in (MEAT_BUYERS[1], BREAD_BUYERS[2], "somebody-new"):
        (x,), (y,) = a.select([query], [a.shopper(c)]), b.select([query], [b.shopper(c)])
        assert x.items.tolist() == y.items.tolist() and np.allclose(x.scores, y.scores)
    # saving without a re-ranker removes a stale one
    BasketCompleter(completer.neighbours, completer.weight).save(tmp_path)
    assert not (tmp_path / RERANK_FILE).exists()


def test_a_damaged_reranker_file_is_refused(fitted, dataset, tmp_path):
    model, completer = fitted
    save_model_dir(model, dataset.items_table, tmp_path, dataset.interactions)
    completer.save(tmp_path)
    write_checksums(tmp_path)
    path = tmp_path / RERANK_FILE
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelCorrupt, match="checksum"):
        Recommender.load(tmp_path)


def _rewrite(path: Path, **changes) -> None:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **{**arrays, **changes})


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda a: {"tree_feature_idx": np.full_like(a["tree_feature_idx"], 99)}, "feature index"),
        (lambda a: {"tree_left": a["tree_left"] + 10_000}, "child points outside"),
        (lambda a: {"n_indices": a["n_indices"] + 10_000}, "column index out of range"),
        (lambda a: {"pop": a["pop"][:-1]}, "pop"),
        (lambda a: {"n_features": np.array(3)}, "features"),
    ],
)
def test_an_inconsistent_reranker_file_is_refused_at_load(fitted, dataset, tmp_path, change, why):
    _, completer = fitted
    completer.save(tmp_path)
    with np.load(tmp_path / RERANK_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    _rewrite(tmp_path / RERANK_FILE, **change(arrays))
    with pytest.raises(ModelCorrupt, match=why):
        BasketCompleter.load(tmp_path)


def test_save_model_dir_fits_the_reranker_on_request_and_checksums_it(dataset, tmp_path):
    import json

    model = BuyAgain().fit(dataset)
    out = save_model_dir(model, dataset.items_table, tmp_path, dataset.interactions, rerank_on=dataset)
    listed = json.loads((out / "checksums.json").read_text())["files"]
    assert "basket.npz" in listed
    assert (RERANK_FILE in listed) == (out / RERANK_FILE).exists()
    loaded = BasketCompleter.load(out)
    assert (loaded.reranker is not None) == (out / RERANK_FILE).exists()
    plain = save_model_dir(model, dataset.items_table, tmp_path / "plain", dataset.interactions)
    assert not (plain / RERANK_FILE).exists()  # off unless asked


def test_warm_compiles_the_tree_kernel_for_feature_rows(fitted):
    """Serving warms the re-ranker before traffic: afterwards the kernel holds a compiled version for
    float64 feature rows, so no request pays numba's compile or cache load."""
    from recsys.models import tree_kernel

    _, completer = fitted
    completer.reranker.warm()
    compiled = [sig[0] for sig in tree_kernel.sum_of_trees.signatures]
    assert any(t.dtype.name == "float64" and t.ndim == 2 for t in compiled)
