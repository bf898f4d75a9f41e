"""Which product groups may be offered to whom: exclusions, the age rule, diet compliance, consent.

A discount on a product group is a discount on every product in it, so each rule is decided per group
from its products, and every rule is fail-closed (what the data cannot decide counts as forbidden):

- exclusions (a retailer's choice): named groups and departments, non-food groups (fewer than
  `min_food_share` of their products labelled `is_food = yes`; 'unknown' counts as non-food) and
  age-restricted groups;
- the age rule (the law, not a choice): an age-restricted group (alcohol or tobacco: most of its
  products labelled `alcohol = yes`, or an alcohol / tobacco word in its name or department) is never
  offered to a customer without a known adult age band, even when the exclusions let it through;
- diet: a group is compliant with a profile when at least `min_compliant_share` of its products are
  allowed by the fail-closed constraint engine (an 'unknown' attribute counts as present). At 1.0 every
  product of the group must be known to comply, so a vegan never gets an offer on a group that holds
  meat, fish, dairy or egg, or one whose products the labels cannot clear;
- consent: offers only to customers with marketing consent (and, when asked, personalisation consent:
  the offers are chosen from their purchase history).

The same diet check runs when a plan is made and when it is served against the customer's live
profile (`diet_patterns` is what the plan artifact stores for it), so a profile that did not change
never loses an offer, and one that did only loses offers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.data.schema import DIET_ATTRIBUTES
from recsys.diet.profiles import parse_profile, tristate_column
from recsys.offers.channels import consent_matrix
from recsys.offers.groups import product_groups

#: Words that make a group age-restricted wherever they stand in its name or department (whole words,
#: so SMOKED MEATS is not tobacco). Extended by `OfferRules.extra_age_terms`, never shortened.
AGE_RESTRICTED_TERMS: tuple[str, ...] = (
    "BEER",
    "BEERS",
    "WINE",
    "WINES",
    "LIQUOR",
    "LIQUORS",
    "SPIRITS",
    "CIDER",
    "HARD SELTZER",
    "TOBACCO",
    "CIGAR",
    "CIGARS",
    "CIGARETTE",
    "CIGARETTES",
    "SMOKING",
    "NICOTINE",
    "VAPE",
    "VAPING",
    "E-CIGARETTE",
    "E-CIGARETTES",
)


@dataclass(frozen=True)
class OfferRules:
    """The retailer's eligibility rules (see the module docstring); the age rule always applies.

    exclude_groups / exclude_departments: never offered (exact names, case-insensitive).
    exclude_non_food: exclude groups with fewer than `min_food_share` of products labelled food.
    exclude_age_restricted: exclude alcohol and tobacco groups for everybody; when False they may go
    to customers whose `age_band` starts at `adult_age` or above (e.g. '25-34', '65+'), never to
    others (no band, a band reaching below the age, or one that cannot be read).
    min_compliant_share: share of a group's products a diet profile must allow (1.0 = all).
    require_personalisation_consent: also require consent to personalise (offers use the history).
    """

    exclude_groups: frozenset[str] = frozenset()
    exclude_departments: frozenset[str] = frozenset()
    exclude_non_food: bool = True
    exclude_age_restricted: bool = True
    min_food_share: float = 0.5
    adult_age: int = 21
    extra_age_terms: tuple[str, ...] = ()
    min_compliant_share: float = 1.0
    require_personalisation_consent: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.min_compliant_share <= 1.0:
            raise ValueError(f"min_compliant_share must be in (0, 1], got {self.min_compliant_share}")
        if not 0.0 <= self.min_food_share <= 1.0:
            raise ValueError(f"min_food_share must be in [0, 1], got {self.min_food_share}")
        if self.adult_age < 18:
            raise ValueError(f"adult_age must be at least 18, got {self.adult_age}")
        object.__setattr__(self, "exclude_groups", frozenset(_upper(self.exclude_groups)))
        object.__setattr__(self, "exclude_departments", frozenset(_upper(self.exclude_departments)))


def _upper(names: Iterable[str]) -> list[str]:
    return [str(n).strip().upper() for n in names]


def _mode(values: pd.Series, keys: np.ndarray) -> pd.Series:
    """Most frequent value per key (ties: the alphabetically first)."""
    counts = pd.DataFrame({"k": keys, "v": values.astype(str).to_numpy()}).value_counts().reset_index()
    counts = counts.sort_values(["k", "count", "v"], ascending=[True, False, True])
    return counts.drop_duplicates("k").set_index("k")["v"]


def age_restricted_pattern(extra_terms: Iterable[str] = ()) -> re.Pattern[str]:
    terms = sorted({*AGE_RESTRICTED_TERMS, *_upper(extra_terms)}, key=len, reverse=True)
    return re.compile(r"(?<![A-Z])(?:" + "|".join(re.escape(t) for t in terms) + r")(?![A-Z])")


def group_table(products: pd.DataFrame, rules: OfferRules) -> pd.DataFrame:
    """One row per product group: department (the most common), products, food_share,
    alcohol_share, age_restricted, excluded and why ('' when offered)."""
    groups = product_groups(products).to_numpy()
    food = pd.Series(tristate_column(products, "is_food") == "yes", dtype=float)
    alcohol = pd.Series(tristate_column(products, "alcohol") == "yes", dtype=float)
    table = pd.DataFrame(
        {
            "department": _mode(products["department"].fillna(""), groups),
            "products": food.groupby(groups).size(),
            "food_share": food.groupby(groups).mean(),
            "alcohol_share": alcohol.groupby(groups).mean(),
        }
    )
    table.index.name = "product_group"
    pattern = age_restricted_pattern(rules.extra_age_terms)
    text = table.index.astype(str).str.upper() + " | " + table["department"].str.upper()
    table["age_restricted"] = (table["alcohol_share"] >= 0.5) | text.str.contains(pattern).to_numpy()
    why = np.full(len(table), "", dtype=object)
    checks = [
        (
            table["age_restricted"].to_numpy() & rules.exclude_age_restricted,
            "age-restricted (alcohol, tobacco)",
        ),
        ((table["food_share"] < rules.min_food_share).to_numpy() & rules.exclude_non_food, "non-food"),
        (table["department"].str.upper().isin(rules.exclude_departments).to_numpy(), "excluded department"),
        (table.index.astype(str).str.upper().isin(rules.exclude_groups), "excluded group"),
    ]
    for hit, reason in reversed(checks):  # the first matching check names the reason
        why = np.where(hit, reason, why)
    table["exclusion"] = why
    table["excluded"] = why != ""
    return table


def diet_patterns(products: pd.DataFrame) -> pd.DataFrame:
    """Per product group, the distinct combinations of diet attribute values with their product
    counts (columns product_group, DIET_ATTRIBUTES..., products): enough to decide any profile's
    compliance with a group without the product table."""
    frame = pd.DataFrame({a: tristate_column(products, a) for a in DIET_ATTRIBUTES})
    frame.insert(0, "product_group", product_groups(products).to_numpy())
    out = frame.value_counts(sort=False).rename("products").reset_index()
    return out.sort_values(["product_group", *DIET_ATTRIBUTES], kind="stable").reset_index(drop=True)


def compliant_share(patterns: pd.DataFrame, exclusions: Iterable[str]) -> pd.Series:
    """Share of each group's products allowed under hard `exclusions` (attribute names): an attribute
    must be 'no' to pass, 'unknown' fails (fail-closed)."""
    excl = sorted(exclusions)
    unknown = sorted(set(excl) - set(DIET_ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown diet attribute(s) {unknown}; valid: {', '.join(DIET_ATTRIBUTES)}")
    n = patterns["products"].to_numpy(float)
    ok = np.ones(len(patterns), dtype=bool)
    for a in excl:
        ok &= patterns[a].to_numpy() == "no"
    allowed = pd.Series(n * ok).groupby(patterns["product_group"].to_numpy()).sum()
    return allowed / pd.Series(n).groupby(patterns["product_group"].to_numpy()).sum()


def compliant_groups(patterns: pd.DataFrame, exclusions: Iterable[str], min_share: float) -> frozenset[str]:
    """The groups a profile's hard exclusions allow: at least `min_share` of their products comply."""
    share = compliant_share(patterns, exclusions)
    return frozenset(share.index[share >= min_share - 1e-12].astype(str))


