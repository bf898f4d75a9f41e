"""POST /v1/checkout: planned discounts applied to a finished basket, recorded exactly once.

World: the discount tests' synthetic plan (tests/serving/test_discounts.py). The concurrency test
replays one checkout 100 times from 16 threads against the ASGI app, on SQLite and on a real
PostgreSQL database made for the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from recsys.offers.groups import product_groups
from serving.checkout import Benefit, Line, match_benefits, within_limits
from serving.schemas import CheckoutResponse
from tests.serving.conftest import AUTH, service_env
from tests.serving.test_discounts import offers_world  # noqa: F401 - the shared plan fixture

PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def events_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
        return
    name = f"recsys_basket_checkout_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def checkout_client(asgi_app, monkeypatch, offers_world, tmp_path, events_url) -> Iterator[TestClient]:  # noqa: F811
    root = offers_world["root"]
    world = {"model": root / "model", "data": root / "data"}
    service_env(
        monkeypatch, world, tmp_path, RECSYS_OFFERS_DIR=str(root / "plan"), RECSYS_EVENTS_URL=events_url
    )
    with TestClient(asgi_app, raise_server_exceptions=False) as c:
        yield c


def planned_basket(offers_world) -> tuple[str, list[dict], dict]:  # noqa: F811
    """A customer with a planned offer, and a basket: two lines of the offer's group, one other."""
    plan = offers_world["artifact"].plan.sort_values(["customer_id", "product_group"])
    offer = plan.iloc[0]
    products = offers_world["tables"]["products"]
    groups = product_groups(products)
    in_group = list(groups.index[groups == offer["product_group"]])[:2]
    other = next(
        p for p in groups.index[groups != offer["product_group"]] if p not in set(plan.product_group)
    )
    lines = [
        {"product_id": str(in_group[0]), "quantity": 2, "price": 3.5},
        {"product_id": str(other), "quantity": 1, "price": 1.0},
        {"product_id": str(in_group[-1]), "quantity": 1, "price": 2.0},
    ]
    return str(offer["customer_id"]), lines, offer.to_dict()


def test_matching_keeps_the_offer_groups_and_the_diet():
    lines = [Line("a", 2, 5.0), Line("b", 1, 4.0), Line("c", 1, 3.0), Line("zz", 1, 9.0)]
    groups = {"a": "MILK", "b": "MILK", "c": "BREAD"}
    offers = [
        {"product_group": "MILK", "discount_level": 0.1},
        {"product_group": "BREAD", "discount_level": 0.2},
    ]
    got = match_benefits(offers, lines, groups, {"a": True, "b": False, "c": True})
    assert got == [Benefit(0, "a", "MILK", 0.1, 1.0), Benefit(2, "c", "BREAD", 0.2, 0.6)]
    kept, notes = within_limits(got, redeemed_groups={"BREAD"}, spent=9.5, budget=10.0)
    assert kept == [] and len(notes) == 2  # BREAD redeemed before, MILK over the remaining budget


def test_checkout_applies_the_plan_and_replays_exactly(checkout_client, offers_world):  # noqa: F811
    customer, lines, offer = planned_basket(offers_world)
    body = {"customer_id": customer, "store": "s1", "idempotency_key": uuid.uuid4().hex, "lines": lines}
    first = checkout_client.post("/v1/checkout", json=body, headers=AUTH)
    assert first.status_code == 200, first.text
    got = CheckoutResponse.model_validate(first.json()).model_dump()
    level = offer["discount_level"]
    assert [b["line"] for b in got["benefits"]] == [0, 2]
    assert got["total_discount"] == pytest.approx(round(level * 7.0, 2) + round(level * 2.0, 2))
    again = checkout_client.post("/v1/checkout", json=body, headers=AUTH)
    assert again.status_code == 200 and again.content == first.content
    # the same offer under a new key is not paid twice
    other = checkout_client.post(
        "/v1/checkout", json={**body, "idempotency_key": uuid.uuid4().hex}, headers=AUTH
    )
    assert other.status_code == 200 and other.json()["benefits"] == []
    assert "already redeemed" in " ".join(other.json()["notes"])
    # another basket under a used key is a conflict
    changed = {**body, "lines": lines[:1]}
    assert checkout_client.post("/v1/checkout", json=changed, headers=AUTH).status_code == 409


@pytest.mark.parametrize(
    ("line", "field"),
    [({"quantity": -1}, "quantity"), ({"price": "cheap"}, "price"), ({"product_id": ""}, "product_id")],
)
def test_a_bad_line_is_a_400_naming_the_line_and_field(checkout_client, offers_world, line, field):  # noqa: F811
    customer, lines, _ = planned_basket(offers_world)
    lines = [lines[0], {**lines[1], **line}]
    body = {"customer_id": customer, "idempotency_key": uuid.uuid4().hex, "lines": lines}
    r = checkout_client.post("/v1/checkout", json=body, headers=AUTH)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"lines.1.{field}:")  # the line (0-based) and the field


def test_erased_customers_get_no_benefit(checkout_client, offers_world):  # noqa: F811
    customer, lines, _ = planned_basket(offers_world)
    assert (
        checkout_client.post("/v1/customers/erase", json={"customer_id": customer}, headers=AUTH).status_code
        == 200
    )
    body = {"customer_id": customer, "idempotency_key": uuid.uuid4().hex, "lines": lines}
    r = checkout_client.post("/v1/checkout", json=body, headers=AUTH)
    assert r.status_code == 200 and r.json()["benefits"] == [] and "erased" in r.json()["reason"]


def test_100_concurrent_replays_record_one_redemption_set(checkout_client, offers_world, events_url):  # noqa: F811
    customer, lines, _ = planned_basket(offers_world)
    body = {"customer_id": customer, "store": "s1", "idempotency_key": uuid.uuid4().hex, "lines": lines}

    def post(_: int) -> tuple[int, bytes]:
        r = checkout_client.post("/v1/checkout", json=body, headers=AUTH)
        return r.status_code, r.content

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(100)))
    assert {status for status, _ in answers} == {200}
    assert len({content for _, content in answers}) == 1  # one answer, byte for byte
    engine = sa.create_engine(events_url)
    with engine.connect() as conn:
        rows = pd.read_sql(sa.text("SELECT * FROM redemptions"), conn)
        checkouts = conn.execute(sa.text("SELECT count(*) FROM checkouts")).scalar_one()
    engine.dispose()
    assert checkouts == 1 and len(rows) == 1  # the offer's lines settle as one redemption
    assert set(rows["idempotency_key"]) == {body["idempotency_key"]}
