"""Rule-based diet labels and CO2e for products and recipe ingredients.

The rules live in ``data/diet_rules.csv`` (data, not code) so a reviewer can read and change them
without touching Python. Each rule matches a regex against one text field and sets tristate values.
Resolution per attribute: the highest-priority firing rule wins; at equal priority the cautious value
wins (yes > unknown > no). Anything no rule decides stays "unknown": a wrong "no" would put gluten in
front of a coeliac, so the labeler never guesses "no".
"""

from __future__ import annotations

import io
import re
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys.data.schema import DIET_ATTRIBUTES, TRISTATE_VALUES

DATA_DIR = Path(__file__).parent / "data"
RULES_PATH = DATA_DIR / "diet_rules.csv"
CO2E_PATH = DATA_DIR / "co2e_per_kg.csv"

TEXT_FIELDS: tuple[str, ...] = ("department", "category", "type", "name")
OUTPUTS: tuple[str, ...] = ("is_food", *DIET_ATTRIBUTES)
SHORT_NAMES: dict[str, str] = {
    "food": "is_food",
    "gluten": "contains_gluten",
    "meat": "contains_meat",
    "fish": "contains_fish",
    "dairy": "contains_dairy",
    "egg": "contains_egg",
    "nuts": "contains_nuts",
    "sugar": "added_sugar",
    "alcohol": "alcohol",
}
#: Cautiousness order used to break ties at equal priority.
_SEVERITY: dict[str, int] = {"no": 1, "unknown": 2, "yes": 3}
_DECODE = np.array(["unknown", "no", "unknown", "yes"], dtype=object)
#: Value every diet attribute takes on a non-food item: it is not eaten (pet food included).
NONFOOD_DIET_VALUE = "no"
_SEP = " | "


def _read_commented_csv(path: Path) -> pd.DataFrame:
    """Read a CSV whose full-line '#' comments document the data (the '#' may not start a field)."""
    lines = [
        ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")
    ]
    return pd.read_csv(io.StringIO("\n".join(lines)), dtype=str, keep_default_na=False)


def _parse_sets(sets: str, rule_id: str) -> dict[str, str]:
    """'food=yes all=no meat=yes' -> {output: value}, applied left to right."""
    out: dict[str, str] = {}
    for item in sets.split():
        key, _, value = item.partition("=")
        if value not in TRISTATE_VALUES:
            raise ValueError(f"rule {rule_id}: bad value in {item!r}")
        if key == "all":
            out.update(dict.fromkeys(DIET_ATTRIBUTES, value))
            continue
        name = SHORT_NAMES.get(key, key)
        if name not in OUTPUTS:
            raise ValueError(f"rule {rule_id}: unknown attribute {key!r}")
        out[name] = value
    return out


@lru_cache(maxsize=4)
def _load_rules_cached(path: str) -> pd.DataFrame:
    raw = _read_commented_csv(Path(path))
    groups = set(load_co2e()["food_group"]) | {"", "unknown"}
    rows = []
    for r in raw.itertuples(index=False):
        fields = r.field.split("+")
        if r.field != "any" and not set(fields) <= set(TEXT_FIELDS):
            raise ValueError(f"rule {r.rule_id}: unknown field {r.field!r}")
        for pat in (r.pattern, r.unless):
            if pat:
                re.compile(pat, re.IGNORECASE)
        if r.food_group not in groups:
            raise ValueError(f"rule {r.rule_id}: food_group {r.food_group!r} not in co2e_per_kg.csv")
        values = _parse_sets(r.sets, r.rule_id)
        if not values and not r.food_group:
            raise ValueError(f"rule {r.rule_id} sets nothing")
        rows.append({**r._asdict(), "priority": int(r.priority), **{a: values.get(a, "") for a in OUTPUTS}})
    rules = pd.DataFrame(rows)
    if rules["rule_id"].duplicated().any():
        raise ValueError(f"duplicate rule ids: {sorted(rules.loc[rules.rule_id.duplicated(), 'rule_id'])}")
    return rules


def load_rules(path: str | Path | None = None) -> pd.DataFrame:
    """The validated rule table: one row per rule, one column per output with '' where not set."""
    return _load_rules_cached(str(path or RULES_PATH)).copy()


@lru_cache(maxsize=1)
def _load_co2e_cached() -> pd.DataFrame:
    table = _read_commented_csv(CO2E_PATH)
    table["co2e_per_kg"] = table["co2e_per_kg"].astype(float)
    return table


def load_co2e() -> pd.DataFrame:
    """kg CO2e per kg by food group (Poore & Nemecek 2018 via Our World in Data; see the file header)."""
    return _load_co2e_cached().copy()


