"""A hand-made grocery world small enough to reason about, a fitted model in tmp_path, the service.

Products cover every diet case the service must get right: gluten/meat/dairy 'yes', safe 'no', and
an all-'unknown' item that a fail-closed filter must drop. Customers: regular shoppers (a bread
cluster and a meat cluster, so fold-in has something to move), a vegan, one without consent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from recsys.data.dataset import Dataset
from recsys.data.io import write_tables
from recsys.data.schema import DIET_ATTRIBUTES

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
READ_KEY = "test-read-key-0123456789"
WRITE_KEY = "test-write-key-0123456789"


def keys_config() -> str:
    """RECSYS_API_KEYS as configured in production: hashed entries with scopes."""
    from serving.auth import config_entry

    return ",".join(
        [
            config_entry(API_KEY, ["read", "write", "admin"]),
            config_entry(READ_KEY, ["read"]),
            config_entry(WRITE_KEY, ["read", "write"]),
        ]
    )


# product_id, name, category, type, gluten, meat, fish, dairy, egg, co2e
PRODUCTS = [
    ("p_bread", "Wheat bread", "BREAD", "WHITE BREAD", "yes", "no", "no", "no", "no", 1.6),
    ("p_rye", "Rye bread", "BREAD", "RYE BREAD", "yes", "no", "no", "no", "no", 1.6),
    ("p_gfbread", "Gluten-free bread", "BREAD", "WHITE BREAD", "no", "no", "no", "no", "no", 1.4),
    ("p_butter", "Butter", "DAIRY", "BUTTER", "no", "no", "no", "yes", "no", 12.0),
    ("p_jam", "Strawberry jam", "SPREADS", "JAM", "no", "no", "no", "no", "no", 1.0),
    ("p_beef", "Beef mince", "MEAT", "BEEF", "no", "yes", "no", "no", "no", 99.0),
    ("p_pork", "Pork chops", "MEAT", "PORK", "no", "yes", "no", "no", "no", 12.0),
    ("p_chicken", "Chicken breast", "MEAT", "CHICKEN", "no", "yes", "no", "no", "no", 10.0),
    ("p_bbq", "BBQ sauce", "SAUCES", "SAUCE", "no", "no", "no", "no", "no", 2.0),
    ("p_tofu", "Tofu", "MEAT ALTERNATIVES", "TOFU", "no", "no", "no", "no", "no", 3.2),
    ("p_oatmilk", "Oat drink", "DAIRY", "PLANT DRINK", "no", "no", "no", "no", "no", 0.9),
    ("p_milk", "Whole milk", "DAIRY", "MILK", "no", "no", "no", "yes", "no", 3.2),
    ("p_apple", "Apples", "PRODUCE", "APPLES", "no", "no", "no", "no", "no", 0.4),
    (
        "p_mystery",
        "Mystery snack",
        "SNACKS",
        "SNACK",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
        None,
    ),
    ("p_salmon", "Salmon", "SEAFOOD", "FISH", "no", "no", "yes", "no", "no", 12.0),
]

BREAD_BUYERS = [f"b{i}" for i in range(8)]
MEAT_BUYERS = [f"m{i}" for i in range(8)]
VEGAN = "vegan1"
NO_CONSENT = "nc1"


def make_tables() -> dict[str, pd.DataFrame]:
    rows = []
    for pid, name, cat, typ, gl, me, fi, da, eg, co2 in PRODUCTS:
        rows.append(
            {
                "product_id": pid,
                "name": name,
                "department": "GROCERY",
                "category": cat,
                "type": typ,
                "brand": None,
                "price": 2.0,
                "package_size": None,
                "is_food": "unknown" if pid == "p_mystery" else "yes",
                "contains_gluten": gl,
                "contains_meat": me,
                "contains_fish": fi,
                "contains_dairy": da,
                "contains_egg": eg,
                "contains_nuts": "unknown" if pid == "p_mystery" else "no",
                "added_sugar": "unknown" if pid == "p_mystery" else "no",
                "alcohol": "unknown" if pid == "p_mystery" else "no",
                "co2e_per_kg": co2,
            }
        )
    products = pd.DataFrame(rows)
    assert set(DIET_ATTRIBUTES) <= set(products.columns)
    ids = [*BREAD_BUYERS, *MEAT_BUYERS, VEGAN, NO_CONSENT]
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "consent_personalisation": [c != NO_CONSENT for c in ids],
            "consent_marketing": [c != NO_CONSENT for c in ids],
            "diet_exclusions": ["vegan" if c == VEGAN else None for c in ids],
            "diet_preferences": [None] * len(ids),
        }
    )
    rng = np.random.default_rng(0)
    lines = []
    t0 = pd.Timestamp("2024-01-01")

    def buy(cust: str, items: list[str], day: int, store: str) -> None:
        for it in items:
            lines.append((cust, it, t0 + pd.Timedelta(days=day), f"{cust}-{day}", store))

    for i, c in enumerate(BREAD_BUYERS):
        for d in range(0, 60, 7):
            buy(c, ["p_bread", "p_butter", "p_jam", "p_milk"][: 2 + (d + i) % 3], d + i % 3, "s1")
        if i % 2:
            buy(c, ["p_rye", "p_apple"], 3, "s1")
    for i, c in enumerate(MEAT_BUYERS):
        for d in range(0, 60, 7):
            buy(c, ["p_beef", "p_bbq", "p_pork", "p_chicken"][: 2 + (d + i) % 3], d + i % 2, "s2")
        if i % 2:
            buy(c, ["p_salmon", "p_apple"], 5, "s2")
    for d in range(0, 60, 7):
        buy(VEGAN, ["p_tofu", "p_oatmilk", "p_apple"], d, "s1")
        buy(NO_CONSENT, ["p_bread", "p_beef"], d, "s1")
    buy("b0", ["p_mystery"], 10, "s1")
    rng.shuffle(lines)
    inter = pd.DataFrame(lines, columns=["customer_id", "product_id", "timestamp", "basket_id", "store_id"])
    inter = inter.assign(quantity=1.0, value=2.0, discount=0.0, channel="store")
    return {"customers": customers, "products": products, "interactions": inter}


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """data dir + fitted ALS model dir (with items.parquet beside it, like the registry artifact)."""
    import recsys.models.implicit_models  # noqa: F401  (registers ALS)
    from recsys.models.implicit_models import ALS

    root = tmp_path_factory.mktemp("world")
    tables = make_tables()
    write_tables(tables, root / "data")
    dataset = Dataset.load(root / "data")
    model = ALS(factors=8, iterations=10, regularization=0.01, weighting="count").fit(dataset)
    model.save(root / "model")
    dataset.items_table.to_parquet(root / "model" / "items.parquet", index=False)
    model.save(root / "model2")  # a second copy for reload tests (different name = new version)
    return {"data": root / "data", "model": root / "model", "model2": root / "model2", "root": root}


def service_env(
    monkeypatch: pytest.MonkeyPatch, world: dict[str, Path], tmp_path: Path, **extra: str
) -> None:
    env = {
        "RECSYS_MODEL_DIR": str(world["model"]),
        "RECSYS_DATA_DIR": str(world["data"]),
        "RECSYS_EVENTS_URL": f"sqlite:///{tmp_path / 'events.db'}",
        "RECSYS_API_KEYS": keys_config(),
        "RECSYS_READ_REQUIRES_KEY": "false",
        "RECSYS_DEFAULT_CONSENT": "false",
        "RECSYS_WARM_UP": "false",  # lazy parts on first use: keeps every test's start-up cheap
        "RECSYS_OFFERS_URI": "none",  # no discount plan unless a test gives one (RECSYS_OFFERS_DIR)
        "RECSYS_MODEL_ROOT": str(world["model"].parent),  # reloads load model dirs under here only
        "RECSYS_ACTIVE_MODEL_FILE": str(tmp_path / "active-model.json"),
        **extra,
    }
    monkeypatch.delenv("RECSYS_OFFERS_DIR", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


@pytest.fixture(scope="session")
def asgi_app():
    """ONE ASGI app per test session: BentoML registers its Prometheus metrics per app, twice fails.

    Each TestClient context runs the lifespan again, which creates a fresh service instance that
    reads the (monkeypatched) environment, so tests still get their own model and event store.
    """
    from serving.service import RecsysService

    return RecsysService.to_asgi()


@pytest.fixture
def client(
    asgi_app, monkeypatch: pytest.MonkeyPatch, world: dict[str, Path], tmp_path: Path
) -> Iterator[TestClient]:
    """The service through `to_asgi()`; TestClient (httpx) runs the lifespan, so __init__ loads the model."""
    service_env(monkeypatch, world, tmp_path)
    with TestClient(asgi_app, raise_server_exceptions=False) as c:
        yield c
