"""End to end through `RecsysService.to_asgi()` (lifespan run by the TestClient, so __init__ loads the
model from tmp_path exactly as `bentoml serve` does)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from recsys.diet.constraints import ConstraintEngine
from recsys.diet.profiles import parse_profile
from serving.events import EventStore
from tests.serving.conftest import AUTH, BREAD_BUYERS, MEAT_BUYERS, NO_CONSENT, VEGAN

DIETS = [["vegan"], ["vegetarian"], ["gluten-free"], ["lactose-free", "nuts"], ["pescetarian"], ["meat"]]


def products(client, **body) -> dict:
    r = client.post("/v1/products", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def ids(answer: dict) -> list[str]:
    return [i["item_id"] for i in answer.get("items", answer.get("recipes", []))]


def store(client) -> EventStore:
    import os

    return EventStore(os.environ["RECSYS_EVENTS_URL"])


# ---- products ---------------------------------------------------------------------------------


def test_products_personalised_with_reasons_and_id(client):
    a = products(client, customer_id="m1", k=4, mode="discover")
    assert a["personalised"] and a["fallback"] is None
    assert len(a["recommendation_id"]) == 32 and a["model_version"].startswith("model-")
    assert len(a["items"]) == 4 and [i["rank"] for i in a["items"]] == [1, 2, 3, 4]
    scores = [i["score"] for i in a["items"]]
    assert scores == sorted(scores, reverse=True)
    assert any(i["reason"].startswith("because you bought ") and i["reason_item_id"] for i in a["items"])
    again = products(client, customer_id="m1", k=3, mode="buy_again")
    assert set(ids(again)) <= {"p_beef", "p_bbq", "p_pork", "p_chicken", "p_salmon", "p_apple"}
    assert all(i["reason"] == "you bought this before" for i in again["items"])
    assert not set(ids(a)) & {"p_beef", "p_bbq", "p_pork", "p_chicken", "p_salmon", "p_apple"}


@pytest.mark.parametrize("diet", DIETS)
def test_diet_filter_zero_violations_for_everyone(client, world, diet):
    engine = ConstraintEngine(pd.read_parquet(world["model"] / "items.parquet"))
    items = engine.items_table["product_id"].tolist()
    profile = parse_profile(diet)
    for customer in [*BREAD_BUYERS[:3], *MEAT_BUYERS[:3], VEGAN, NO_CONSENT, "never-seen"]:
        for mode in ("mixed", "buy_again", "discover"):
            a = products(
                client, customer_id=customer, k=15, diet=diet, mode=mode, co2_weight=0.5 * (mode == "mixed")
            )
            got = [items.index(i) for i in ids(a)]
            assert engine.violations(got, profile) == 0, (customer, mode, ids(a))
            assert "p_mystery" not in ids(a)  # all-unknown attributes: fail-closed
            assert a["diet"] == sorted(profile.exclusions)


def test_stored_vegan_profile_applies_without_override(client):
    a = products(client, customer_id=VEGAN, k=15)
    assert a["diet"] == ["contains_dairy", "contains_egg", "contains_fish", "contains_meat"]
    assert not set(ids(a)) & {"p_beef", "p_pork", "p_chicken", "p_salmon", "p_milk", "p_butter", "p_mystery"}


def test_filters_categories_include_exclude_store(client):
    a = products(client, customer_id="b1", k=10, categories=["MEAT"])
    assert ids(a) and {i["category"] for i in a["items"]} == {"MEAT"}
    a = products(client, customer_id="b1", k=10, include=["p_tofu", "p_apple"])
    assert set(ids(a)) == {"p_tofu", "p_apple"}
    a = products(client, customer_id="b1", k=10, exclude=["p_bread", "p_butter"])
    assert not {"p_bread", "p_butter"} & set(ids(a))
    a = products(client, customer_id="b1", k=15, store="s2")  # meat store: no bread sold there
    assert "p_bread" not in ids(a) and "p_beef" in ids(a)
    r = client.post("/v1/products", json={"customer_id": "b1", "store": "no-such-store"})
    assert r.status_code == 404 and r.json()["error"] == "unknown store id(s): 'no-such-store'"


def test_co2_weight_moves_high_co2_items_down(client):
    plain = products(client, customer_id="m2", k=6, mode="buy_again")
    green = products(client, customer_id="m2", k=6, mode="buy_again", co2_weight=5.0)
    assert set(ids(plain)) == set(ids(green))
    assert ids(green).index("p_beef") >= ids(plain).index("p_beef")
    assert ids(green)[-1] == "p_beef"


def test_unknown_customer_gets_cold_start(client):
    a = products(client, customer_id="never-seen", k=3)
    assert not a["personalised"] and a["fallback"] == "cold_start" and len(a["items"]) == 3
    assert products(client, customer_id="never-seen", k=3, mode="buy_again")["items"] == []


# ---- consent, fold-in, erasure ----------------------------------------------------------------


def feedback(client, *events: dict, headers=AUTH):
    return client.post("/v1/feedback", json={"events": list(events)}, headers=headers)


def test_no_consent_not_personalised_and_events_not_stored(client):
    a = products(client, customer_id=NO_CONSENT, k=5)
    b = products(client, customer_id="never-seen", k=5)
    assert not a["personalised"] and a["fallback"] == "no_consent"
    assert ids(a) == ids(b)  # the non-personalised list, not its own history (bread + beef)
    r = feedback(client, {"customer_id": NO_CONSENT, "event_type": "purchase", "item_id": "p_tofu"})
    assert r.status_code == 200 and r.json() == {"stored": 0, "skipped_no_consent": 1}
    assert store(client).count_events(NO_CONSENT) == 0
    # an unknown id without a consent record is not stored either (privacy by default)
    r = feedback(client, {"customer_id": "never-seen", "event_type": "view", "item_id": "p_tofu"})
    assert r.json()["stored"] == 0


def test_consent_update_then_withdrawal(client):
    r = client.post(
        "/v1/customers/consent",
        json={"customer_id": NO_CONSENT, "consent_personalisation": True, "diet": ["gluten-free"]},
        headers=AUTH,
    )
    assert r.status_code == 200 and r.json()["diet"] == ["contains_gluten"]
    a = products(client, customer_id=NO_CONSENT, k=15)
    assert a["personalised"] and "p_bread" not in ids(a) and a["diet"] == ["contains_gluten"]
    assert (
        feedback(client, {"customer_id": NO_CONSENT, "event_type": "purchase", "item_id": "p_tofu"}).json()[
            "stored"
        ]
        == 1
    )
    r = client.post(
        "/v1/customers/consent",
        json={"customer_id": NO_CONSENT, "consent_personalisation": False},
        headers=AUTH,
    )
    assert r.status_code == 200
    assert store(client).count_events(NO_CONSENT) == 0  # withdrawal deletes what was stored
    assert products(client, customer_id=NO_CONSENT, k=3)["fallback"] == "no_consent"


def test_consent_update_keeps_the_diet_unless_told(client):
    r = client.post(
        "/v1/customers/consent",
        json={"customer_id": VEGAN, "consent_personalisation": True, "consent_marketing": True},
        headers=AUTH,
    )
    assert r.status_code == 200 and "contains_meat" in r.json()["diet"]  # the data set's vegan stays
    assert products(client, customer_id=VEGAN, k=3)["diet"] == r.json()["diet"]
    r = client.post(
        "/v1/customers/consent",
        json={"customer_id": VEGAN, "consent_personalisation": True, "diet": []},
        headers=AUTH,
    )
    assert r.json()["diet"] == [] and products(client, customer_id=VEGAN, k=3)["diet"] == []


def test_fold_in_changes_the_next_answer(client):
    before = products(client, customer_id="m3", k=5, mode="mixed")
    r = feedback(
        client,
        *[
            {"customer_id": "m3", "event_type": "purchase", "item_id": i, "quantity": 2}
            for i in ("p_bread", "p_butter", "p_jam")
        ],
        {"customer_id": "m3", "event_type": "view", "item_id": "p_tofu"},
    )
    assert r.status_code == 200 and r.json()["stored"] == 4
    after = products(client, customer_id="m3", k=5, mode="mixed")
    assert ids(after) != ids(before)
    again = products(client, customer_id="m3", k=20, mode="buy_again")
    assert {"p_bread", "p_butter", "p_jam"} <= set(ids(again))  # purchases count as history now
    reasons = {i["item_id"]: i["reason"] for i in again["items"]}
    assert reasons["p_bread"] == "you just bought this"
    discover = products(client, customer_id="m3", k=20, mode="discover")
    assert not {"p_bread", "p_butter", "p_jam"} & set(ids(discover))


def test_new_customer_with_consent_is_personalised_by_events(client):
    cid = "new-customer-1"
    client.post(
        "/v1/customers/consent", json={"customer_id": cid, "consent_personalisation": True}, headers=AUTH
    )
    assert products(client, customer_id=cid, k=3)["fallback"] == "cold_start"
    feedback(client, {"customer_id": cid, "event_type": "add_to_cart", "item_id": "p_beef"})
    a = products(client, customer_id=cid, k=3, mode="discover")
    assert a["personalised"] and a["fallback"] is None
    assert set(ids(a)) & {"p_bbq", "p_pork", "p_chicken"}  # the meat cluster, through ALS fold-in


def test_erasure_deletes_events_and_forgets_the_id(client):
    feedback(client, {"customer_id": "b2", "event_type": "purchase", "item_id": "p_tofu"})
    assert store(client).count_events("b2") == 1
    assert products(client, customer_id="b2", k=3)["personalised"]
    r = client.post("/v1/customers/erase", json={"customer_id": "b2"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["events_deleted"] == 1
    assert store(client).count_events("b2") == 0
    a = products(client, customer_id="b2", k=3)
    assert not a["personalised"] and a["fallback"] == "cold_start"
    assert ids(a) == ids(products(client, customer_id="never-seen", k=3))
    assert products(client, customer_id="b2", k=3, mode="buy_again")["items"] == []
    # new events are not stored: the data-set consent went with the erasure
    assert (
        feedback(client, {"customer_id": "b2", "event_type": "purchase", "item_id": "p_jam"}).json()["stored"]
        == 0
    )


# ---- auth and bad input -----------------------------------------------------------------------

WRITE_CALLS = [
    ("/v1/feedback", {"events": [{"customer_id": "b1", "event_type": "view", "item_id": "p_jam"}]}),
    ("/v1/customers/consent", {"customer_id": "b1", "consent_personalisation": True}),
    ("/v1/customers/erase", {"customer_id": "b1"}),
    ("/v1/admin/reload", {}),
]


@pytest.mark.parametrize(("route", "body"), WRITE_CALLS)
def test_write_endpoints_need_a_key(client, route, body):
    assert client.post(route, json=body).status_code == 401
    assert client.post(route, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.post(route, json=body, headers={"X-API-Key": "test-key-012345678"}).status_code == 403


def test_read_key_is_configurable(asgi_app, monkeypatch, world, tmp_path):
    from starlette.testclient import TestClient

    from tests.serving.conftest import service_env

    service_env(monkeypatch, world, tmp_path, RECSYS_READ_REQUIRES_KEY="true")
    with TestClient(asgi_app) as c:
        assert c.post("/v1/products", json={"customer_id": "b1"}).status_code == 401
        assert (
            c.post("/v1/products", json={"customer_id": "b1"}, headers={"X-API-Key": "x"}).status_code == 403
        )
        assert c.post("/v1/products", json={"customer_id": "b1"}, headers=AUTH).status_code == 200


BAD = [
    ("/v1/products", {"customer_id": "b1", "k": 0}, 400, "k"),
    ("/v1/products", {"customer_id": "b1", "k": 1001}, 400, "k"),
    ("/v1/products", {"customer_id": "b1", "diet": ["paleo"]}, 400, "unknown diet"),
    ("/v1/products", {"customer_id": "b1", "mode": "sometimes"}, 400, "mode"),
    ("/v1/products", {"customer_id": "b1", "co2_weight": -1}, 400, "co2_weight"),
    ("/v1/products", {"customer_id": "b1", "filter": "typo"}, 400, "filter"),
    ("/v1/products", {"k": 3}, 400, "customer_id"),
    ("/v1/products", {"customer_id": ""}, 400, "customer_id"),
    ("/v1/items/similar", {"item_id": "nope"}, 404, "unknown product"),
    ("/v1/items/similar", {"item_id": "p_bread", "diet": ["keto"]}, 400, "unknown diet"),
    ("/v1/items/substitutes", {"item_id": "nope", "diet": ["vegan"]}, 404, "unknown product"),
    ("/v1/recipes", {"customer_id": "b1", "max_steps": 0}, 400, "max_steps"),
    ("/v1/discounts", {"customer_id": "b1", "k": -2}, 400, "k"),
]


@pytest.mark.parametrize(("route", "body", "status", "reason"), BAD)
def test_bad_input_is_4xx_with_a_reason(client, route, body, status, reason):
    r = client.post(route, json=body)
    assert r.status_code == status, r.text
    assert reason in r.text


def test_bad_writes_are_4xx(client):
    assert feedback(client).status_code == 400  # no events
    r = feedback(client, {"customer_id": "b1", "event_type": "purchase", "item_id": "no-such"})
    assert r.status_code == 404 and "no-such" in r.json()["error"]
    r = feedback(client, {"customer_id": "b1", "event_type": "purchase"})
    assert r.status_code == 400 and "item_id" in r.json()["error"]
    r = feedback(client, {"customer_id": "b1", "event_type": "teleport", "item_id": "p_jam"})
    assert r.status_code == 400
    r = client.post(
        "/v1/customers/consent",
        json={"customer_id": "b1", "consent_personalisation": True, "diet": ["x"]},
        headers=AUTH,
    )
    assert r.status_code == 400 and "unknown diet" in r.json()["error"]
    r = client.post("/v1/products", content=b"{not json", headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500


# ---- items, recipes, discounts ----------------------------------------------------------------


def test_similar_items(client):
    r = client.post("/v1/items/similar", json={"item_id": "p_beef", "k": 3})
    assert r.status_code == 200, r.text
    a = r.json()
    assert "p_beef" not in ids(a) and len(ids(a)) == 3
    assert set(ids(a)) & {"p_bbq", "p_pork", "p_chicken"}
    r = client.post("/v1/items/similar", json={"item_id": "p_beef", "k": 10, "diet": ["vegan"]})
    assert not set(ids(r.json())) & {"p_pork", "p_chicken", "p_salmon", "p_milk", "p_butter", "p_mystery"}


def test_substitutes_are_compliant(client):
    r = client.post("/v1/items/substitutes", json={"item_id": "p_bread", "diet": ["gluten-free"], "k": 3})
    assert r.status_code == 200, r.text
    assert ids(r.json())[0] == "p_gfbread" and "p_rye" not in ids(r.json())
    r = client.post("/v1/items/substitutes", json={"item_id": "p_beef", "customer_id": VEGAN, "k": 5})
    assert r.status_code == 200 and r.json()["diet"] == [
        "contains_dairy",
        "contains_egg",
        "contains_fish",
        "contains_meat",
    ]
    assert not set(ids(r.json())) & {"p_pork", "p_chicken"}


def test_recipes(client):
    r = client.post("/v1/recipes", json={"customer_id": VEGAN, "k": 5, "max_steps": 8, "basket": ["p_tofu"]})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["diet"] == ["contains_dairy", "contains_egg", "contains_fish", "contains_meat"]
    for recipe in a["recipes"]:
        assert recipe["steps"] is None or recipe["steps"] <= 8
        for m in recipe["missing"]:
            assert m["item_id"] not in {"p_beef", "p_pork", "p_chicken", "p_salmon", "p_milk", "p_butter"}


def test_recipes_carry_ingredients_steps_and_pantry_choice(client):
    body = {"customer_id": VEGAN, "k": 3}
    bare = client.post("/v1/recipes", json=body).json()["recipes"]
    stocked = client.post("/v1/recipes", json={**body, "pantry_at_home": True}).json()["recipes"]
    assert bare and stocked
    for recipe in bare:
        assert recipe["instructions"] and len(recipe["instructions"]) == recipe["steps"]
        assert all(i["name"] and i["unit"] and i["quantity"] > 0 for i in recipe["ingredients"])
        assert {m["ingredient"] for m in recipe["missing"]} <= {i["name"] for i in recipe["ingredients"]}
    staples = {i["name"] for r in stocked for i in r["ingredients"] if i["pantry"]}
    assert not staples & {m["ingredient"] for r in stocked for m in r["missing"]}


def test_discounts_without_a_plan_answer_404_with_the_reason(client):
    r = client.post("/v1/discounts", json={"customer_id": "m1", "k": 2})
    assert r.status_code == 404, r.text
    assert "no discount plan configured" in r.json()["error"]  # the service never fits one itself


# ---- admin, health, docs ----------------------------------------------------------------------


def test_reload_swaps_the_model(client, world):
    before = products(client, customer_id="b1", k=3)["model_version"]
    r = client.post("/v1/admin/reload", json={"model_dir": str(world["model2"])}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["previous_version"] == before and body["model_version"].startswith("model2-")
    assert products(client, customer_id="b1", k=3)["model_version"] == body["model_version"]
    assert client.get("/v1/health/live").json()["model_version"] == body["model_version"]
    r = client.post("/v1/admin/reload", json={"model_dir": "/no/such/dir"}, headers=AUTH)
    assert 400 <= r.status_code < 500
    assert products(client, customer_id="b1", k=3)["model_version"] == body["model_version"]


def test_health_and_openapi(asgi_app, monkeypatch, world, tmp_path):
    from starlette.testclient import TestClient

    from tests.serving.conftest import service_env

    service_env(monkeypatch, world, tmp_path, RECSYS_WARM_UP="true")
    with TestClient(asgi_app) as client:
        _check_health_and_openapi(client)


def _check_health_and_openapi(client):
    assert client.get("/v1/health/live").json()["status"] == "ok"
    for _ in range(100):  # ready once the warm-up thread is done (well under a second here)
        ready = client.get("/v1/health/ready")
        if ready.status_code == 200:
            break
        assert ready.json()["detail"] == "warming up"
        time.sleep(0.1)
    assert ready.json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    paths = client.get("/docs.json").json()["paths"]
    for route in (
        "/v1/products",
        "/v1/items/similar",
        "/v1/items/substitutes",
        "/v1/recipes",
        "/v1/discounts",
        "/v1/feedback",
        "/v1/customers/consent",
        "/v1/customers/erase",
        "/v1/admin/reload",
    ):
        assert route in paths
