"""/v1/discounts answers from a trained plan artifact: within its budget, on the live consent and diet.

World: a small synthetic data set (logged offers with levels, so the structural response model is
fitted), a popularity product model, and plans made by the training job's own functions with the
default rules of experiments/configs/offers.yaml at a budget well below what the planner would spend
unconstrained, so the budget binds.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from tests.serving.conftest import AUTH, service_env

BUDGET = 20.0  # the cautious plan of a 300-customer world still offers animal groups to 3+
ALCOHOL = {"BEERS/ALES", "DOMESTIC WINE"}
NON_FOOD = {"PAPER TOWELS", "LAUNDRY DETERGENTS"}
ANIMAL = ("contains_meat", "contains_fish", "contains_dairy", "contains_egg")


@pytest.fixture(scope="module")
def offers_world(tmp_path_factory) -> dict:
    from lab.synthetic import generate, write_synthetic
    from recsys.data.dataset import Dataset
    from recsys.data.io import read_tables
    from recsys.models.popularity import Popularity
    from training.offers import fit_planner, plan_artifact
    from training.offers_config import load_offers_config, with_overrides

    root = tmp_path_factory.mktemp("offers-world")
    write_synthetic(generate(n_customers=300, n_products=300, weeks=16, seed=3), root / "data")
    dataset = Dataset.load(root / "data")
    model = Popularity().fit(dataset)
    model.save(root / "model")
    dataset.items_table.to_parquet(root / "model" / "items.parquet", index=False)
    tables = read_tables(root / "data", skip=("promotions",))
    config = with_overrides(load_offers_config("experiments/configs/offers.yaml"), {"budget": BUDGET})
    planner = fit_planner(tables, config)
    artifact = plan_artifact(planner, tables, config)
    artifact.save(root / "plan")
    unconstrained = planner.plan(1e9)
    return {
        "root": root,
        "tables": tables,
        "artifact": artifact,
        "planner": planner,
        "unconstrained": unconstrained,
        "config": config,
    }


@pytest.fixture
def offers_client(asgi_app, monkeypatch, offers_world, tmp_path) -> Iterator[TestClient]:
    root = offers_world["root"]
    world = {"model": root / "model", "data": root / "data"}
    service_env(monkeypatch, world, tmp_path, RECSYS_OFFERS_DIR=str(root / "plan"))
    with TestClient(asgi_app, raise_server_exceptions=False) as c:
        yield c


def _discounts(client: TestClient, customer_id: str, k: int = 10) -> dict:
    r = client.post("/v1/discounts", json={"customer_id": customer_id, "k": k})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_budget_binds_on_this_world(offers_world):
    plan, free = offers_world["artifact"].plan, offers_world["unconstrained"]
    assert free["expected_cost"].sum() > 2 * BUDGET  # unconstrained, the planner would spend more
    assert BUDGET * 0.95 <= plan["expected_cost"].sum() <= BUDGET


def test_served_offers_of_all_customers_stay_within_the_budget(offers_client, offers_world):
    artifact = offers_world["artifact"]
    served, costs, versions = 0, 0.0, set()
    for cid in offers_world["tables"]["customers"]["customer_id"]:
        answer = _discounts(offers_client, cid)
        served += len(answer["discounts"])
        costs += sum(d["expected_cost"] for d in answer["discounts"])
        for d in answer["discounts"]:  # each names level, group, incremental margin, reason, send time
            assert d["discount_level"] > 0 and d["product_group"] and d["reason"] and d["best_send_time"]
            assert isinstance(d["expected_profit"], float)
        versions.add(answer["model_version"])
        assert (answer["reason"] is None) == bool(answer["discounts"])  # no offers always say why
    assert costs <= BUDGET
    # nothing changed since the plan was made: exactly the plan is served
    assert served == len(artifact.plan)
    assert costs == pytest.approx(artifact.plan["expected_cost"].sum())
    # the answer names the plan's version, not the product model's
    product = offers_client.post("/v1/products", json={"customer_id": "x", "k": 1}).json()["model_version"]
    assert len(versions) == 1 and versions.pop().startswith("plan-") and product.startswith("model-")


def test_k_caps_the_offers_best_first(offers_client, offers_world):
    plan = offers_world["artifact"].plan
    cid = plan["customer_id"].value_counts().index[0]
    mine = plan[plan["customer_id"] == cid].sort_values("expected_profit", ascending=False)
    answer = _discounts(offers_client, cid, k=1)
    assert [d["product_group"] for d in answer["discounts"]] == [mine["product_group"].iloc[0]]


def _animal_groups(offers_world) -> set[str]:
    """Groups holding a product that is not known to be free of meat, fish, dairy and egg."""
    products = offers_world["tables"]["products"]
    from recsys.offers.groups import product_groups

    clear = np.logical_and.reduce([products[a].to_numpy() == "no" for a in ANIMAL])
    groups = product_groups(products).to_numpy()
    return set(groups[~clear])


def test_a_vegan_set_live_gets_no_animal_group_offer(offers_client, offers_world):
    plan = offers_world["artifact"].plan
    animal = _animal_groups(offers_world)
    with_animal = plan[plan["product_group"].isin(animal)]["customer_id"].unique()
    assert len(with_animal) >= 3  # the plan offers such groups: the live diet has work to do
    for cid in with_animal[:3]:
        before = _discounts(offers_client, cid)
        assert {d["product_group"] for d in before["discounts"]} & animal
        r = offers_client.post(
            "/v1/customers/consent",
            json={
                "customer_id": cid,
                "consent_personalisation": True,
                "consent_marketing": True,
                "diet": ["vegan"],
            },
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        after = _discounts(offers_client, cid)
        assert not {d["product_group"] for d in after["discounts"]} & animal
        kept = {d["product_group"] for d in before["discounts"]} - animal
        assert {d["product_group"] for d in after["discounts"]} == kept  # only removed, never added
        if not after["discounts"]:
            assert "do not comply with the current diet" in after["reason"]


def test_consent_withdrawal_and_erasure_end_the_offers(offers_client, offers_world):
    plan = offers_world["artifact"].plan
    first, second = plan["customer_id"].unique()[:2]
    assert _discounts(offers_client, first)["discounts"]
    r = offers_client.post(
        "/v1/customers/consent",
        json={"customer_id": first, "consent_personalisation": True, "consent_marketing": False},
        headers=AUTH,
    )
    assert r.status_code == 200
    answer = _discounts(offers_client, first)
    assert answer["discounts"] == [] and not answer["eligible"]
    assert answer["reason"] == "no marketing consent on record"
    assert (
        offers_client.post("/v1/customers/erase", json={"customer_id": second}, headers=AUTH).status_code
        == 200
    )
    answer = _discounts(offers_client, second)
    assert answer["discounts"] == [] and not answer["eligible"]


def _consent(client: TestClient, customer_id: str, **body) -> dict:
    r = client.post(
        "/v1/customers/consent",
        json={"customer_id": customer_id, "consent_personalisation": True, **body},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_offers_go_only_on_channels_consented_to_live(offers_client, offers_world):
    """HTTP: consent per channel through the consent endpoint decides the channel of every served
    offer, at once; zero offers on a channel without consent; the old flag alone means every channel."""
    plan = offers_world["artifact"].plan
    choices = (["email"], ["app"], ["store"], ["app", "store"], ["email", "store"], [])
    sent = 0
    for i, cid in enumerate(plan["customer_id"].unique()[:12]):
        channels = choices[i % len(choices)]
        assert _consent(offers_client, cid, marketing_channels=channels)["marketing_channels"] == sorted(
            channels
        )
        answer = _discounts(offers_client, cid)
        assert {d["channel"] for d in answer["discounts"]} <= set(channels)  # never without consent
        assert bool(answer["discounts"]) == bool(channels)
        sent += len(answer["discounts"])
        if not channels:
            assert answer["reason"] == "no marketing consent on record" and not answer["eligible"]
    assert sent
    cid = plan["customer_id"].unique()[0]
    flag = _consent(offers_client, cid, consent_marketing=True)  # an older app: the flag alone
    assert flag["consent_marketing"] and flag["marketing_channels"] == ["app", "email", "store"]
    answer = _discounts(offers_client, cid)
    assert answer["discounts"] and all(d["channel"] and d["best_send_time"] for d in answer["discounts"])
    bad = offers_client.post(
        "/v1/customers/consent",
        json={"customer_id": cid, "consent_personalisation": True, "marketing_channels": ["fax"]},
        headers=AUTH,
    )
    assert bad.status_code == 400 and "marketing_channels.0" in bad.text
    contradiction = offers_client.post(
        "/v1/customers/consent",
        json={
            "customer_id": cid,
            "consent_personalisation": True,
            "consent_marketing": False,
            "marketing_channels": ["email"],
        },
        headers=AUTH,
    )
    assert contradiction.status_code == 400 and "marketing_channels" in contradiction.text


def test_erasure_removes_the_channel_consent(offers_client, offers_world, tmp_path):
    from serving.events import EventStore

    cid = offers_world["artifact"].plan["customer_id"].unique()[1]
    _consent(offers_client, cid, marketing_channels=["email"])
    assert (
        offers_client.post("/v1/customers/erase", json={"customer_id": cid}, headers=AUTH).status_code == 200
    )
    store = EventStore(os.environ["RECSYS_EVENTS_URL"])
    try:
        state = store.states([cid])[cid]
    finally:
        store.close()
    assert state.erased and state.record is None  # the consent row, channels included, is gone
    assert _discounts(offers_client, cid)["discounts"] == []


def test_customers_not_in_the_plan_get_the_reason(offers_client, offers_world):
    artifact = offers_world["artifact"]
    customers = offers_world["tables"]["customers"]
    consenting = customers[customers["consent_marketing"] & customers["consent_personalisation"]]
    left_out = set(artifact.no_offer["customer_id"])
    cid = next(c for c in consenting["customer_id"] if c in left_out)
    answer = _discounts(offers_client, cid)
    assert answer["discounts"] == [] and answer["eligible"]
    assert answer["reason"].startswith("not in the current plan: ")
    unknown = _discounts(offers_client, "never-seen")  # no consent record: no marketing consent
    assert unknown["discounts"] == [] and unknown["reason"] == "no marketing consent on record"


def test_default_exclusions_keep_alcohol_tobacco_and_non_food_out(offers_world):
    plan, groups = offers_world["artifact"].plan, offers_world["artifact"].groups.set_index("product_group")
    assert groups.loc[sorted(ALCOHOL), "age_restricted"].all()
    assert groups.loc[sorted(ALCOHOL | NON_FOOD), "excluded"].all()
    assert not set(plan["product_group"]) & (ALCOHOL | NON_FOOD)
    # without the rules the same planner would have offered them: the rules are what keeps them out
    history = offers_world["planner"].history_.reset_index()
    assert set(history["product_group"]) >= ALCOHOL | NON_FOOD


def test_age_rule_holds_when_alcohol_leaves_the_exclusion_list(offers_world):
    from recsys.offers.eligibility import adult_customers
    from training.offers import fit_planner, plan_artifact
    from training.offers_config import with_overrides

    tables = offers_world["tables"]
    config = with_overrides(offers_world["config"], {"exclusions.age_restricted": False, "budget": 1e9})
    artifact = plan_artifact(fit_planner(tables, config), tables, config)
    alcohol = artifact.plan[artifact.plan["product_group"].isin(ALCOHOL)]
    assert len(alcohol) > 0  # now they are offered ...
    adults = set(adult_customers(tables["customers"], 21))
    assert set(alcohol["customer_id"]) <= adults  # ... but only to customers with a known adult band
    bands = tables["customers"].set_index("customer_id")["age_band"]
    assert not bands.reindex(sorted(set(alcohol["customer_id"]))).isin(["19-24"]).any()
    assert bands.isna().any() and bands.eq("19-24").any()  # such customers exist in this world


def test_the_service_fits_nothing(asgi_app, monkeypatch, offers_world, tmp_path):
    from recsys.offers.planner import DiscountPlanner

    def refuse(*args, **kwargs):
        raise AssertionError("the service must not fit a planner")

    monkeypatch.setattr(DiscountPlanner, "fit", refuse)
    root = offers_world["root"]
    service_env(
        monkeypatch,
        {"model": root / "model", "data": root / "data"},
        tmp_path,
        RECSYS_OFFERS_DIR=str(root / "plan"),
    )
    with TestClient(asgi_app, raise_server_exceptions=False) as client:
        cid = offers_world["artifact"].plan["customer_id"].iloc[0]
        assert _discounts(client, cid)["discounts"]


def test_a_plan_over_its_budget_is_refused(offers_world, tmp_path):
    from recsys.offers.artifact import PlanArtifact

    artifact = offers_world["artifact"]
    broken = dataclasses.replace(artifact, meta={**artifact.meta, "budget": 1.0})
    broken.save(tmp_path / "over")
    with pytest.raises(ValueError, match="over the budget 1.00"):
        PlanArtifact.load(tmp_path / "over")
    pd.read_parquet(tmp_path / "over" / "plan.parquet")  # the files are plain Parquet


def test_no_plan_is_a_404_with_a_reason(asgi_app, monkeypatch, offers_world, tmp_path):
    root = offers_world["root"]
    service_env(
        monkeypatch,
        {"model": root / "model", "data": root / "data"},
        tmp_path,
        RECSYS_OFFERS_URI="models:/grocery-discount-planner@champion",
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'missing.db'}",
    )
    with TestClient(asgi_app, raise_server_exceptions=False) as client:
        r = client.post("/v1/discounts", json={"customer_id": "c1"})
        assert r.status_code == 404 and "no discount plan" in r.json()["error"]
    assert not (tmp_path / "missing.db").exists()  # looking did not create an MLflow store


def test_without_the_event_store_discounts_answer_fail_closed(asgi_app, monkeypatch, offers_world, tmp_path):
    """Consent and erasure cannot be read: no offers, answered 200 and marked degraded."""
    root = offers_world["root"]
    world = {"model": root / "model", "data": root / "data"}
    closed = "postgresql+psycopg2://postgres@127.0.0.1:9/nowhere"  # nothing listens on port 9
    service_env(monkeypatch, world, tmp_path, RECSYS_OFFERS_DIR=str(root / "plan"), RECSYS_EVENTS_URL=closed)
    with TestClient(asgi_app, raise_server_exceptions=False) as c:
        customer = str(offers_world["tables"]["customers"]["customer_id"].iloc[0])
        body = _discounts(c, customer)
        assert body["degraded"] and not body["eligible"] and body["discounts"] == []
