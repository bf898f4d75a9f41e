"""/v1/products with a basket: complete_basket on the service's one selection path."""

from __future__ import annotations

from tests.serving.conftest import MEAT_BUYERS


def test_complete_basket_over_http_is_diet_safe_and_skips_the_basket(client):
    body = {
        "customer_id": MEAT_BUYERS[1],
        "k": 5,
        "mode": "complete_basket",
        "basket": ["p_beef", "p_bread", "unknown-id"],
        "diet": ["gluten"],
        "store": "s2",
    }
    r = client.post("/v1/products", json=body)
    assert r.status_code == 200, r.text
    ids = [it["item_id"] for it in r.json()["items"]]
    assert ids and not {"p_beef", "p_bread", "p_rye", "p_mystery"} & set(ids)
    assert ids[0] in {"p_bbq", "p_pork", "p_chicken"}  # what goes with beef at this meat buyer's store


def test_a_bad_basket_field_is_a_400(client):
    r = client.post("/v1/products", json={"customer_id": "b1", "mode": "complete_basket", "basket": "p_beef"})
    assert r.status_code == 400 and "basket" in r.text
