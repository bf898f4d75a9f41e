"""Catalog vocabulary for the synthetic generator, in Complete Journey's department/category/type words.

Kept apart from the generator so the numbers that make the data plausible (price, CO2e, margin, which
types carry which diet attribute) can be read and reviewed as one table.

CO2e per kg: Poore & Nemecek (2018), Science 360:987, as published by Our World in Data
(beef herd ~99, cheese ~24, coffee ~17, fish (farmed) ~13.6, pork ~12, poultry ~9.9, eggs ~4.7,
rice ~4.5, milk ~3.2, tofu ~3.2, wheat & rye ~1.6, peas/beans ~1.0, potatoes ~0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Short keys for the diet attributes in the type table below, in schema.DIET_ATTRIBUTES order.
ATTR_KEYS: dict[str, str] = {
    "g": "contains_gluten",
    "m": "contains_meat",
    "f": "contains_fish",
    "d": "contains_dairy",
    "e": "contains_egg",
    "n": "contains_nuts",
    "s": "added_sugar",
    "a": "alcohol",
}


@dataclass(frozen=True)
class TypeSpec:
    """A product type; `attrs` maps an attribute key to P(product of this type has it)."""

    name: str
    weight: float
    attrs: dict[str, float]
    co2e: float | None = None  # overrides the group's value (plant milk inside FLUID MILK, say)


@dataclass(frozen=True)
class GroupSpec:
    department: str
    category: str
    share: float  # share of purchase lines in an average basket
    price: float  # median shelf price per unit
    co2e: float | None  # kg CO2e per kg; None for non-food
    margin: float  # retailer margin rate, the value of a sale net of cost
    sizes: tuple[str, ...]
    types: tuple[TypeSpec, ...]
    tags: tuple[str, ...] = ()  # persona taste hooks: meat, fish, dairy, plant, produce, sweet, kids, ...
    is_food: bool = True


# fmt: off
T = TypeSpec
GROUPS: tuple[GroupSpec, ...] = (
    GroupSpec("GROCERY", "BAKED BREAD/BUNS/ROLLS", 5.0, 2.8, 1.6, 0.30, ("20 OZ", "24 OZ", "12 CT"), (
        T("MAINSTREAM WHITE BREAD", 4, {"g": 1, "d": 0.3, "e": 0.2, "s": 0.8}),
        T("MAINSTREAM WHEAT/MULTIGRAIN BREAD", 3, {"g": 1, "s": 0.6, "n": 0.1}),
        T("HAMBURGER BUNS", 2, {"g": 1, "e": 0.2, "s": 0.7}),
        T("GLUTEN FREE BREAD", 1, {"e": 0.6, "d": 0.2, "s": 0.5}),
    ), ("kids",)),
    GroupSpec("GROCERY", "FLUID MILK PRODUCTS", 6.0, 3.0, 3.2, 0.20, ("1 GA", "HALF GA", "QT"), (
        T("FLUID MILK WHITE ONLY", 6, {"d": 1}),
        T("FLAVORED MILK", 1, {"d": 1, "s": 1}),
        T("LACTOSE FREE MILK", 1, {"d": 1}),
        T("ALMOND MILK", 1, {"n": 1, "s": 0.5}, co2e=0.7),
        T("SOY/RICE MILK", 1, {"s": 0.5}, co2e=0.9),
    ), ("dairy", "kids")),
    GroupSpec("GROCERY", "CHEESE", 4.0, 3.9, 24.0, 0.35, ("8 OZ", "16 OZ", "12 OZ"), (
        T("NATURAL CHEESE CHUNKS", 3, {"d": 1}),
        T("SHREDDED CHEESE", 3, {"d": 1}),
        T("STRING CHEESE", 1, {"d": 1}),
        T("VEGAN CHEESE ALTERNATIVE", 1, {"n": 0.4}, co2e=3.0),
    ), ("dairy",)),
    GroupSpec("GROCERY", "YOGURT", 3.0, 1.2, 2.5, 0.30, ("6 OZ", "32 OZ", "4 PK"), (
        T("YOGURT NOT MULTI-PACKS", 4, {"d": 1, "s": 0.7}),
        T("GREEK YOGURT", 3, {"d": 1, "s": 0.5}),
        T("NON-DAIRY YOGURT", 1, {"s": 0.5, "n": 0.3}, co2e=1.5),
    ), ("dairy", "kids")),
    GroupSpec("GROCERY", "EGGS", 2.5, 2.4, 4.7, 0.20, ("1 DZ", "18 CT", "16 OZ"), (
        T("EGGS - LARGE", 5, {"e": 1}),
        T("EGGS - X-LARGE", 2, {"e": 1}),
        T("VEGAN EGG SUBSTITUTE", 1, {}, co2e=1.5),
    ), ("egg",)),
    GroupSpec("GROCERY", "COLD CEREAL", 3.0, 3.6, 1.6, 0.35, ("12 OZ", "18 OZ", "10.8 OZ"), (
        T("ALL FAMILY CEREAL", 3, {"g": 0.9, "s": 0.8, "n": 0.2}),
        T("KIDS CEREAL", 3, {"g": 0.9, "s": 1}),
        T("ADULT CEREAL", 2, {"g": 0.8, "s": 0.6, "n": 0.4}),
        T("GLUTEN FREE CEREAL", 1, {"s": 0.6, "n": 0.2}),
    ), ("kids", "sweet")),
    GroupSpec("GROCERY", "DRY NOODLES/PASTA", 2.0, 1.4, 1.6, 0.35, ("16 OZ", "12 OZ"), (
        T("SPAGHETTI DRY", 4, {"g": 1}),
        T("NOODLES - EGG", 2, {"g": 1, "e": 1}),
        T("GLUTEN FREE PASTA", 1, {}),
    )),
    GroupSpec("GROCERY", "DRY BN/VEG/POTATO/RICE", 1.5, 1.8, 3.0, 0.35, ("16 OZ", "32 OZ"), (
        T("RICE - DRY BAG AND BOX", 3, {}, co2e=4.5),
        T("DRY BEANS/PEAS/LENTILS", 2, {}, co2e=1.0),
    ), ("plant",)),
    GroupSpec("GROCERY", "SOUP", 2.0, 1.5, 1.5, 0.35, ("10.5 OZ", "18.6 OZ"), (
        T("CONDENSED SOUP", 3, {"g": 0.6, "m": 0.5, "d": 0.3}),
        T("READY TO SERVE SOUP", 2, {"g": 0.5, "m": 0.5, "d": 0.3, "f": 0.05}),
        T("VEGETABLE SOUP", 1, {"g": 0.3}),
    )),
    GroupSpec("GROCERY", "FRUIT - SHELF STABLE", 1.5, 1.6, 1.0, 0.35, ("15 OZ", "4 PK"), (
        T("CANNED FRUIT", 3, {"s": 0.6}),
        T("APPLE SAUCE", 2, {"s": 0.5}),
    ), ("produce",)),
    GroupSpec("GROCERY", "VEGETABLES - SHELF STABLE", 2.0, 1.0, 0.8, 0.35, ("14.5 OZ", "15 OZ"), (
        T("CANNED VEGETABLES", 3, {"s": 0.1}),
        T("TOMATOES - CANNED", 2, {}),
    ), ("produce", "plant")),
    GroupSpec("GROCERY", "BAG SNACKS", 4.0, 3.0, 2.0, 0.40, ("10 OZ", "13 OZ", "1 OZ"), (
        T("POTATO CHIPS", 3, {"d": 0.2, "g": 0.1}),
        T("TORTILLA/NACHO CHIPS", 2, {}),
        T("PRETZELS", 1, {"g": 1}),
    ), ("sweet", "kids")),
    GroupSpec("GROCERY", "CRACKERS/MISC BKD FD", 2.0, 2.9, 1.8, 0.40, ("13.7 OZ", "9 OZ"), (
        T("SALTINE/OYSTER CRACKERS", 2, {"g": 1}),
        T("SNACK CRACKERS", 3, {"g": 1, "d": 0.4, "s": 0.5}),
        T("GLUTEN FREE CRACKERS", 1, {"s": 0.2}),
    )),
    GroupSpec("GROCERY", "COOKIES/CONES", 2.5, 3.1, 2.5, 0.40, ("14.3 OZ", "11 OZ"), (
        T("SANDWICH COOKIES", 3, {"g": 1, "s": 1, "d": 0.4}),
        T("CHOCOLATE CHIP COOKIES", 2, {"g": 1, "s": 1, "d": 0.8, "e": 0.6, "n": 0.2}),
        T("GLUTEN FREE COOKIES", 1, {"s": 1, "d": 0.5, "e": 0.5, "n": 0.2}),
    ), ("sweet", "kids")),
    GroupSpec("GROCERY", "CANDY - PACKAGED", 3.0, 2.5, 4.0, 0.45, ("10 OZ", "3.5 OZ", "1.55 OZ"), (
        T("CHOCOLATE CANDY", 3, {"d": 0.9, "s": 1, "n": 0.4}),
        T("NON-CHOCOLATE CANDY", 2, {"s": 1, "g": 0.2}),
        T("CANDY WITH NUTS", 1, {"n": 1, "d": 0.8, "s": 1}),
    ), ("sweet",)),
    GroupSpec("GROCERY", "NUTS", 1.0, 4.5, 2.5, 0.40, ("8 OZ", "16 OZ"), (
        T("NUTS - CANS", 2, {"n": 1}),
        T("TRAIL MIX", 1, {"n": 1, "s": 0.6}),
    ), ("plant",)),
    GroupSpec("GROCERY", "PEANUT BTR/JELLY/JAMS & HONEY", 1.5, 2.8, 2.0, 0.35, ("18 OZ", "12 OZ"), (
        T("PEANUT BUTTER", 2, {"n": 1, "s": 0.5}),
        T("JAMS/JELLIES", 2, {"s": 1}),
    ), ("kids",)),
    GroupSpec("GROCERY", "SOFT DRINKS", 5.0, 4.0, 0.5, 0.30, ("12 OZ 12PK", "2 LTR", "20 OZ"), (
        T("SOFT DRINKS 12/18&15PK CAN CAR", 3, {"s": 1}),
        T("SFT DRNK 2 LITER BTL SNGL/PK", 2, {"s": 1}),
        T("DIET SOFT DRINKS", 2, {}),
    ), ("sweet",)),
    GroupSpec("GROCERY", "COFFEE", 1.5, 6.5, 17.0, 0.35, ("12 OZ", "30.5 OZ"), (
        T("GROUND COFFEE", 3, {}),
        T("WHOLE BEAN COFFEE", 1, {}),
    )),
    GroupSpec("GROCERY", "REFRGRATD JUICES/DRNKS", 2.5, 3.3, 1.0, 0.30, ("59 OZ", "89 OZ"), (
        T("ORANGE JUICE", 3, {"s": 0.1}),
        T("FRUIT DRINKS", 2, {"s": 1}),
    ), ("kids",)),
    GroupSpec("GROCERY", "BEERS/ALES", 1.5, 9.0, 1.2, 0.30, ("12 OZ 6PK", "12 OZ 12PK"), (
        T("BEERALEMALT LIQUORS", 4, {"g": 1, "a": 1}),
        T("GLUTEN FREE BEER", 1, {"a": 1}),
    ), ("alcohol",)),
    GroupSpec("GROCERY", "DOMESTIC WINE", 1.0, 11.0, 1.8, 0.35, ("750 ML", "1.5 LTR"), (
        T("RED WINE", 1, {"a": 1}),
        T("WHITE WINE", 1, {"a": 1}),
    ), ("alcohol",)),
    GroupSpec("GROCERY", "FROZEN PIZZA", 2.0, 5.0, 3.0, 0.40, ("12 IN", "21.6 OZ"), (
        T("PIZZA/PREMIUM", 3, {"g": 1, "d": 0.95, "m": 0.6}),
        T("GLUTEN FREE PIZZA", 1, {"d": 0.9, "m": 0.3}),
    ), ("kids",)),
    GroupSpec("GROCERY", "ICE CREAM/MILK/SHERBTS", 2.0, 4.2, 3.0, 0.40, ("48 OZ", "1.5 QT"), (
        T("PREMIUM ICE CREAM", 3, {"d": 1, "s": 1, "e": 0.5, "n": 0.2}),
        T("NON-DAIRY FROZEN DESSERT", 1, {"s": 1, "n": 0.3}, co2e=1.5),
    ), ("sweet", "dairy")),
    GroupSpec("PRODUCE", "VEGETABLES - ALL OTHERS", 5.0, 1.6, 0.5, 0.40, ("1 LB", "EACH"), (
        T("BROCCOLI/CAULIFLOWER", 2, {}),
        T("PEPPERS-ALL", 2, {}),
        T("CUCUMBERS", 1, {}),
        T("ONIONS SWEET (BULK&BAG)", 2, {}),
    ), ("produce", "plant")),
    GroupSpec("PRODUCE", "TROPICAL FRUIT", 4.0, 0.9, 0.9, 0.40, ("1 LB", "EACH"), (
        T("BANANAS", 4, {}),
        T("PINEAPPLE", 1, {}),
    ), ("produce", "plant", "kids")),
    GroupSpec("PRODUCE", "POTATOES", 2.0, 3.0, 0.5, 0.35, ("5 LB", "3 LB"), (
        T("POTATOES RUSSET (BULK&BAG)", 2, {}),
        T("POTATOES RED (BULK&BAG)", 1, {}),
    ), ("produce", "plant")),
    GroupSpec("PRODUCE", "SALAD MIX", 2.0, 3.2, 0.7, 0.45, ("10 OZ", "5 OZ"), (
        T("BLENDS", 2, {}),
        T("SALAD KITS", 1, {"d": 0.6, "e": 0.3, "g": 0.3}),
    ), ("produce", "plant")),
    GroupSpec("PRODUCE", "APPLES", 2.5, 3.5, 0.4, 0.40, ("3 LB", "EACH"), (
        T("APPLES GALA (BULK&BAG)", 2, {}),
        T("APPLES HONEYCRISP", 1, {}),
    ), ("produce", "plant", "kids")),
    GroupSpec("MEAT", "BEEF", 3.0, 6.5, 99.0, 0.25, ("1 LB", "2 LB"), (
        T("PRIMAL", 2, {"m": 1}),
        T("LEAN GROUND BEEF", 3, {"m": 1}),
        T("BEEF STEAK", 1, {"m": 1}),
    ), ("meat",)),
    GroupSpec("MEAT", "CHICKEN", 3.5, 5.5, 9.9, 0.25, ("1 LB", "3 LB"), (
        T("CHICKEN BREAST BONELESS", 3, {"m": 1}),
        T("CHICKEN WINGS", 1, {"m": 1}),
        T("BREADED CHICKEN", 1, {"m": 1, "g": 1, "e": 0.3}),
    ), ("meat",)),
    GroupSpec("MEAT", "PORK", 2.0, 4.5, 12.0, 0.25, ("1 LB", "2 LB"), (
        T("PORK CHOPS", 2, {"m": 1}),
        T("PORK RIBS", 1, {"m": 1}),
    ), ("meat",)),
    GroupSpec("MEAT-PCKGD", "LUNCHMEAT", 3.0, 3.8, 12.0, 0.35, ("16 OZ", "9 OZ"), (
        T("HAM", 2, {"m": 1, "s": 0.4}),
        T("TURKEY", 2, {"m": 1}),
    ), ("meat", "kids")),
    GroupSpec("MEAT-PCKGD", "BACON", 1.5, 5.0, 12.0, 0.30, ("16 OZ", "12 OZ"), (
        T("BACON - TRAD 16OZ OR LESS", 1, {"m": 1, "s": 0.3}),
    ), ("meat",)),
    GroupSpec("SEAFOOD-PCKGD", "SEAFOOD - FROZEN", 1.5, 7.5, 13.6, 0.30, ("16 OZ", "2 LB"), (
        T("FROZEN SHRIMP", 2, {"f": 1}),
        T("BREADED FISH", 2, {"f": 1, "g": 1, "e": 0.3}),
        T("FROZEN SALMON FILLETS", 1, {"f": 1}),
    ), ("fish",)),
    GroupSpec("PASTRY", "CAKES", 1.0, 6.0, 2.5, 0.50, ("EACH", "8 IN"), (
        T("LAYER CAKES", 3, {"g": 1, "d": 0.8, "e": 0.9, "s": 1, "n": 0.2}),
        T("GLUTEN FREE CAKES", 1, {"d": 0.6, "e": 0.8, "s": 1, "n": 0.2}),
    ), ("sweet",)),
    GroupSpec("NUTRITION", "MEATLESS/VEGETARIAN", 0.8, 4.5, 2.5, 0.40, ("10 OZ", "14 OZ"), (
        T("VEGGIE BURGERS", 2, {"g": 0.5, "d": 0.3, "e": 0.3}),
        T("TOFU", 2, {}, co2e=3.2),
        T("SEITAN", 1, {"g": 1}),
        T("VEGAN BURGERS", 2, {"g": 0.3}),
    ), ("plant",)),
    GroupSpec("DRUG GM", "PAPER TOWELS", 1.5, 6.0, None, 0.30, ("6 ROLL", "2 ROLL"), (
        T("PAPER TOWELS & HOLDERS", 1, {}),
    ), (), is_food=False),
    GroupSpec("GROCERY", "LAUNDRY DETERGENTS", 1.0, 9.5, None, 0.35, ("100 OZ", "50 OZ"), (
        T("LIQUID LAUNDRY DETERGENTS", 1, {}),
    ), (), is_food=False),
)
del T
# fmt: on

#: Personas: share of customers, own hard exclusion, taste multipliers per group tag, habits.
#: visits = mean visits per week, basket = mean lines per basket, repeat = P(a line is a favourite),
#: uplift = mean saturation of the discount response (logit units).
PERSONAS: dict[str, dict] = {
    "coeliac": dict(share=0.03, exclusion="gluten", taste={"produce": 1.3}),
    "vegan": dict(share=0.03, exclusion="vegan", taste={"plant": 4.0, "produce": 1.8}),
    "vegetarian": dict(share=0.05, exclusion="vegetarian", taste={"plant": 2.5, "produce": 1.5}),
    "pescetarian": dict(share=0.03, exclusion="pescetarian", taste={"fish": 4.0, "produce": 1.3}),
    "lactose_intolerant": dict(share=0.05, exclusion="dairy", taste={}),
    "nut_allergic": dict(share=0.03, exclusion="nuts", taste={}),
    "flexitarian": dict(share=0.08, exclusion=None, taste={"meat": 0.4, "plant": 2.5, "produce": 1.4}),
    "family": dict(share=0.12, exclusion=None, taste={"kids": 1.8, "sweet": 1.3}, basket=10.0),
    "deal_hunter": dict(share=0.12, exclusion=None, taste={"sweet": 1.3}, visits=1.2, uplift=2.5, repeat=0.6),
    "loyal": dict(share=0.12, exclusion=None, taste={}, visits=1.6, basket=9.0, uplift=0.03, repeat=0.9),
    "plain": dict(share=0.34, exclusion=None, taste={}),
}
PERSONA_DEFAULTS: dict[str, float] = dict(visits=0.85, basket=7.0, uplift=0.9, repeat=0.8)

#: A household member's exclusion in the family persona (a child with a nut allergy, mostly).
MEMBER_EXCLUSIONS: dict[str, float] = {"nuts": 0.6, "gluten": 0.25, "dairy": 0.15}

#: Named exclusion -> diet attributes it forbids. "unknown" counts as forbidden (fail-closed).
EXCLUSION_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "gluten": ("contains_gluten",),
    "vegan": ("contains_meat", "contains_fish", "contains_dairy", "contains_egg"),
    "vegetarian": ("contains_meat", "contains_fish"),
    "pescetarian": ("contains_meat",),
    "dairy": ("contains_dairy",),
    "nuts": ("contains_nuts",),
}

AGE_BANDS: tuple[str, ...] = ("19-24", "25-34", "35-44", "45-54", "55-64", "65+")
INCOME_BANDS: tuple[str, ...] = (
    "Under 15K",
    "15-24K",
    "25-34K",
    "35-49K",
    "50-74K",
    "75-99K",
    "100-149K",
    "150K+",
)
