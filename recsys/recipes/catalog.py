"""Recipe catalog: load, validate and diet-label the recipes shipped as YAML under ``data/``.

Diet attributes are never typed into the YAML. Each ingredient is labelled from its own name and its
Complete Journey product category/type by the product labeler (the same rules that label products),
and a recipe's attribute is the fail-closed roll-up of its required ingredients. So a recipe can only
be as "vegan" as the text of its ingredients proves, and fixing a rule fixes products and recipes alike.

Ingredient department/category/type are declared once per name in ``data/ingredients.yaml`` (a recipe
may override them inline), so "chicken stock" means the same shelf in every recipe. Labelling runs once
over the distinct ingredients with the vectorised product labeler, not once per recipe line.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd
import yaml

from recsys.data.schema import DIET_ATTRIBUTES, TRISTATE_VALUES

DATA_DIR = Path(__file__).parent / "data"
VOCABULARY_FILE = "ingredients.yaml"

#: Units a recipe may use; a closed set catches typos such as "tbps".
UNITS: frozenset[str] = frozenset(
    {"g", "kg", "ml", "l", "tsp", "tbsp", "cup", "piece", "clove", "head", "slice", "leaf", "stalk",
     "sprig", "bunch", "pinch", "can", "scoop"}
)  # fmt: skip

_RECIPE_KEYS = {"id", "name", "cuisine", "course", "servings", "minutes", "steps", "ingredients"}
_PRODUCT_KEYS = ("department", "category", "type")
_INGREDIENT_KEYS = {"name", "quantity", "unit", "optional", "pantry", *_PRODUCT_KEYS}

#: ``label_text(text, category=None, type=None) -> {attribute: "yes"|"no"|"unknown", "co2e_per_kg": ...}``,
#: the per-item signature of ``recsys.diet.labeler.label_text``.
Labeler = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class Ingredient:
    """One line of a recipe, resolvable to purchasable products through its category/type."""

    name: str
    quantity: float
    unit: str
    category: str | None
    type: str | None = None
    department: str | None = None
    optional: bool = False
    pantry: bool = False
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    co2e_per_kg: float = math.nan

    @property
    def required(self) -> bool:
        """Counts towards the recipe's diet attributes (optional garnishes do not)."""
        return not self.optional


@dataclass(frozen=True)
class Recipe:
    id: str
    name: str
    cuisine: str
    course: str
    servings: int
    minutes: int
    steps: tuple[str, ...]
    ingredients: tuple[Ingredient, ...]
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    def shopping_ingredients(self) -> tuple[Ingredient, ...]:
        """Ingredients a household may have to buy: required and not a pantry staple."""
        return tuple(i for i in self.ingredients if i.required and not i.pantry)


class RecipeCatalog:
    """An immutable, ordered collection of recipes with tabular views for ranking code."""

    def __init__(self, recipes: Collection[Recipe]):
        self._recipes = tuple(recipes)
        self._by_id = {r.id: r for r in self._recipes}
        if len(self._by_id) != len(self._recipes):
            raise ValueError("recipe ids must be unique")

    def __len__(self) -> int:
        return len(self._recipes)

    def __iter__(self) -> Iterator[Recipe]:
        return iter(self._recipes)

    def __getitem__(self, recipe_id: str) -> Recipe:
        return self._by_id[recipe_id]

    def __contains__(self, recipe_id: object) -> bool:
        return recipe_id in self._by_id

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self._recipes)

    def recipes_frame(self) -> pd.DataFrame:
        """One row per recipe; n_shopping_items counts required, non-pantry ingredients (what may be missing)."""
        rows = [
            {
                "id": r.id,
                "name": r.name,
                "cuisine": r.cuisine,
                "course": r.course,
                "servings": r.servings,
                "minutes": r.minutes,
                "n_steps": r.n_steps,
                "n_shopping_items": len(r.shopping_ingredients()),
                **{a: r.attributes[a] for a in DIET_ATTRIBUTES},
            }
            for r in self._recipes
        ]
        cols = ["id", "name", "cuisine", "course", "servings", "minutes", "n_steps", "n_shopping_items"]
        return pd.DataFrame(rows, columns=[*cols, *DIET_ATTRIBUTES])

    def ingredients_frame(self) -> pd.DataFrame:
        """One row per recipe ingredient with its derived diet attributes and CO2e per kg."""
        cols = [
            "recipe_id",
            "name",
            "quantity",
            "unit",
            "department",
            "category",
            "type",
            "optional",
            "pantry",
        ]
        rows = [
            {
                "recipe_id": r.id,
                "name": i.name,
                "quantity": i.quantity,
                "unit": i.unit,
                "department": i.department,
                "category": i.category,
                "type": i.type,
                "optional": i.optional,
                "pantry": i.pantry,
                **{a: i.attributes[a] for a in DIET_ATTRIBUTES},
                "co2e_per_kg": i.co2e_per_kg,
            }
            for r in self._recipes
            for i in r.ingredients
        ]
        return pd.DataFrame(rows, columns=[*cols, *DIET_ATTRIBUTES, "co2e_per_kg"])


