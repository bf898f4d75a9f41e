"""Diet profiles: hard exclusions (never shown) and soft preferences (ranked lower), per household.

A profile is what the customer (and every household member) told us. Hard exclusions become item
masks in `recsys.diet.constraints` (fail-closed: an unknown attribute counts as present); soft
preferences become score penalties in `recsys.ranking.rerank`. A profile inferred from purchase
history (`suggest_profiles`) is only ever a suggestion: applying it needs the customer's explicit
confirmation and consent, because a wrong hard rule silently hides food someone wants and a
health-related label must never be guessed on the customer's behalf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.schema import DIET_ATTRIBUTES

#: Named diets and the hard exclusions they expand to.
NAMED_DIETS: dict[str, tuple[str, ...]] = {
    "vegan": ("contains_meat", "contains_fish", "contains_dairy", "contains_egg"),
    "vegetarian": ("contains_meat", "contains_fish"),
    "pescetarian": ("contains_meat",),
    "gluten-free": ("contains_gluten",),
    "lactose-free": ("contains_dairy",),
    "nut-free": ("contains_nuts",),
    "no-added-sugar": ("added_sugar",),
    "alcohol-free": ("alcohol",),
}

#: Plain exclusion names (and the attribute names themselves) -> attribute.
EXCLUSION_NAMES: dict[str, str] = {
    "gluten": "contains_gluten",
    "meat": "contains_meat",
    "fish": "contains_fish",
    "dairy": "contains_dairy",
    "egg": "contains_egg",
    "eggs": "contains_egg",
    "nuts": "contains_nuts",
    "nut": "contains_nuts",
    "sugar": "added_sugar",
    "added-sugar": "added_sugar",
    "alcohol": "alcohol",
    **{a.replace("_", "-"): a for a in DIET_ATTRIBUTES},
}

#: Every name `parse_profile` understands, for error messages and CLI help.
VALID_NAMES: tuple[str, ...] = tuple(sorted(NAMED_DIETS)) + tuple(
    sorted(n for n in EXCLUSION_NAMES if not n.startswith("contains-") and n != "added-sugar")
)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def expand_name(name: str) -> frozenset[str]:
    """Attributes a diet or exclusion name stands for; ValueError names the culprit and the valid names."""
    key = _normalise(name)
    if key in NAMED_DIETS:
        return frozenset(NAMED_DIETS[key])
    if key in EXCLUSION_NAMES:
        return frozenset({EXCLUSION_NAMES[key]})
    raise ValueError(f"unknown diet or exclusion {name.strip()!r}; valid names: {', '.join(VALID_NAMES)}")


@dataclass(frozen=True)
class DietProfile:
    """Hard `exclusions` (attribute names) and soft `preferences` (attribute -> strength in (0, 1]).

    Hashing uses the exclusions only (they are what decides a mask, the cache key of the
    constraint engine); equality compares both.
    """

    exclusions: frozenset[str] = frozenset()
    preferences: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        exclusions = frozenset(self.exclusions)
        bad = sorted(exclusions - set(DIET_ATTRIBUTES))
        if bad:
            raise ValueError(f"unknown diet attribute(s) {bad}; valid: {', '.join(DIET_ATTRIBUTES)}")
        prefs = dict(self.preferences)
        for attr, strength in prefs.items():
            if attr not in DIET_ATTRIBUTES:
                raise ValueError(f"unknown diet attribute {attr!r}; valid: {', '.join(DIET_ATTRIBUTES)}")
            _check_strength(attr, strength)
        object.__setattr__(self, "exclusions", exclusions)
        object.__setattr__(self, "preferences", MappingProxyType(dict(sorted(prefs.items()))))

    @property
    def is_empty(self) -> bool:
        return not self.exclusions and not self.preferences

    def merge(self, other: DietProfile) -> DietProfile:
        """Union of exclusions, strongest of preferences: what a household as a whole must respect."""
        prefs = dict(self.preferences)
        for attr, strength in other.preferences.items():
            prefs[attr] = max(prefs.get(attr, 0.0), strength)
        return DietProfile(self.exclusions | other.exclusions, prefs)

    def describe(self) -> str:
        parts = [f"no {a}" for a in sorted(self.exclusions)]
        parts += [f"less {a} ({s:g})" for a, s in self.preferences.items()]
        return ", ".join(parts) or "no diet rules"


EMPTY_PROFILE = DietProfile()


def _check_strength(name: str, strength: float) -> float:
    if not (isinstance(strength, int | float | np.floating) and 0.0 < float(strength) <= 1.0):
        raise ValueError(f"preference strength for {name!r} must be in (0, 1], got {strength!r}")
    return float(strength)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _split_names(value: str | Iterable[str] | None) -> list[str]:
    if _is_missing(value):
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(s) for s in items if not _is_missing(s) and str(s).strip()]


def parse_exclusions(value: str | Iterable[str] | None) -> frozenset[str]:
    """'vegan,nuts' or ['gluten-free'] -> attribute names."""
    out: set[str] = set()
    for name in _split_names(value):
        out |= expand_name(name)
    return frozenset(out)


def parse_preferences(value: str | Mapping[str, float] | None) -> dict[str, float]:
    """'sugar:0.5,meat:0.3' -> {'added_sugar': 0.5, 'contains_meat': 0.3}; a named diet sets each attribute.

    A missing strength means 1.0; a repeated attribute keeps the strongest value.
    """
    if _is_missing(value):
        return {}
    pairs: list[tuple[str, Any]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        pairs = []
        for part in _split_names(value):
            name, sep, raw = part.partition(":")
            if not sep:
                pairs.append((name, 1.0))
                continue
            try:
                strength: Any = float(raw)
            except ValueError:
                raise ValueError(
                    f"preference {part.strip()!r}: strength {raw.strip()!r} is not a number"
                ) from None
            pairs.append((name, strength))
    prefs: dict[str, float] = {}
    for name, strength in pairs:
        s = _check_strength(str(name).strip(), strength)
        for attr in expand_name(str(name)):
            prefs[attr] = max(prefs.get(attr, 0.0), s)
    return prefs


MemberSpec = str | Iterable[str] | DietProfile | None


def parse_profile(
    exclusions: str | Iterable[str] | None = None,
    preferences: str | Mapping[str, float] | None = None,
    members: Iterable[MemberSpec] = (),
) -> DietProfile:
    """The household's profile: its own rules plus every member's hard exclusions (union).

    Members' soft preferences (when given as profiles) are merged too, at the strongest strength.
    """
    profile = DietProfile(parse_exclusions(exclusions), parse_preferences(preferences))
    for member in members:
        if isinstance(member, DietProfile):
            profile = profile.merge(member)
        else:
            profile = profile.merge(DietProfile(parse_exclusions(member)))
    return profile


def as_profile(value: DietProfile | str | Iterable[str] | None) -> DietProfile:
    """Accept a profile, a 'vegan,nuts' string, a list of names or None (no rules)."""
    if isinstance(value, DietProfile):
        return value
    return parse_profile(value)


def profile_for_customer(
    customers_row: Mapping[str, Any] | pd.Series,
    members_rows: pd.DataFrame | Iterable[Mapping[str, Any]] | None = None,
) -> DietProfile:
    """Profile from a customers-table row and that customer's household_members rows."""
    row = customers_row
    if isinstance(members_rows, pd.DataFrame):
        if "customer_id" in members_rows.columns and "customer_id" in row:
            members_rows = members_rows[members_rows["customer_id"].astype(str) == str(row["customer_id"])]
        members = [r.get("diet_exclusions") for r in members_rows.to_dict("records")]
    else:
        members = [r.get("diet_exclusions") for r in (members_rows or [])]
    return parse_profile(row.get("diet_exclusions"), row.get("diet_preferences"), members)


