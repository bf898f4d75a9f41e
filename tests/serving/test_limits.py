"""Request-body limits: 415, 413, duplicate keys and non-finite numbers 400, documented 400 bodies."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from serving.limits import flatten_detail
from tests.serving.conftest import AUTH, service_env

JSON = {"Content-Type": "application/json", **AUTH}


@pytest.fixture
def small_client(asgi_app, monkeypatch, world, tmp_path):
    service_env(monkeypatch, world, tmp_path, RECSYS_MAX_BODY_BYTES="2000")
    with TestClient(asgi_app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize(
    "ctype", ["multipart/form-data", "text/plain", "application/x-www-form-urlencoded", None]
)
def test_a_body_that_is_not_json_is_415(client, ctype):
    headers = {**AUTH, **({"Content-Type": ctype} if ctype else {})}
    for route in ("/v1/products", "/v1/feedback", "/v1/customers/erase", "/v1/admin/reload"):
        r = client.post(route, content=b'{"customer_id": "b1"}', headers=headers)
        assert r.status_code == 415 and "application/json" in r.json()["error"], (route, ctype)


def test_a_body_over_the_limit_is_413_declared_or_streamed(small_client):
    big = b'{"customer_id": "' + b"x" * 3000 + b'"}'
    r = small_client.post("/v1/products", content=big, headers=JSON)
    assert r.status_code == 413 and "2,000" in r.json()["error"]

    def chunks():  # no Content-Length: counted while reading
        yield b'{"customer_id": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    assert small_client.post("/v1/products", content=chunks(), headers=JSON).status_code == 413
    assert small_client.post("/v1/products", json={"customer_id": "b1"}, headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"customer_id": "b1", "customer_id": "b2"}', "duplicate key 'customer_id'"),
        (b'{"customer_id": "b1", "co2_weight": NaN}', "NaN"),
        (b'{"customer_id": "b1", "co2_weight": Infinity}', "Infinity"),
        (b'{"customer_id": "b1", "co2_weight": 1e309}', "out of range"),
    ],
)
def test_duplicate_keys_and_non_finite_numbers_are_400(client, body, reason):
    r = client.post("/v1/products", content=body, headers=JSON)
    assert r.status_code == 400 and reason in r.json()["error"]


def test_validation_errors_have_the_documented_shape(client):
    r = client.post("/v1/products", json={"customer_id": 5, "k": "x"}, headers=AUTH)
    body = r.json()
    assert r.status_code == 400 and isinstance(body["detail"], str) and isinstance(body["error"], str)
    assert body["error"] == "customer_id: Input should be a valid string" and "k: " in body["detail"]
    r = client.post("/v1/products", content=b"{bad", headers=JSON)
    assert r.status_code == 400 and isinstance(r.json()["detail"], str)
    assert flatten_detail({"error": "x"}) == {"error": "x"}


def test_probes_and_docs_are_untouched(client):
    assert client.get("/v1/health/live").status_code == 200
    assert client.get("/docs.json").status_code == 200