def rollup(values: Collection[str]) -> str:
    """Fail-closed roll-up of one attribute: any yes -> yes, else any unknown -> unknown, else no."""
    if "yes" in values:
        return "yes"
    return "unknown" if "unknown" in values else "no"


def recipe_attributes(ingredients: Collection[Ingredient]) -> dict[str, str]:
    """A recipe's diet attributes from its required ingredients (optional ones can be left out)."""
    required = [i for i in ingredients if i.required]
    return {a: rollup([i.attributes[a] for i in required]) for a in DIET_ATTRIBUTES}


def load_recipes(
    path: str | Path | None = None,
    *,
    vocabulary: str | Path | Mapping[str, Any] | None = None,
    known_categories: Collection[str] | None = None,
    labeler: Labeler | None = None,
) -> RecipeCatalog:
    """Load, validate and diet-label recipes.

    ``path`` is a YAML file or a directory of YAML files (default: the packaged catalog); a file
    named ``ingredients.yaml`` in the directory is the ingredient vocabulary, otherwise the packaged
    vocabulary is used. ``known_categories`` (e.g. the product table's categories) makes an unknown
    ingredient category an error. ``labeler`` is a ``label_text``-style function; by default the product
    labeler's rules run once, vectorised, over the distinct ingredients (with their department).
    Raises ``ValueError`` naming the file, recipe id, ingredient and bad value.
    """
    files, vocab_path = _resolve_files(Path(path) if path is not None else DATA_DIR)
    vocab = _load_vocabulary(vocabulary if vocabulary is not None else vocab_path)
    recipes: list[Recipe] = []
    seen: dict[str, Path] = {}
    for file in files:
        for raw in _read_list(file):
            recipe = _parse_recipe(raw, file, vocab, known_categories)
            if recipe.id in seen:
                raise ValueError(f"{file}: recipe {recipe.id!r}: duplicate id (first in {seen[recipe.id]})")
            seen[recipe.id] = file
            recipes.append(recipe)
    return RecipeCatalog(_labelled(recipes, labeler))


# ----------------------------------------------------------------------------- files