def customer_exclusions(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """customer_id -> frozenset of excluded attributes (own profile plus every household member's),
    for customers with at least one exclusion."""
    customers = tables["customers"]
    spec = pd.Series("", index=customers["customer_id"].astype(str).to_numpy(), dtype=object)
    if "diet_exclusions" in customers:
        own = customers["diet_exclusions"].astype(object).where(customers["diet_exclusions"].notna(), "")
        spec = pd.Series(own.astype(str).to_numpy(), index=spec.index, dtype=object)
    members = tables.get("household_members")
    if members is not None and len(members):
        joined = (
            members.dropna(subset=["diet_exclusions"])
            .assign(customer_id=lambda m: m["customer_id"].astype(str))
            .groupby("customer_id")["diet_exclusions"]
            .agg(",".join)
        )
        spec = (spec + "," + joined.reindex(spec.index).fillna("")).str.strip(",")
    spec = spec[spec.str.len() > 0]
    out = spec.map({text: _exclusions(text) for text in spec.unique()})
    return out[out.map(len) > 0]


def _exclusions(text: str) -> frozenset[str]:
    """A stored profile's exclusions; one that cannot be read excludes every attribute (fail-closed:
    an unreadable rule must never widen what is offered)."""
    try:
        return parse_profile(text).exclusions
    except ValueError:
        return frozenset(DIET_ATTRIBUTES)


def diet_compliant(
    pairs: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    min_share: float,
    patterns: pd.DataFrame | None = None,
) -> np.ndarray:
    """Per (customer_id, product_group) row: the group complies with the customer's exclusions
    (computed once per distinct profile). Groups the catalog does not know fail."""
    patterns = diet_patterns(tables["products"]) if patterns is None else patterns
    excl = customer_exclusions(tables)
    ok = np.ones(len(pairs), dtype=bool)
    if excl.empty:
        return ok
    keys = sorted(set(excl), key=sorted)
    code = excl.map({key: i for i, key in enumerate(keys)})
    profile = pairs["customer_id"].astype(str).map(code).fillna(-1).to_numpy(int)
    group = pairs["product_group"].astype(str).to_numpy()
    for i, key in enumerate(keys):  # a handful of distinct profiles, not one per customer
        rows = profile == i
        if rows.any():
            ok[rows] = np.isin(group[rows], list(compliant_groups(patterns, key, min_share)))
    return ok


def adult_customers(customers: pd.DataFrame, adult_age: int) -> pd.Index:
    """Customers whose `age_band` is known to start at `adult_age` or above ('25-34', '65+', '45');
    a missing or unreadable band, or one reaching below the age ('19-24' at 21), is not adult."""
    if "age_band" not in customers:
        return pd.Index([], dtype=object)
    band = customers["age_band"].astype(object).where(customers["age_band"].notna(), "").astype(str)
    low = pd.to_numeric(band.str.extract(r"^\s*(\d+)\s*(?:-\s*\d+|\+)?\s*$")[0], errors="coerce")
    return pd.Index(customers.loc[(low >= adult_age).to_numpy(), "customer_id"].astype(str).unique())


def may_receive_offers(customers: pd.DataFrame, rules: OfferRules | None = None) -> pd.Index:
    """Customers with marketing consent on at least one channel (`recsys.offers.channels`) and
    personalisation consent when the rules require it."""
    ok = pd.Series(consent_matrix(customers).any(axis=1), index=customers.index)
    if rules is not None and rules.require_personalisation_consent and "consent_personalisation" in customers:
        ok &= customers["consent_personalisation"].fillna(False).astype(bool)
    return pd.Index(customers.loc[ok.to_numpy(), "customer_id"].astype(str).unique())


def eligible_pairs(pairs: pd.DataFrame, tables: dict[str, pd.DataFrame], rules: OfferRules) -> np.ndarray:
    """Mask of the (customer_id, product_group) rows the rules allow: not excluded, the age rule, diet
    compliance at `rules.min_compliant_share`, consent. A group the catalog does not know fails."""
    groups = group_table(tables["products"], rules)
    group = pairs["product_group"].astype(str)
    cust = pairs["customer_id"].astype(str)
    ok = ~group.map(groups["excluded"]).fillna(True).astype(bool).to_numpy()
    restricted = group.map(groups["age_restricted"]).fillna(True).astype(bool).to_numpy()
    adults = adult_customers(tables["customers"], rules.adult_age)
    ok &= ~restricted | cust.isin(adults).to_numpy()
    ok &= cust.isin(may_receive_offers(tables["customers"], rules)).to_numpy()
    return ok & diet_compliant(pairs, tables, rules.min_compliant_share)