# ---- suggestions from purchase history ----------------------------------------------------------

#: Diets worth suggesting, most specific first; a diet implied by a suggested one is not repeated.
SUGGESTABLE: tuple[str, ...] = ("vegan", "vegetarian", "pescetarian", "gluten-free", "lactose-free")


def suggest_profiles(
    dataset: Any,
    min_purchases: int = 30,
    months: int = 6,
    min_confidence: float = 0.0,
) -> pd.DataFrame:
    """Diets a household's recent purchases are consistent with: SUGGESTIONS, never applied.

    For each diet we look at the household's food purchase lines of the last `months` months
    (relative to the latest event) whose relevant attributes are known. If none contains an
    excluded attribute and there are at least `min_purchases` such lines, we suggest the diet with
    confidence 1 - (1 - p)^n: the chance that a household buying like the average household (p = the
    share of known food lines that contain the attribute) would have bought it at least once in n
    lines. So 0 meat in 10 lines says little; 0 meat in 300 lines says a lot.

    The result may only be shown to the customer as a question ("Are you vegetarian?"); a hard rule
    needs the customer's confirmation and consent to store diet data. Returns customer_id,
    suggestion, confidence, evidence (a sentence for the customer-service UI).
    """
    columns = ["customer_id", "suggestion", "confidence", "evidence"]
    inter = dataset.interactions
    if inter.empty:
        return pd.DataFrame(columns=columns)
    start = inter["timestamp"].max() - pd.DateOffset(months=months)
    recent = inter.loc[inter["timestamp"] > start, ["user_idx", "item_idx"]]
    items = dataset.items_table
    is_food = tristate_column(items, "is_food")[recent["item_idx"].to_numpy()]
    recent = recent[is_food == "yes"]
    item_idx = recent["item_idx"].to_numpy()
    user_idx = recent["user_idx"].to_numpy()
    n_users = dataset.n_users
    rows: list[dict[str, Any]] = []
    found: dict[int, list[frozenset[str]]] = {}
    for diet in SUGGESTABLE:
        attrs = sorted(NAMED_DIETS[diet])
        values = np.stack([tristate_column(items, a)[item_idx] for a in attrs])
        known = (values != "unknown").all(axis=0)
        has = (values == "yes").any(axis=0)
        n_known = np.bincount(user_idx[known], minlength=n_users)
        n_has = np.bincount(user_idx[has], minlength=n_users)
        p = has[known].mean() if known.any() else 0.0
        if p <= 0.0:
            continue  # nobody buys it, so not buying it says nothing
        candidates = np.flatnonzero((n_has == 0) & (n_known >= min_purchases))
        for u in candidates:
            implied = [s for s in found.get(int(u), []) if s >= frozenset(attrs)]
            if implied:
                continue
            confidence = float(1.0 - (1.0 - p) ** n_known[u])
            if confidence < min_confidence:
                continue
            found.setdefault(int(u), []).append(frozenset(attrs))
            words = " or ".join(a.replace("contains_", "") for a in attrs)
            rows.append(
                {
                    "customer_id": dataset.users.to_external([u])[0],
                    "suggestion": diet,
                    "confidence": round(confidence, 4),
                    "evidence": (
                        f"none of {n_known[u]} food purchases in the last {months} months contained "
                        f"{words} (average household: {p:.0%} of food purchases)"
                    ),
                }
            )
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["customer_id", "confidence"], ascending=[True, False], ignore_index=True)


def tristate_column(items: pd.DataFrame, column: str) -> np.ndarray:
    """Column as 'yes'/'no'/'unknown' strings; a missing column or value is 'unknown'."""
    if column not in items.columns:
        return np.full(len(items), "unknown", dtype=object)
    col = items[column]
    if col.dtype == bool:
        return np.where(col.to_numpy(), "yes", "no").astype(object)
    values = col.astype(object).where(col.notna(), "unknown").astype(str).str.strip().str.lower()
    values = values.replace({"true": "yes", "false": "no", "1": "yes", "0": "no"})
    return np.where(values.isin(["yes", "no"]), values, "unknown").astype(object)
