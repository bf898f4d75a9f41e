"""Eligibility rules with known answers: exclusions, the age rule, group diet compliance, consent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.schema import DIET_ATTRIBUTES
from recsys.offers.eligibility import (
    OfferRules,
    adult_customers,
    compliant_groups,
    diet_patterns,
    eligible_pairs,
    group_table,
)

# product_id, department, category, is_food, alcohol, meat, dairy
ROWS = [
    ("cig1", "DRUG GM", "CIGARETTES", "no", "no", "no", "no"),
    ("tob1", "DRUG GM", "TOBACCO OTHER", "no", "no", "no", "no"),
    ("beer1", "GROCERY", "BEERS/ALES", "yes", "yes", "no", "no"),
    ("wine1", "GROCERY", "HOUSE REDS", "yes", "yes", "no", "no"),  # no alcohol word: the label decides
    ("ham1", "MEAT", "SMOKED MEATS", "yes", "no", "yes", "no"),  # SMOKED is not SMOKING
    ("sim1", "DRUG GM", "PREPAID WIRELESS&ACCESSORIES", "no", "no", "no", "no"),
    ("asp1", "DRUG GM", "ANALGESICS", "unknown", "no", "no", "no"),  # unknown counts as non-food
    ("app1", "PRODUCE", "APPLES", "yes", "no", "no", "no"),
    ("app2", "PRODUCE", "APPLES", "yes", "no", "no", "no"),
    ("brd1", "GROCERY", "BREAD", "yes", "no", "no", "no"),
    ("brd2", "GROCERY", "BREAD", "yes", "no", "no", "unknown"),  # one loaf the labels cannot clear
    ("chs1", "GROCERY", "CHEESE", "yes", "no", "no", "yes"),
    ("flw1", "FLORAL", "ROSES", "yes", "no", "no", "no"),  # mislabelled food, non-grocery department
]


def products() -> pd.DataFrame:
    frame = pd.DataFrame(
        ROWS, columns=["product_id", "department", "category", "is_food", "alcohol", "m", "d"]
    )
    out = frame[["product_id", "department", "category", "is_food", "alcohol"]].copy()
    for a in DIET_ATTRIBUTES:
        if a != "alcohol":
            out[a] = "no"
    out["contains_meat"], out["contains_dairy"] = frame["m"], frame["d"]
    return out


def test_group_table_flags_tobacco_alcohol_and_non_food():
    table = group_table(products(), OfferRules(exclude_departments=frozenset({"floral"})))
    restricted = set(table.index[table["age_restricted"]])
    assert restricted == {"CIGARETTES", "TOBACCO OTHER", "BEERS/ALES", "HOUSE REDS"}
    why = table["exclusion"].to_dict()
    assert why["CIGARETTES"] == why["HOUSE REDS"] == "age-restricted (alcohol, tobacco)"
    assert why["PREPAID WIRELESS&ACCESSORIES"] == why["ANALGESICS"] == "non-food"
    assert why["ROSES"] == "excluded department"
    assert set(table.index[~table["excluded"]]) == {"SMOKED MEATS", "APPLES", "BREAD", "CHEESE"}
    lenient = group_table(products(), OfferRules(exclude_age_restricted=False, exclude_non_food=False))
    assert lenient["age_restricted"].sum() == 4 and not lenient["excluded"].any()


def test_adult_age_bands_fail_closed():
    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e", "f", "g"],
            "age_band": ["25-34", "19-24", "65+", None, "adult", " 21-24 ", "45"],
        }
    )
    assert set(adult_customers(customers, 21)) == {"a", "c", "f", "g"}
    assert set(adult_customers(customers, 25)) == {"a", "c", "g"}
    assert list(adult_customers(customers.drop(columns="age_band"), 21)) == []


def test_group_compliance_counts_unknown_as_forbidden():
    patterns = diet_patterns(products())
    dairy = {"contains_dairy"}
    assert {"APPLES", "BREAD"} <= compliant_groups(patterns, dairy, 0.5)
    strict = compliant_groups(patterns, dairy, 1.0)
    assert "APPLES" in strict and "BREAD" not in strict and "CHEESE" not in strict
    assert "SMOKED MEATS" not in compliant_groups(patterns, {"contains_meat", "contains_dairy"}, 0.5)
    with pytest.raises(ValueError, match="unknown diet attribute"):
        compliant_groups(patterns, {"contains_wheat"}, 1.0)


def test_age_rule_survives_removing_alcohol_and_tobacco_from_the_exclusions():
    customers = pd.DataFrame(
        {
            "customer_id": ["adult", "young", "unknown", "vegan", "no-mail"],
            "consent_personalisation": [True, True, True, True, True],
            "consent_marketing": [True, True, True, True, False],
            "diet_exclusions": [None, None, None, "vegan", None],
            "age_band": ["35-44", "19-24", None, "35-44", "35-44"],
        }
    )
    tables = {"customers": customers, "products": products()}
    groups = ["CIGARETTES", "BEERS/ALES", "HOUSE REDS", "APPLES", "BREAD", "CHEESE", "SMOKED MEATS", "NOPE"]
    pairs = pd.DataFrame(
        [(c, g) for c in customers["customer_id"] for g in groups], columns=["customer_id", "product_group"]
    )

    def allowed(rules: OfferRules) -> dict[str, set[str]]:
        ok = eligible_pairs(pairs, tables, rules)
        return {
            c: set(pairs.loc[ok & (pairs["customer_id"] == c).to_numpy(), "product_group"])
            for c in customers["customer_id"]
        }

    default = allowed(OfferRules())
    assert default["adult"] == {"APPLES", "BREAD", "CHEESE", "SMOKED MEATS"}  # unknown group NOPE: never
    assert default["vegan"] == {"APPLES"}  # BREAD has a loaf the labels cannot clear
    assert default["no-mail"] == set()
    lenient = allowed(OfferRules(exclude_age_restricted=False, exclude_non_food=False))  # tobacco is non-food
    assert {"CIGARETTES", "BEERS/ALES", "HOUSE REDS"} <= lenient["adult"]
    for customer in ("young", "unknown"):
        assert not lenient[customer] & {"CIGARETTES", "BEERS/ALES", "HOUSE REDS"}
        assert lenient[customer] == default[customer]
    assert np.all(eligible_pairs(pairs.iloc[:0], tables, OfferRules()) == np.zeros(0, dtype=bool))


def test_rules_validate_their_values():
    with pytest.raises(ValueError, match="adult_age must be at least 18"):
        OfferRules(adult_age=16)
    with pytest.raises(ValueError, match="min_compliant_share"):
        OfferRules(min_compliant_share=0.0)