def _text_frame(products: pd.DataFrame) -> pd.DataFrame:
    """The four text fields as clean strings ('' for missing), plus the joined 'any' text."""
    if not set(TEXT_FIELDS) & set(products.columns):
        raise ValueError(f"products need at least one of {TEXT_FIELDS}")
    out = pd.DataFrame(index=products.index)
    for f in TEXT_FIELDS:
        col = products[f] if f in products.columns else pd.Series("", index=products.index)
        out[f] = col.astype("string").fillna("").str.strip().astype(object)
    out["any"] = out["department"] + _SEP + out["category"] + _SEP + out["type"] + _SEP + out["name"]
    return out


def _strip_lookarounds(pattern: str) -> str:
    """Drop negative lookaround groups: the result matches a superset, and RE2 can run it."""
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif pattern.startswith(("(?!", "(?<!"), i):
            depth, i = 0, i
            while True:
                c = pattern[i]
                if c == "\\":
                    i += 2
                    continue
                depth += (c == "(") - (c == ")")
                i += 1
                if depth == 0:
                    break
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def _contains(values: pd.Series, pattern: str) -> np.ndarray:
    """Case-insensitive regex search over unique strings.

    RE2 (pyarrow) screens with lookarounds stripped, a superset of the true matches; Python's re
    then confirms only the candidates. This keeps 200 rules over 90k names to about a second.
    """
    screen = _strip_lookarounds(pattern)
    try:
        hit = pc.match_substring_regex(pa.array(values, type=pa.string()), screen, ignore_case=True)
        hit = hit.to_numpy(zero_copy_only=False).astype(bool)
    except pa.ArrowInvalid:  # a construct RE2 lacks: fall back to Python for all values
        hit, screen = np.ones(len(values), dtype=bool), None
    if screen == pattern or not hit.any():
        return hit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "pattern has match groups"
        hit[hit] = values[hit].str.contains(pattern, case=False, regex=True).to_numpy(dtype=bool)
    return hit


def _field_text(combos: pd.DataFrame, field: str) -> pd.Series:
    if field in combos.columns:
        return combos[field]
    parts = [combos[f] for f in field.split("+")]
    text = parts[0]
    for p in parts[1:]:
        text = text + _SEP + p
    return text


def _matcher(combos: pd.DataFrame):
    """Return match(field, pattern) -> bool array over combos, evaluated once per unique text.

    'any' ORs the four fields, except patterns that name the separator (" \\| "), which are
    matched on the joined text to express department AND category AND type conditions.
    """
    factorized: dict[str, tuple[np.ndarray, pd.Series]] = {}
    cache: dict[tuple[str, str], np.ndarray] = {}

    def single(field: str, pattern: str) -> np.ndarray:
        key = (field, pattern)
        if key not in cache:
            if field not in factorized:
                codes, uniques = pd.factorize(_field_text(combos, field))
                factorized[field] = (codes, pd.Series(uniques, dtype=object))
            codes, uniques = factorized[field]
            cache[key] = _contains(uniques, pattern)[codes]
        return cache[key]

    def match(field: str, pattern: str) -> np.ndarray:
        if field != "any" or "\\|" in pattern:
            return single(field, pattern)
        return np.logical_or.reduce([single(f, pattern) for f in TEXT_FIELDS])

    return match


def _fired_matrix(combos: pd.DataFrame, rules: pd.DataFrame) -> np.ndarray:
    match = _matcher(combos)
    fired = np.zeros((len(combos), len(rules)), dtype=bool)
    for j, r in enumerate(rules.itertuples(index=False)):
        hit = match(r.field, r.pattern)
        if r.unless:
            hit = hit & ~match("any", r.unless)
        fired[:, j] = hit
    return fired