def _resolve_files(path: Path) -> tuple[list[Path], Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.yaml") if p.name != VOCABULARY_FILE)
        vocab = path / VOCABULARY_FILE
        return files, vocab if vocab.exists() else DATA_DIR / VOCABULARY_FILE
    if not path.exists():
        raise FileNotFoundError(path)
    return [path], DATA_DIR / VOCABULARY_FILE


def _read_list(file: Path) -> list[Any]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{file}: not valid YAML: {exc}") from exc
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{file}: expected a list of recipes, got {type(data).__name__}")
    return data


def _load_vocabulary(source: Path | str | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Entries as ``{name: {department, category, type, pantry}}``; a value may be a 3-item list."""
    raw = source if isinstance(source, Mapping) else yaml.safe_load(Path(source).read_text("utf-8")) or {}
    vocab: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        if isinstance(value, list | tuple) and len(value) == len(_PRODUCT_KEYS):
            value = dict(zip(_PRODUCT_KEYS, value, strict=True))
        if not isinstance(value, Mapping) or not set(value) <= {*_PRODUCT_KEYS, "pantry"}:
            raise ValueError(
                f"ingredient vocabulary: {name!r}: expected [department, category, type] or a mapping"
            )
        vocab[str(name).strip().lower()] = dict(value)
    return vocab


# ----------------------------------------------------------------------------- parsing


def _parse_recipe(
    raw: Any,
    file: Path,
    vocab: Mapping[str, Mapping[str, Any]],
    known_categories: Collection[str] | None,
) -> Recipe:
    rid = raw.get("id") if isinstance(raw, Mapping) else None
    where = f"{file}: recipe {rid!r}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{file}: each recipe must be a mapping, got {raw!r}")
    if not isinstance(rid, str) or not rid.strip():
        raise ValueError(f"{where}: field 'id' must be a non-empty string")
    if unknown := set(raw) - _RECIPE_KEYS:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
    name = _text(raw, "name", where)
    cuisine = _text(raw, "cuisine", where)
    course = _text(raw, "course", where) if "course" in raw else "main"
    servings = _positive_int(raw, "servings", where)
    minutes = _positive_int(raw, "minutes", where)
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s.strip() for s in steps):
        raise ValueError(
            f"{where}: field 'steps' must be a non-empty list of non-empty strings, got {steps!r}"
        )
    items = raw.get("ingredients")
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where}: field 'ingredients' must be a non-empty list, got {items!r}")
    ingredients = tuple(_parse_ingredient(i, where, vocab, known_categories) for i in items)
    return Recipe(
        id=rid.strip(),
        name=name,
        cuisine=cuisine,
        course=course,
        servings=servings,
        minutes=minutes,
        steps=tuple(s.strip() for s in steps),
        ingredients=ingredients,
    )


def _parse_ingredient(
    raw: Any,
    where: str,
    vocab: Mapping[str, Mapping[str, Any]],
    known_categories: Collection[str] | None,
) -> Ingredient:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise ValueError(f"{where}: every ingredient needs a 'name', got {raw!r}")
    name = raw["name"].strip().lower()
    here = f"{where}: ingredient {name!r}"
    if unknown := set(raw) - _INGREDIENT_KEYS:
        raise ValueError(f"{here}: unknown field(s) {sorted(unknown)}")
    spec = {**vocab.get(name, {}), **{k: raw[k] for k in (*_PRODUCT_KEYS, "pantry") if k in raw}}
    if "category" not in spec:
        raise ValueError(f"{here}: field 'category' missing and the name is not in the ingredient vocabulary")
    category, ptype = spec.get("category"), spec.get("type")
    if known_categories is not None and category is not None and category not in known_categories:
        raise ValueError(f"{here}: field 'category' has unknown product category {category!r}")
    quantity = raw.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int | float) or not quantity > 0:
        raise ValueError(f"{here}: field 'quantity' must be a number > 0, got {quantity!r}")
    unit = raw.get("unit")
    if unit not in UNITS:
        raise ValueError(f"{here}: field 'unit' must be one of {sorted(UNITS)}, got {unit!r}")
    optional, pantry = raw.get("optional", False), spec.get("pantry", False)
    if not isinstance(optional, bool) or not isinstance(pantry, bool):
        raise ValueError(f"{here}: fields 'optional' and 'pantry' must be true/false")
    return Ingredient(
        name=name,
        quantity=float(quantity),
        unit=unit,
        category=category,
        type=ptype,
        department=spec.get("department"),
        optional=optional,
        pantry=pantry,
    )


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: field {key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _positive_int(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: field {key!r} must be an integer > 0, got {value!r}")
    return value


# ----------------------------------------------------------------------------- labeling


def _label_frame(frame: pd.DataFrame, labeler: Labeler | None) -> pd.DataFrame:
    """Labels for distinct ingredients: the product labeler in one batch, or ``labeler`` per row."""
    if labeler is None:
        from recsys.diet.labeler import label_products  # lazy: diet is a sibling package

        return label_products(frame)
    rows = [labeler(r.name, category=r.category, type=r.type) for r in frame.itertuples(index=False)]
    return pd.DataFrame([dict(row) for row in rows], index=frame.index)


def _labelled(recipes: list[Recipe], labeler: Labeler | None) -> list[Recipe]:
    """Label each distinct ingredient once, then roll the labels up per recipe."""
    keys = sorted(
        {(i.name, i.department, i.category, i.type) for r in recipes for i in r.ingredients}, key=str
    )
    if not keys:
        return recipes
    labels = _label_frame(pd.DataFrame(keys, columns=["name", "department", "category", "type"]), labeler)
    by_key: dict[tuple, tuple[dict[str, str], float]] = {}
    for key, (_, row) in zip(keys, labels.iterrows(), strict=True):
        attrs = {a: row.get(a, "unknown") for a in DIET_ATTRIBUTES}
        if bad := {a: v for a, v in attrs.items() if v not in TRISTATE_VALUES}:
            raise ValueError(f"ingredient {key[0]!r}: labeler returned invalid values {bad}")
        co2e = row.get("co2e_per_kg", math.nan)
        by_key[key] = attrs, math.nan if co2e is None or pd.isna(co2e) else float(co2e)

    def label(i: Ingredient) -> Ingredient:
        attrs, co2e = by_key[(i.name, i.department, i.category, i.type)]
        return dataclasses.replace(i, attributes=MappingProxyType(attrs), co2e_per_kg=co2e)

    out = []
    for r in recipes:
        ingredients = tuple(label(i) for i in r.ingredients)
        attrs = MappingProxyType(recipe_attributes(ingredients))
        out.append(dataclasses.replace(r, ingredients=ingredients, attributes=attrs))
    return out
