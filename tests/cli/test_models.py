"""`recsys train` / `recsys recommend` as other teams run them: files in, CSV out, exit codes."""

from __future__ import annotations

import pandas as pd
import pytest

from cli.main import main
from lab.synthetic import generate, write_synthetic


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmd") / "syn"
    write_synthetic(generate(n_customers=120, n_products=200, weeks=8, seed=3), out)
    return out


@pytest.fixture(scope="module")
def model_dir(data_dir):
    out = data_dir.parent / "model"
    assert (
        main(
            [
                "train",
                "--data",
                str(data_dir),
                "--until",
                "2024-02-19",
                "--model",
                "buy_again",
                "--out",
                str(out),
                "--no-track",
            ]
        )
        == 0
    )
    return out


def _users_file(tmp_path, data_dir, extra=("nobody",)):
    users = pd.read_parquet(data_dir / "customers.parquet")["customer_id"].head(40).tolist() + list(extra)
    path = tmp_path / "users.csv"
    pd.DataFrame({"user_id": users}).to_csv(path, index=False)
    return path, users


def test_recommend_writes_k_rows_per_user_with_original_ids(tmp_path, data_dir, model_dir):
    users_file, users = _users_file(tmp_path, data_dir)
    out = tmp_path / "recs.csv"
    assert (
        main(
            [
                "recommend",
                "--model",
                str(model_dir),
                "--users",
                str(users_file),
                "--k",
                "7",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    recs = pd.read_csv(out, dtype=str)
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score", "reason"]
    assert recs.groupby("user_id").size().to_dict() == dict.fromkeys(users, 7)  # unknown user: fallback list
    assert set(recs["item_id"]) <= set(pd.read_parquet(data_dir / "products.parquet")["product_id"])


@pytest.mark.parametrize("diet", ["vegan", "gluten-free,nuts", "vegetarian"])
def test_recommend_with_a_diet_has_zero_violations(tmp_path, data_dir, model_dir, diet):
    from recsys.diet.profiles import parse_profile

    users_file, _ = _users_file(tmp_path, data_dir)
    out = tmp_path / "recs.csv"
    args = [
        "recommend",
        "--model",
        str(model_dir),
        "--users",
        str(users_file),
        "--k",
        "10",
        "--out",
        str(out),
    ]
    assert main([*args, "--diet", diet, "--co2-weight", "0.5"]) == 0
    recs = pd.read_csv(out, dtype=str)
    products = pd.read_parquet(data_dir / "products.parquet").set_index("product_id")
    excluded = sorted(parse_profile(diet).exclusions)
    attrs = products.loc[recs["item_id"], excluded]
    assert len(recs) > 0 and (attrs == "no").all(axis=None)  # 'unknown' never passes a hard exclusion


def test_recommend_completes_a_basket_without_returning_it(tmp_path, data_dir, model_dir):
    users_file, users = _users_file(tmp_path, data_dir)
    basket = pd.read_parquet(data_dir / "products.parquet")["product_id"].astype(str).head(3).tolist()
    out = tmp_path / "recs.csv"
    args = ["recommend", "--model", str(model_dir), "--users", str(users_file), "--out", str(out)]
    assert main([*args, "--basket", ",".join(basket), "--data", str(data_dir), "--diet", "vegan"]) == 0
    recs = pd.read_csv(out, dtype=str)
    assert recs.groupby("user_id").size().to_dict() == dict.fromkeys(users, 10)
    assert not set(recs["item_id"]) & set(basket)
    products = pd.read_parquet(data_dir / "products.parquet").set_index("product_id")
    assert (products.loc[recs["item_id"], ["contains_meat", "contains_dairy"]] == "no").all(axis=None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--basket", ","], "--basket needs at least one product id"),
        (["--k", "0"], "k must be positive"),
        (["--diet", "keto"], "unknown diet or exclusion 'keto'"),
        (["--co2-weight", "-1"], "co2-weight must be >= 0"),
    ],
)
def test_recommend_bad_input_exits_2_with_reason(tmp_path, data_dir, model_dir, capsys, extra, message):
    users_file, _ = _users_file(tmp_path, data_dir)
    args = [
        "recommend",
        "--model",
        str(model_dir),
        "--users",
        str(users_file),
        "--out",
        str(tmp_path / "r.csv"),
    ]
    assert main([*args, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "als", "--param", "speed=3"], "has no parameter(s) ['speed']"),
        (["--model", "als", "--until", "last tuesday"], "bad date 'last tuesday'"),
        (["--model", "als", "--config", "x.yaml"], "either --config FILE or"),
    ],
)
def test_train_bad_input_exits_2_with_reason(tmp_path, data_dir, capsys, args, message):
    base = {"--data": str(data_dir), "--until": "2024-02-19", "--out": str(tmp_path / "m")}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    flat = [x for kv in base.items() for x in kv]
    assert main(["train", *flat, "--no-track"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_train_with_basket_rerank_saves_it_and_recommend_uses_it(tmp_path, data_dir):
    from recsys.ranking.basket import BasketCompleter
    from recsys.ranking.basket_rerank import RERANK_FILE

    out = tmp_path / "rr"
    args = ["train", "--data", str(data_dir), "--until", "2024-02-19", "--model", "buy_again"]
    assert main([*args, "--out", str(out), "--no-track", "--basket-rerank"]) == 0
    assert (out / RERANK_FILE).exists() and BasketCompleter.load(out).reranker is not None
    users_file, users = _users_file(tmp_path, data_dir)
    basket = pd.read_parquet(data_dir / "products.parquet")["product_id"].astype(str).head(3).tolist()
    recs_path = tmp_path / "recs.csv"
    rec = ["recommend", "--model", str(out), "--users", str(users_file), "--out", str(recs_path)]
    assert main([*rec, "--basket", ",".join(basket), "--diet", "vegan"]) == 0
    recs = pd.read_csv(recs_path, dtype=str)
    assert recs.groupby("user_id").size().to_dict() == dict.fromkeys(users, 10)
    assert not set(recs["item_id"]) & set(basket)