def _resolve(fired: np.ndarray, rules: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Winning value and winning rule index (-1 if none) per row for one output column."""
    idx = np.flatnonzero(rules[column].to_numpy() != "")
    if idx.size == 0:
        return np.full(len(fired), "unknown", dtype=object), np.full(len(fired), -1)
    score = rules["priority"].to_numpy()[idx] * 4 + rules[column].iloc[idx].map(_SEVERITY).to_numpy()
    scores = np.where(fired[:, idx], score, -1)
    pos = scores.argmax(axis=1)
    best = scores[np.arange(len(fired)), pos]
    values = np.where(best >= 0, _DECODE[np.maximum(best, 0) % 4], "unknown")
    return values.astype(object), np.where(best >= 0, idx[pos], -1)


def _resolve_group(fired: np.ndarray, rules: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Food group per row: the highest-priority group rules must agree, else undecided (None)."""
    groups = rules["food_group"].to_numpy()
    idx = np.flatnonzero(groups != "")
    names = np.array(["unknown", *sorted(set(groups[idx]) - {"unknown"})], dtype=object)
    code = pd.Index(names).get_indexer(groups[idx])
    prio = np.where(fired[:, idx], rules["priority"].to_numpy()[idx], -1)
    top = prio.max(axis=1, initial=-1)
    cand = fired[:, idx] & (prio == top[:, None]) & (top[:, None] >= 0)
    lo = np.where(cand, code, len(names)).min(axis=1, initial=len(names))
    hi = np.where(cand, code, -1).max(axis=1, initial=-1)
    decided = (lo == hi) & (lo > 0)
    out = np.where(decided, names[np.minimum(lo, len(names) - 1)], None)
    winner = np.where(cand.any(axis=1), idx[cand.argmax(axis=1)], -1)
    return out, winner


def label_products(products: pd.DataFrame, rules: pd.DataFrame | None = None) -> pd.DataFrame:
    """Label products from their department/category/type/name text.

    Returns, on the same index: is_food, the 8 DIET_ATTRIBUTES ('yes'/'no'/'unknown'), food_group,
    co2e_per_kg (NaN when no group is decided) and diet_rule_ids (the rules that decided a value,
    highest priority first). Rules run once per unique text combination, not per row.
    """
    rules = load_rules() if rules is None else rules
    text = _text_frame(products)
    combos = text.drop_duplicates("any").reset_index(drop=True)
    codes = pd.Index(combos["any"]).get_indexer(text["any"])
    fired = _fired_matrix(combos, rules)

    out = pd.DataFrame(index=combos.index)
    winners = []
    for col in OUTPUTS:
        out[col], win = _resolve(fired, rules, col)
        winners.append(win)
    out["food_group"], group_win = _resolve_group(fired, rules)

    nonfood = out["is_food"].to_numpy() == "no"
    for col in DIET_ATTRIBUTES:
        out.loc[nonfood, col] = NONFOOD_DIET_VALUE
    out.loc[nonfood, "food_group"] = None
    co2e = load_co2e().set_index("food_group")["co2e_per_kg"]
    out["co2e_per_kg"] = out["food_group"].map(co2e).astype(float)

    win = np.column_stack([*winners, np.where(out["food_group"].notna(), group_win, -1)])
    win[nonfood, 1:] = -1
    out["diet_rule_ids"] = _rule_id_strings(win, rules)

    result = out.iloc[codes].set_axis(products.index)
    return result[[*OUTPUTS, "food_group", "co2e_per_kg", "diet_rule_ids"]]


def _rule_id_strings(win: np.ndarray, rules: pd.DataFrame) -> np.ndarray:
    """Comma-joined winning rule ids per row, highest priority first (computed per unique row)."""
    ids = rules["rule_id"].to_numpy()
    prio = rules["priority"].to_numpy()
    uniq, inverse = np.unique(win, axis=0, return_inverse=True)
    strings = []
    for row in uniq:
        used = sorted({int(i) for i in row if i >= 0}, key=lambda i: (-prio[i], i))
        strings.append(",".join(ids[used]))
    return np.asarray(strings, dtype=object)[inverse.ravel()]


def label_text(
    text: str,
    category: str | None = None,
    type: str | None = None,  # noqa: A002 - mirrors the canonical column name
    department: str | None = None,
) -> dict[str, object]:
    """Label one free-text item, e.g. a recipe ingredient plus its mapped category/type."""
    frame = pd.DataFrame([{"department": department, "category": category, "type": type, "name": text}])
    return label_products(frame).iloc[0].to_dict()


def attribute_coverage(
    products: pd.DataFrame, interactions: pd.DataFrame | pd.Series | None = None
) -> pd.DataFrame:
    """Per attribute: products and purchase lines that are yes/no/unknown.

    ``products`` may already carry the labels; otherwise they are computed. Purchase lines join
    interactions.product_id to products.product_id; ``interactions`` may also be the number of lines
    per product_id already counted (by a query over Parquet, say). ``food_lines_decided`` is the share of lines on
    items not known to be non-food that are decided (yes or no): the honest coverage figure, since
    non-food items are "no" by definition.
    """
    labels = products if set(OUTPUTS) <= set(products.columns) else label_products(products)
    rows = []
    lines = None
    if interactions is not None:
        per_product = (
            interactions if isinstance(interactions, pd.Series) else interactions.groupby("product_id").size()
        )
        lines = products["product_id"].map(per_product).fillna(0).astype(int).to_numpy()
    food = labels["is_food"].to_numpy() != "no"
    for col in OUTPUTS:
        values = labels[col].to_numpy()
        row: dict[str, object] = {"attribute": col}
        for v in TRISTATE_VALUES:
            row[f"products_{v}"] = int((values == v).sum())
        if lines is not None:
            for v in TRISTATE_VALUES:
                row[f"lines_{v}"] = int(lines[values == v].sum())
            mask = food if col != "is_food" else np.ones_like(food)
            total = lines[mask].sum()
            decided = lines[mask & (values != "unknown")].sum()
            row["food_lines_decided"] = round(float(decided / total), 4) if total else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("attribute")
