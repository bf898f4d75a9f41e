"""One recommendation path: the same requests through `recsys recommend` (CLI batch), the MLflow
pyfunc and the HTTP service give identical lists, for every model class."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from starlette.testclient import TestClient

import recsys.models  # noqa: F401  (registers every model)
from cli.main import main
from recsys.data.dataset import Dataset
from recsys.models.base import Recommender
from recsys.models.model_dir import save_model_dir, write_checksums
from recsys.ranking.basket import BasketCompleter
from recsys.ranking.basket_rerank import RERANK_FILE, fit_basket_reranker
from tests.models.test_contract import FAST_PARAMS
from tests.serving.conftest import BREAD_BUYERS, MEAT_BUYERS, VEGAN, service_env

USERS = [BREAD_BUYERS[0], BREAD_BUYERS[3], MEAT_BUYERS[1], VEGAN, "somebody-new"]
DIETS = [None, "vegan", "gluten-free"]
K = 5


@pytest.fixture(scope="module")
def dataset(world) -> Dataset:
    return Dataset.load(world["data"])


def _cli(model_dir: Path, tmp_path: Path, diet: str | None) -> dict[str, list[str]]:
    users = tmp_path / "users.txt"
    users.write_text("\n".join(USERS) + "\n")
    out = tmp_path / f"recs-{diet}.csv"
    argv = ["recommend", "--model", str(model_dir), "--users", str(users), "--k", str(K), "--out", str(out)]
    assert main(argv + (["--diet", diet] if diet else [])) == 0
    recs = pd.read_csv(out, dtype=str)
    return {
        u: recs[recs["user_id"] == u].sort_values("rank", key=lambda r: r.astype(int))["item_id"].tolist()
        for u in USERS
    }


def _pyfunc(model_dir: Path, diet: str | None) -> dict[str, list[str]]:
    from training.pyfunc import RecommenderPyfunc

    wrapper = RecommenderPyfunc()
    wrapper.load_context(
        SimpleNamespace(artifacts={"model_dir": str(model_dir), "items": str(model_dir / "items.parquet")})
    )
    answers = wrapper.predict([{"user_id": u, "k": K, "diet": diet} for u in USERS])
    return {a.user_id: a.items for a in answers}


def _http(asgi_app, model_dir: Path, diet: str | None, monkeypatch, world, tmp_path) -> dict[str, list[str]]:
    # no data dir: every customer is personalised by default, like the batch paths
    service_env(monkeypatch, world, tmp_path, RECSYS_MODEL_DIR=str(model_dir), RECSYS_DEFAULT_CONSENT="true")
    monkeypatch.delenv("RECSYS_DATA_DIR")
    out = {}
    with TestClient(asgi_app) as client:
        for u in USERS:
            body = {"customer_id": u, "k": K} | ({"diet": diet.split(",")} if diet else {})
            r = client.post("/v1/products", json=body)
            assert r.status_code == 200, r.text
            out[u] = [i["item_id"] for i in r.json()["items"]]
    return out


@pytest.mark.parametrize("name", sorted(Recommender.registry))
def test_cli_pyfunc_and_http_give_identical_lists(name, dataset, asgi_app, monkeypatch, world, tmp_path):
    model = Recommender.registry[name](**FAST_PARAMS.get(name, {})).fit(dataset)
    model_dir = save_model_dir(model, dataset.items_table, tmp_path / name)
    for diet in DIETS:
        cli = _cli(model_dir, tmp_path, diet)
        pyfunc = _pyfunc(model_dir, diet)
        http = _http(asgi_app, model_dir, diet, monkeypatch, world, tmp_path)
        assert cli == pyfunc == http, f"{name} diet={diet}"
        assert all(len(items) == K for items in cli.values()) or diet  # k honoured without a diet


BASKET = ["p_beef", "p_apple"]


@pytest.mark.parametrize("name, rerank", [("buy_again", False), ("als", False), ("buy_again", True)])
def test_complete_basket_is_the_same_through_every_door(
    name, rerank, dataset, asgi_app, monkeypatch, world, tmp_path
):
    """The basket co-occurrence (and the learned re-ranker) is saved with the model, so all three
    doors load the same files."""
    model = Recommender.registry[name](**FAST_PARAMS.get(name, {})).fit(dataset)
    model_dir = save_model_dir(model, dataset.items_table, tmp_path / name, dataset.interactions)
    assert (model_dir / "basket.npz").exists()
    if rerank:  # the fixture's baskets are small: fit on baskets of 2+ products
        completer = BasketCompleter.load(model_dir)
        completer.reranker = fit_basket_reranker(model, dataset, min_known=2, min_cases=5)
        completer.save(model_dir)
        write_checksums(model_dir)
        assert (model_dir / RERANK_FILE).exists()
    users = tmp_path / "users.txt"
    users.write_text("\n".join(USERS) + "\n")
    out = tmp_path / "recs.csv"
    argv = ["recommend", "--model", str(model_dir), "--users", str(users), "--k", str(K), "--out", str(out)]
    assert main([*argv, "--basket", ",".join(BASKET), "--diet", "gluten-free"]) == 0
    recs = pd.read_csv(out, dtype=str)
    cli = {u: recs[recs["user_id"] == u]["item_id"].tolist() for u in USERS}
    from training.pyfunc import RecommenderPyfunc

    wrapper = RecommenderPyfunc()
    wrapper.load_context(
        SimpleNamespace(artifacts={"model_dir": str(model_dir), "items": str(model_dir / "items.parquet")})
    )
    req = {"k": K, "diet": "gluten-free", "mode": "complete_basket", "basket": BASKET}
    pyfunc = {a.user_id: a.items for a in wrapper.predict([{"user_id": u, **req} for u in USERS])}
    service_env(monkeypatch, world, tmp_path, RECSYS_MODEL_DIR=str(model_dir), RECSYS_DEFAULT_CONSENT="true")
    monkeypatch.delenv("RECSYS_DATA_DIR")
    http = {}
    with TestClient(asgi_app) as client:
        for u in USERS:
            body = {
                "customer_id": u,
                "k": K,
                "diet": ["gluten-free"],
                "mode": "complete_basket",
                "basket": BASKET,
            }
            r = client.post("/v1/products", json=body)
            assert r.status_code == 200, r.text
            http[u] = [i["item_id"] for i in r.json()["items"]]
    assert cli == pyfunc == http
    assert all(not set(BASKET) & set(items) and items for items in cli.values())
