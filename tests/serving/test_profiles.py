"""/v1/customers/profile: the planner's lifecycle figures for one customer, consent-aware, GET and POST."""

from __future__ import annotations

from tests.serving.conftest import AUTH, NO_CONSENT

FIELDS = ("segment", "churn_risk", "churn_tier", "clv", "avg_order_value", "frequency", "best_send_time")


def test_profile_of_a_consenting_customer(client):
    r = client.post("/v1/customers/profile", json={"customer_id": "b1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["profiled"] is True and body["reason"] is None
    assert all(body[f] is not None for f in FIELDS), body
    assert 0.0 <= body["churn_risk"] <= 1.0 and body["avg_order_value"] > 0
    assert body["churn_tier"] in ("loyal", "watch", "dropping", "at risk")
    got = client.get("/v1/customers/profile", params={"customer_id": "b1"})
    assert got.status_code == 200 and got.json() == body


def test_no_consent_erased_and_unknown(client):
    r = client.post("/v1/customers/profile", json={"customer_id": NO_CONSENT}).json()
    assert r["profiled"] is False and "consent" in r["reason"] and r["segment"] is None
    assert client.post("/v1/customers/erase", json={"customer_id": "b2"}, headers=AUTH).status_code == 200
    r = client.post("/v1/customers/profile", json={"customer_id": "b2"}).json()
    assert r["profiled"] is False and r["segment"] is None
    # an unknown id without a consent record is not personalisable: no profile, not a 500
    r = client.get("/v1/customers/profile", params={"customer_id": "nobody"})
    assert r.status_code in (200, 404) and r.json().get("segment") is None
    assert client.post("/v1/customers/profile", json={"customer_id": ""}).status_code == 400
