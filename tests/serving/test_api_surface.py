"""The API as its users' tools see it: the OpenAPI page, 400s naming unknown filter values,
start-up without customer data, and malformed requests logged at INFO without a traceback."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from tests.serving.conftest import service_env


def test_openapi_document_is_the_projects(client):
    spec = client.get("/docs.json").json()
    assert spec["info"]["title"] == "grocery-recsys"
    assert spec["info"]["version"] not in ("None", "", None)
    assert "BentoML" not in spec["info"]["description"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    health = [p for p in spec["paths"] if "health" in p or p.endswith(("z", "/livez"))]
    assert sorted(health) == ["/v1/health/live", "/v1/health/ready"]
    for path, ops in spec["paths"].items():
        op = ops.get("post")
        if op is None:
            continue
        assert op["requestBody"]["content"]["application/json"].get("example") is not None, path
        assert {"400", "401", "403", "503"} <= set(op["responses"]), path
        assert op["security"], path
    assert spec["paths"]["/v1/feedback"]["post"]["security"] == [{"bearer": []}]


def test_the_document_says_what_the_service_does(client):
    """Optional fields admit null, both methods of the profile path are listed (and only they are
    allowed), diet names are enumerated and a reload version must look like one."""
    from tests.serving.conftest import AUTH

    spec = client.get("/docs.json").json()
    answer = spec["paths"]["/v1/products"]["post"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["properties"]["degraded"]["type"] == ["string", "null"]
    asked = spec["paths"]["/v1/products"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "vegan" in asked["properties"]["diet"]["items"]["enum"]
    assert asked["properties"]["store"]["type"] == ["string", "null"]
    assert sorted(spec["paths"]["/v1/customers/profile"]) == ["get", "post"]
    assert "404" in spec["paths"]["/v1/customers/profile"]["get"]["responses"]
    r = client.options("/v1/customers/profile")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST, HEAD"
    assert client.post("/v1/customers/profile", json={"customer_id": "b1"}).status_code == 200
    r = client.post("/v1/admin/reload", json={"version": "../x"}, headers=AUTH)
    assert r.status_code == 400 and "version" in r.text
    r = client.get("/v1/customers/profile")  # no customer_id: the documented 400, not FastAPI's 422
    assert r.status_code == 400 and "customer_id" in r.json()["error"]
    for wrong in ({"co2_weight": False}, {"k": "3"}, {"k": 2.5}):  # strict types, as documented
        assert client.post("/v1/products", json={"customer_id": "b1", **wrong}).status_code == 400, wrong
    assert client.post("/v1/products", json={"customer_id": "b1", "co2_weight": 1}).status_code == 200


def test_docs_page_has_no_third_party_script(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "googletagmanager" not in page.text and "https://" not in page.text
    assert client.get("/static_content/swagger-ui-bundle.js").status_code == 200
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/docs"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"categories": ["MEAT", "NO SUCH AISLE"]}, 404, "NO SUCH AISLE"),
        ({"include": ["p_tofu", "nope"]}, 404, "nope"),
        ({"include": [""]}, 404, "include"),
        ({"diet": [""]}, 400, "empty"),
    ],
)
def test_unknown_filter_values_are_404_naming_them_blank_diets_400(client, body, status, needle):
    r = client.post("/v1/products", json={"customer_id": "b1", **body})
    assert r.status_code == status and needle in r.json()["error"], r.text


def test_recipe_bounds_are_in_the_document_as_json_schema(client):
    """`minimum`/`maximum`, not pydantic's `ge`/`le`: a client generating requests from the document
    must not send a value the service refuses."""
    props = client.get("/docs.json").json()["components"]["schemas"]["RecipesRequestIODescriptor"][
        "properties"
    ]
    for name, (low, high) in {"max_steps": (1, 100), "max_minutes": (1, 1440)}.items():
        number = next(s for s in props[name]["anyOf"] if s.get("type") == "integer")
        assert (number["minimum"], number["maximum"]) == (low, high), props[name]


def test_blank_diet_is_refused_by_consent_too(client):
    from tests.serving.conftest import AUTH

    body = {"customer_id": "b1", "consent_personalisation": True, "diet": [" "]}
    assert client.post("/v1/customers/consent", json=body, headers=AUTH).status_code == 400


def test_start_without_customer_data_warns_and_ready_says_so(asgi_app, monkeypatch, world, tmp_path, caplog):
    service_env(monkeypatch, world, tmp_path)
    monkeypatch.delenv("RECSYS_DATA_DIR")
    with caplog.at_level(logging.WARNING, logger="serving"), TestClient(asgi_app) as client:
        ready = client.get("/v1/health/ready")
    assert ready.status_code == 200 and "no customer data" in ready.json()["detail"]
    assert any("without customer data" in r.getMessage() for r in caplog.records)


def test_malformed_requests_are_logged_at_info_without_traceback(client, caplog):
    with caplog.at_level(logging.INFO):
        assert client.post("/v1/products", json={"customer_id": "b1", "k": "x"}).status_code == 400
        assert (
            client.post(
                "/v1/products", content=b"{bad json", headers={"Content-Type": "application/json"}
            ).status_code
            == 400
        )
    mine = [r for r in caplog.records if r.name == "bentoml._internal.server.http_app"]
    assert len(mine) == 2, [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in mine)
    assert "k" in mine[0].getMessage() and "integer" in mine[0].getMessage()


def test_the_document_states_the_rules_the_service_enforces(client):
    """What a client (or a fuzzer) reads in the document is what the service checks: an empty id in
    the profile query, and the consent rule across two fields, are both 400s the document predicts."""
    spec = client.get("/docs.json").json()
    (param,) = spec["paths"]["/v1/customers/profile"]["get"]["parameters"]
    assert param["schema"]["minLength"] == 1
    empty = client.get("/v1/customers/profile", params={"customer_id": ""})
    assert empty.status_code == 400 and "customer_id" in empty.json()["error"]
    consent = spec["components"]["schemas"]["ConsentRequestIODescriptor"]
    assert consent["if"]["properties"]["consent_marketing"] == {"const": False}
    assert consent["then"]["properties"]["marketing_channels"]["maxItems"] == 0
