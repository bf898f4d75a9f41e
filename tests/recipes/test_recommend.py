"""Recipe recommendations: diet-safe recipes and missing products, coverage boost, filters, bad input."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.schema import DIET_ATTRIBUTES
from recsys.models.popularity import Popularity
from recsys.personalize import Personalizer
from recsys.recipes.catalog import Ingredient, Recipe, RecipeCatalog, load_recipes, recipe_attributes
from recsys.recipes.recommend import RecipeRecommender
from tests.diet.catalogs import CATEGORIES, TRISTATE, catalogs, make_dataset, product_row, profiles, violates

VEG = "VEGETABLES - ALL OTHERS"


def products() -> pd.DataFrame:
    return pd.DataFrame(
        [
            product_row("beef", "BEEF", "LEAN", 99.0, contains_meat="yes"),
            product_row("onion", VEG, "ONIONS", 0.5),
            product_row("garlic", VEG, "GARLIC", 0.5),
            product_row("pasta", "PASTA", "DRY PASTA", 1.6, contains_gluten="yes"),
            product_row("gf-pasta", "PASTA", "DRY PASTA", 1.6),
            product_row("cheddar", "CHEESE", "SHREDDED CHEESE", 24.0, contains_dairy="yes"),
            product_row("vegan-cheese", "CHEESE", "VEGAN CHEESE ALTERNATIVE", 3.0),
            product_row("chicken-broth", "SOUP", "BROTH", 10.0, contains_meat="yes"),
            product_row("veg-broth", "SOUP", "BROTH", 1.0),
            product_row("mystery-broth", "SOUP", "BROTH", 1.0, contains_meat="unknown"),
        ]
    )


def keyword_labeler(text, category=None, type=None):
    """A stand-in for the product labeler: enough keywords for these recipes."""
    out = dict.fromkeys(DIET_ATTRIBUTES, "no")
    if any(w in text for w in ("beef", "chicken")):
        out["contains_meat"] = "yes"
    if "cheese" in text and "vegan" not in text:
        out["contains_dairy"] = "yes"
    if "pasta" in text and "gluten-free" not in text:
        out["contains_gluten"] = "yes"
    if "mystery" in text:
        out["contains_meat"] = "unknown"
    return out


RECIPES = [
    {"id": "beef-stew", "name": "Beef stew", "minutes": 120, "steps": ["brown", "simmer", "serve"],
     "ingredients": [{"name": "stewing beef", "category": "BEEF", "type": "LEAN"}, {"name": "onion"},
                     {"name": "beef stock", "category": "SOUP", "type": "BROTH"}]},
    {"id": "chicken-stock-soup", "name": "Onion soup with chicken stock", "minutes": 40, "steps": ["fry", "simmer"],
     "ingredients": [{"name": "onion"}, {"name": "garlic"}, {"name": "chicken stock", "category": "SOUP", "type": "BROTH"}]},
    {"id": "veg-soup", "name": "Onion soup", "minutes": 40, "steps": ["fry", "simmer"],
     "ingredients": [{"name": "onion"}, {"name": "garlic"}, {"name": "vegetable stock", "category": "SOUP", "type": "BROTH"}]},
    {"id": "mac-cheese", "name": "Mac and cheese", "minutes": 30, "steps": ["boil", "melt", "mix", "bake", "rest", "serve"],
     "ingredients": [{"name": "pasta", "category": "PASTA", "type": "DRY PASTA"},
                     {"name": "cheddar cheese", "category": "CHEESE", "type": "SHREDDED CHEESE"}]},
    {"id": "vegan-pasta", "name": "Vegan cheesy pasta", "minutes": 25, "steps": ["boil", "mix"],
     "ingredients": [{"name": "pasta", "category": "PASTA", "type": "DRY PASTA"},
                     {"name": "vegan cheese", "category": "CHEESE", "type": "VEGAN CHEESE ALTERNATIVE"},
                     {"name": "garlic"},
                     {"name": "parmesan cheese", "category": "CHEESE", "type": "SHREDDED CHEESE", "optional": True}]},
    {"id": "mystery-soup", "name": "Mystery soup", "minutes": 20, "steps": ["heat"],
     "ingredients": [{"name": "mystery stock", "category": "SOUP", "type": "BROTH"}, {"name": "onion"}]},
]  # fmt: skip
VOCAB = {"onion": {"category": VEG, "type": "ONIONS"}, "garlic": {"category": VEG, "type": "GARLIC"}}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> RecipeCatalog:
    path = tmp_path_factory.mktemp("recipes") / "test.yaml"
    recipes = [
        {
            **r,
            "cuisine": "Test",
            "servings": 4,
            "ingredients": [{"quantity": 1, "unit": "piece", **i} for i in r["ingredients"]]
            + [{"name": "salt", "quantity": 1, "unit": "tsp", "category": "SPICES", "pantry": True}],
        }
        for r in RECIPES
    ]
    path.write_text(yaml.safe_dump(recipes))
    return load_recipes(path, vocabulary=VOCAB, labeler=keyword_labeler)


@pytest.fixture(scope="module")
def personalizer(catalog) -> Personalizer:
    items = products()
    lines = [("c0", "chicken-broth")] * 5 + [
        ("c0", "cheddar"),
        ("c0", "onion"),
        ("c1", "beef"),
        ("c2", "pasta"),
    ]
    lines += [("c2", "chicken-broth")]
    data = make_dataset(items, lines)
    stock = {"s1": [i for i in range(len(items)) if items["product_id"][i] != "veg-broth"]}
    return Personalizer(Popularity().fit(data), data, recipes=catalog, stock=stock)


def ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["recipe_id"])


def test_vegan_gets_no_beef_stew_and_vegetarian_no_chicken_stock(personalizer):
    assert "beef-stew" in ids(personalizer.recommend_recipes("c0", 10))
    vegan = personalizer.recommend_recipes("c0", 10, profile="vegan")
    assert ids(vegan) == {"veg-soup", "vegan-pasta"}  # the optional parmesan does not count
    vegan_pasta = vegan.set_index("recipe_id").loc["vegan-pasta"]
    assert "parmesan cheese" not in vegan_pasta["missing_ingredients"]
    assert ids(personalizer.recommend_recipes("c0", 10, profile="vegan,gluten-free")) == {"veg-soup"}
    vegetarian = personalizer.recommend_recipes("c0", 10, profile="vegetarian")
    assert "chicken-stock-soup" not in ids(vegetarian) and "beef-stew" not in ids(vegetarian)
    assert "mystery-soup" not in ids(vegetarian)  # unknown never passes a hard exclusion


def test_missing_products_are_compliant_best_scoring_and_pantry_at_home_on_request(personalizer):
    plain = personalizer.recommend_recipes("c1", 10, pantry_at_home=True).set_index("recipe_id")
    # chicken broth is the most popular broth: the best one for the soup without a diet...
    assert plain.loc["veg-soup", "missing_product_ids"][-1] == "chicken-broth"
    veg = personalizer.recommend_recipes("c1", 10, profile="vegetarian", pantry_at_home=True)
    veg = veg.set_index("recipe_id")
    # ...but never for a vegetarian, and never the unknown one
    assert veg.loc["veg-soup", "missing_product_ids"][-1] == "veg-broth"
    assert all("salt" not in names for names in plain["missing_ingredients"])
    for frame in (plain, veg):
        for names, ids_ in zip(frame["missing_ingredients"], frame["missing_product_ids"], strict=True):
            assert len(names) == len(ids_)  # aligned: every product names its ingredient
    c0 = personalizer.recommend_recipes("c0", 10, profile="vegetarian").set_index("recipe_id")
    assert "onion" not in c0.loc["veg-soup", "missing_ingredients"]  # bought recently
    assert "vegetable stock" in c0.loc["veg-soup", "missing_ingredients"]  # chicken broth does not cover it


def test_basket_coverage_boosts_and_store_stock_applies(personalizer):
    base = personalizer.recommend_recipes("c1", 10, profile="vegetarian").set_index("recipe_id")
    boosted = personalizer.recommend_recipes("c1", 10, profile="vegetarian", basket=["garlic", "onion"])
    boosted = boosted.set_index("recipe_id")
    assert boosted.loc["veg-soup", "coverage"] > base.loc["veg-soup", "coverage"]
    assert boosted.loc["veg-soup", "score"] > base.loc["veg-soup", "score"]
    assert boosted.loc["veg-soup", "missing_ingredients"] == ["vegetable stock", "salt"]  # salt: a staple
    in_store = personalizer.recommend_recipes("c1", 10, profile="vegetarian", store="s1")
    in_store = in_store.set_index("recipe_id")
    # the only compliant broth is out of stock there: the ingredient is named, no product offered
    missing = dict(
        zip(*in_store.loc["veg-soup", ["missing_ingredients", "missing_product_ids"]], strict=True)
    )
    assert missing["vegetable stock"] is None


def test_max_steps_and_minutes(personalizer):
    short = personalizer.recommend_recipes("c0", 10, max_steps=2)
    assert (short["steps"] <= 2).all() and "mac-cheese" not in ids(short)
    quick = personalizer.recommend_recipes("c0", 10, max_minutes=30)
    assert (quick["minutes"] <= 30).all() and "beef-stew" not in ids(quick)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"profile": "carnivore"}, "carnivore"),
        ({"max_steps": -1}, "max_steps"),
        ({"max_steps": 0}, "max_steps"),
        ({"k": 0}, "k must be"),
        ({"max_minutes": 0}, "max_minutes"),
    ],
)
def test_bad_input_gets_a_clear_error(personalizer, kwargs, message):
    kwargs = {"k": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        personalizer.recommend_recipes("c0", **kwargs)


def test_unknown_user_is_diet_safe(personalizer):
    out = personalizer.recommend_recipes("stranger", 10, profile="vegan,gluten")
    assert ids(out) == {"veg-soup"}


# ---- property-based: random catalogs, recipes, profiles and customers --------------------------------


@st.composite
def recipe_catalogs(draw, n_max: int = 8) -> RecipeCatalog:
    recipes = []
    for r in range(draw(st.integers(1, n_max))):
        ingredients = []
        for j in range(draw(st.integers(1, 5))):
            category = draw(st.sampled_from(sorted(CATEGORIES) + ["NOT IN CATALOG"]))
            type_ = draw(st.sampled_from((*CATEGORIES.get(category, ()), "OTHER", None)))
            attrs = {a: draw(TRISTATE) for a in DIET_ATTRIBUTES}
            ingredients.append(
                Ingredient(
                    f"ing{j}",
                    1.0,
                    "piece",
                    category,
                    type_,
                    optional=draw(st.booleans()),
                    pantry=draw(st.booleans()),
                    attributes=MappingProxyType(attrs),
                )
            )
        recipes.append(
            Recipe(
                f"r{r}", f"Recipe {r}", "Test", "main", 2, draw(st.integers(5, 90)),
                tuple("step" for _ in range(draw(st.integers(1, 8)))), tuple(ingredients),
                MappingProxyType(recipe_attributes(ingredients)),
            )
        )  # fmt: skip
    return RecipeCatalog(recipes)


def recipe_violations(recipe: Recipe, exclusions: frozenset[str]) -> list[str]:
    return [
        f"{i.name}:{a}"
        for i in recipe.ingredients
        if i.required
        for a in exclusions
        if i.attributes[a] != "no"
    ]


@settings(deadline=None, max_examples=60)
@given(
    data=st.data(),
    items=catalogs(min_items=3, max_items=25),
    recipes=recipe_catalogs(),
    profile=profiles,
    k=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_zero_violations_in_recipes_and_missing_products(data, items, recipes, profile, k, seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=len(items))
    owned = rng.random(len(items)) < 0.3
    rec = RecipeRecommender(items, recipes)
    out = rec.recommend(
        scores,
        k,
        profile=profile,
        owned=owned,
        require_available=data.draw(st.booleans()),
        pantry_at_home=data.draw(st.booleans()),
    )
    assert len(out) <= k
    by_id = {r.id: r for r in recipes}
    for _, row in out.iterrows():
        assert recipe_violations(by_id[row["recipe_id"]], profile.exclusions) == []
        offered = [p for p in row["missing_product_ids"] if p is not None]  # None: named, no product
        assert violates(items, offered, profile) == []
    loose = rec.recommend(scores, k, profile=profile, require_available=False)
    diet_ok = [r for r in recipes if not recipe_violations(r, profile.exclusions)]
    assert len(loose) == min(k, len(diet_ok))  # k honoured whenever enough compliant recipes exist


@settings(deadline=None, max_examples=40)
@given(
    data=st.data(),
    items=catalogs(min_items=3, max_items=25),
    profile=profiles,
    k=st.integers(1, 10),
    co2_weight=st.sampled_from([0.0, 0.5, 3.0]),
    mode=st.sampled_from(["mixed", "buy_again", "discover"]),
)
def test_personalizer_products_zero_violations_and_k(data, items, profile, k, co2_weight, mode):
    from tests.diet.catalogs import purchases

    dataset = make_dataset(items, data.draw(purchases(items)))
    p = Personalizer(Popularity().fit(dataset), dataset, recipes=RecipeCatalog([]))
    user = data.draw(st.sampled_from(["c0", "c1", "c2", "stranger"]))
    out = p.recommend_products(user, k, profile=profile, co2_weight=co2_weight, mode=mode)
    idx = dataset.items.to_internal(out["item_id"])
    assert violates(items, idx, profile) == []
    compliant = len(items) - len(violates(items, range(len(items)), profile))
    if user == "stranger" and mode == "buy_again":
        assert out.empty  # nothing to buy again (decided once in recsys.ranking.selection)
    elif mode == "mixed" or user == "stranger":
        assert len(out) == min(k, compliant)
    assert out["rank"].tolist() == list(range(1, len(out) + 1))


def test_recipes_command_writes_the_csv(tmp_path, catalog):
    from cli.main import main

    items = products()
    data = make_dataset(items, [("c0", "onion"), ("c1", "beef"), ("c2", "chicken-broth")])
    model_dir = tmp_path / "model"
    Popularity().fit(data).save(model_dir)
    items.to_parquet(model_dir / "items.parquet")
    recipes = tmp_path / "recipes.yaml"
    recipes.write_text(yaml.safe_dump([r for r in RECIPES_FOR_CLI]))
    users = tmp_path / "users.csv"
    users.write_text("user_id\nc0\nstranger\n")
    out = tmp_path / "recipes.csv"
    args = ["recipes", "--model", str(model_dir), "--users", str(users), "--k", "3", "--diet", "vegetarian"]
    assert main([*args, "--recipes", str(recipes), "--out", str(out)]) == 0
    frame = pd.read_csv(out, dtype=str)
    assert list(frame.columns) == [
        "user_id",
        "recipe_id",
        "name",
        "rank",
        "score",
        "steps",
        "minutes",
        "missing",
        "ingredients",
        "instructions",
    ]
    soup = frame[frame["recipe_id"] == "onion-soup-cli"].iloc[0]
    assert soup["ingredients"] == "4 piece onions; 1 l vegetable broth"
    assert soup["instructions"] == "fry; simmer"
    assert "vegetable broth=" in soup["missing"]  # every missing product names its ingredient
    assert set(frame["user_id"]) <= {"c0", "stranger"}
    assert "beef-stew-cli" not in set(frame["recipe_id"])
    assert main([*args[:-2], "--recipes", str(recipes), "--out", str(out)]) == 0  # no diet
    assert set(pd.read_csv(out, dtype=str)["user_id"]) == {"c0", "stranger"}
    for cell in frame["missing"].dropna():
        offered = {pair.split("=")[1] for pair in cell.split("; ")} - {""}
        assert offered <= set(items.loc[items["contains_meat"] == "no", "product_id"])
    assert main([*args[:-1], "paleo", "--out", str(out)]) == 2
    assert main([*args, "--max-steps", "-1", "--out", str(out)]) == 2


RECIPES_FOR_CLI = [
    {"id": "beef-stew-cli", "name": "Beef stew", "cuisine": "Test", "servings": 4, "minutes": 90,
     "steps": ["brown", "simmer"],
     "ingredients": [{"name": "stewing beef", "quantity": 1, "unit": "kg", "category": "BEEF", "type": "LEAN"},
                     {"name": "onions", "quantity": 2, "unit": "piece", "category": VEG, "type": "ONIONS"}]},
    {"id": "onion-soup-cli", "name": "Onion soup", "cuisine": "Test", "servings": 4, "minutes": 40,
     "steps": ["fry", "simmer"],
     "ingredients": [{"name": "onions", "quantity": 4, "unit": "piece", "category": VEG, "type": "ONIONS"},
                     {"name": "vegetable broth", "quantity": 1, "unit": "l", "category": "SOUP", "type": "BROTH"}]},
]  # fmt: skip


def test_shipped_catalog_vegan_gets_no_beef_stew_and_chicken_stock_is_not_vegetarian():
    from recsys.recipes.catalog import load_recipes

    shipped = load_recipes()
    rec = RecipeRecommender(products(), shipped)
    vegan, vegetarian = rec.diet_allowed("vegan"), rec.diet_allowed("vegetarian")
    meaty = [
        i
        for i, r in enumerate(rec.recipes)
        if any(w in ing.name for ing in r.ingredients if ing.required for w in ("beef", "chicken stock"))
    ]
    assert meaty and "beef-ale-stew" in {rec.recipes[i].id for i in meaty}
    assert not vegan[meaty].any() and not vegetarian[meaty].any()
    out = rec.recommend(np.zeros(len(products())), 50, profile="vegan", require_available=False)
    assert not any("beef" in name.lower() for name in out["name"])


def test_one_definition_of_at_home_recent_purchases_with_a_time_only(personalizer, catalog):
    """With purchase times, only the last `recent_days` count; without them (a model directory alone,
    as the CLI and the service may run) nothing does, never the whole history."""
    u = personalizer.user_index("c0")
    recent = personalizer.recent_items(u)
    assert recent.any()
    timeless = Personalizer(personalizer.model, personalizer.items_table, recipes=catalog)
    assert not timeless.recent_items(u).any()
    short = Personalizer(personalizer.model, personalizer.dataset, recipes=catalog, recent_days=0.0)
    assert short.recent_items(u).sum() <= recent.sum()


def test_a_catalog_without_shelves_recommends_nothing():
    rec = RecipeRecommender(products(), RecipeCatalog([]))
    assert rec.recommend(np.zeros(len(products())), 3).empty


def test_a_model_over_the_same_catalog_shares_the_catalog_parts_and_answers_alike(personalizer, catalog):
    """A reload over unchanged data reuses the aligned items, the constraint engine and the recipe
    shelves; the lists are exactly those of a personalizer built from scratch for the new model."""
    from recsys.models.buy_again import BuyAgain

    data, items = personalizer.dataset, products()
    stock = {"s1": [i for i in range(len(items)) if items["product_id"][i] != "veg-broth"]}
    personalizer.recipe_recommender  # noqa: B018 - built, as the service's warm-up does
    model = BuyAgain().fit(data)
    shared = Personalizer(model, data, recipes=catalog, stock=stock, same_catalog=personalizer)
    fresh = Personalizer(model, data, recipes=catalog, stock=stock)
    assert shared.engine is personalizer.engine and shared.items_table is personalizer.items_table
    assert shared.selector.item_pos is personalizer.selector.item_pos
    assert shared.recipe_recommender.shelf_items is personalizer.recipe_recommender.shelf_items
    for cid, diet in (("c0", None), ("c1", "vegetarian"), ("c2", "vegan"), ("new", "gluten-free")):
        for ask in ("recommend_recipes", "recommend_products"):
            pd.testing.assert_frame_equal(
                getattr(shared, ask)(cid, 5, diet), getattr(fresh, ask)(cid, 5, diet)
            )
        got = shared.recommend_recipes(cid, 5, diet, store="s1")
        pd.testing.assert_frame_equal(got, fresh.recommend_recipes(cid, 5, diet, store="s1"))
    other_data = make_dataset(items, [("c0", "beef")])  # another data set: nothing is shared
    other = Personalizer(Popularity().fit(other_data), other_data, recipes=catalog, same_catalog=personalizer)
    assert other.engine is not personalizer.engine and other._recipe_recommender is None
