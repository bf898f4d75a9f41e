"""Request and response models of the HTTP API (they are the OpenAPI documentation).

Bounds live here so that malformed input is rejected with a 400 and a field-level reason before any
model code runs; semantic checks that need the catalog (unknown item, unknown diet) return 404/400
from the service.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from recsys.diet.profiles import VALID_NAMES
from serving.reload import REF_PATTERN

CustomerId = Field(min_length=1, max_length=128, description="pseudonymous loyalty customer id")
#: an integer; JSON Schema counts 5.0 as one, so a whole float is taken as the integer (strict types)
#: a whole float such as 5.0 is an integer, as in JSON Schema
WHOLE_FLOAT = BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)
Count = Annotated[int, WHOLE_FLOAT]
#: a diet or exclusion name as documented (the service also takes any case, and `_` or ` ` for `-`)
DietName = Annotated[str, Field(json_schema_extra={"enum": list(VALID_NAMES)})]
_PREFERENCE = f"({'|'.join(VALID_NAMES)})(:(1(\\.0+)?|0?\\.[0-9]*[1-9][0-9]*))?"
#: 'name[:strength],...' with a strength in (0, 1] (recsys.diet.profiles.parse_preferences)
PREFERENCES_PATTERN = f"^({_PREFERENCE}(,{_PREFERENCE})*)?$"
MAX_K = 1000


class _Request(BaseModel):
    """Unknown fields are an error: a typo in a filter must not silently turn the filter off. Strict
    types, as documented: `0` is not `false`, `false` not `0.0`, `1` not `"1"` (an int is a float)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ExperimentTag(BaseModel):
    experiment: str
    variant: str


EXPERIMENT = Field(None, description="the A/B test and variant this answer was served under, if any")

# ---- products ---------------------------------------------------------------------------------


class ProductsRequest(_Request):
    customer_id: str = CustomerId
    k: Count = Field(10, ge=1, le=MAX_K, description="number of products")
    diet: list[DietName] | None = Field(
        None,
        description="diet override for this request, e.g. ['vegan', 'nuts'] (hard exclusions); "
        "default: the customer's stored profile",
    )
    categories: list[str] | None = Field(None, description="only products in these categories/departments")
    include: list[str] | None = Field(None, description="only these product ids")
    exclude: list[str] | None = Field(None, description="never these product ids")
    store: str | None = Field(
        None, min_length=1, max_length=128, description="only products sold in this store"
    )
    mode: Literal["mixed", "buy_again", "discover", "complete_basket"] = Field(
        "mixed",
        description="buy_again: only previously bought; discover: only new to the customer; "
        "complete_basket: what goes with `basket` for this customer",
    )
    co2_weight: float = Field(
        0.0, ge=0.0, le=10.0, description="0 = ignore CO2e; 1 = one std of relevance per std of CO2e"
    )
    basket: list[str] | None = Field(
        None, max_length=MAX_K, description="product ids in hand (never recommended); unknown ids ignored"
    )


class ProductItem(BaseModel):
    item_id: str
    rank: int
    score: float
    name: str | None = None
    category: str | None = None
    reason: str = Field(description="why this product, e.g. 'because you bought X'")
    reason_item_id: str | None = Field(None, description="the history item the reason refers to")
    co2e_per_kg: float | None = None


class ProductsResponse(BaseModel):
    recommendation_id: str = Field(description="quote it in feedback events to attribute them")
    customer_id: str
    model_version: str
    personalised: bool
    fallback: Literal["cold_start", "no_consent"] | None = None
    diet: list[str] = Field(default_factory=list, description="hard exclusions that were applied")
    items: list[ProductItem]
    experiment: ExperimentTag | None = EXPERIMENT
    degraded: str | None = Field(
        None, description="set when the event store could not be read: why, and what was used instead"
    )


# ---- items ------------------------------------------------------------------------------------


class SimilarRequest(_Request):
    item_id: str = Field(min_length=1, max_length=128)
    k: Count = Field(10, ge=1, le=MAX_K)
    diet: list[DietName] | None = Field(None, description="only items compliant with these exclusions")


class SubstitutesRequest(_Request):
    item_id: str = Field(min_length=1, max_length=128)
    k: Count = Field(5, ge=1, le=MAX_K)
    customer_id: str | None = Field(None, max_length=128, description="use this customer's stored diet")
    diet: list[DietName] | None = Field(None, description="diet the substitutes must satisfy")


class ItemScore(BaseModel):
    item_id: str
    rank: int
    score: float
    name: str | None = None
    category: str | None = None
    reason: str | None = None


class ItemsResponse(BaseModel):
    item_id: str
    model_version: str
    diet: list[str] = Field(default_factory=list)
    items: list[ItemScore]


# ---- recipes ----------------------------------------------------------------------------------


class RecipesRequest(_Request):
    customer_id: str = CustomerId
    k: Count = Field(5, ge=1, le=MAX_K)
    diet: list[DietName] | None = None
    # bounds before the validator inside the Optional: the document then says minimum/maximum
    max_steps: Annotated[int, Field(ge=1, le=100), WHOLE_FLOAT] | None = None
    max_minutes: Annotated[int, Field(ge=1, le=24 * 60), WHOLE_FLOAT] | None = None
    basket: list[str] | None = Field(None, description="product ids in the current basket")
    store: str | None = Field(None, min_length=1, max_length=128, description="only what this store sells")
    pantry_at_home: bool = Field(
        False, description="the customer keeps pantry staples (salt, pepper, oils, common spices)"
    )


class MissingProduct(BaseModel):
    ingredient: str
    item_id: str | None = Field(None, description="a compliant product to buy for it, if any")
    name: str | None = None


class IngredientLine(BaseModel):
    name: str
    quantity: float
    unit: str
    optional: bool = False
    pantry: bool = False


class RecipeItem(BaseModel):
    recipe_id: str
    title: str
    rank: int
    score: float
    steps: int | None = None
    minutes: int | None = None
    missing: list[MissingProduct] = Field(default_factory=list, description="what is still to buy")
    ingredients: list[IngredientLine] = Field(
        default_factory=list, description="the full list, with quantities"
    )
    instructions: list[str] = Field(default_factory=list, description="the steps, in order")


class RecipesResponse(BaseModel):
    recommendation_id: str
    customer_id: str
    model_version: str
    personalised: bool
    diet: list[str] = Field(default_factory=list)
    recipes: list[RecipeItem]
    experiment: ExperimentTag | None = EXPERIMENT
    degraded: str | None = Field(
        None, description="set when the event store could not be read: why, and what was used instead"
    )


# ---- discounts --------------------------------------------------------------------------------


class DiscountsRequest(_Request):
    customer_id: str = CustomerId
    k: Count = Field(3, ge=1, le=MAX_K, description="at most this many product groups")


class DiscountItem(BaseModel):
    product_group: str
    discount_level: float = Field(description="fraction off, 0.10 = 10%")
    expected_uplift: float = Field(description="rise in the chance they buy from the group in the window")
    expected_cost: float = Field(
        description="expected discount paid out; the plan's offers sum to <= its budget"
    )
    expected_profit: float = Field(
        description="expected incremental margin: extra margin from the uplift minus the discount paid"
    )
    reason: str
    best_send_time: str | None = Field(None, description="the customer's usual weekday at the best hour")
    channel: str | None = Field(
        None, description="app (push), email or store (in-store display): the best channel consented to"
    )


class DiscountsResponse(BaseModel):
    recommendation_id: str
    customer_id: str
    model_version: str = Field(
        description="version of the discount plan answered from (not the product model)"
    )
    eligible: bool = Field(description="false without marketing or personalisation consent, or once erased")
    discounts: list[DiscountItem]
    reason: str | None = Field(
        None,
        description="why there are no offers (no consent, not in the current plan and why, no planned "
        "group compliant with the current diet); null when there are offers",
    )
    experiment: ExperimentTag | None = EXPERIMENT
    degraded: str | None = Field(
        None, description="set when the event store could not be read: why, and what was used instead"
    )


# ---- checkout ---------------------------------------------------------------------------------


class CheckoutLine(_Request):
    product_id: str = Field(min_length=1, max_length=128)
    quantity: float = Field(gt=0.0, le=10_000, description="units (or kg) on the line")
    price: float = Field(ge=0.0, le=100_000, description="unit price before the benefit")


class CheckoutRequest(_Request):
    customer_id: str = CustomerId
    store: str | None = Field(None, max_length=128)
    idempotency_key: str = Field(
        min_length=8, max_length=128, description="one per checkout: a replay gives the same answer"
    )
    lines: list[CheckoutLine] = Field(min_length=1, max_length=1000)


class CheckoutBenefit(BaseModel):
    line: int = Field(description="0-based position of the basket line")
    product_id: str
    product_group: str
    discount_level: float = Field(description="fraction off, 0.10 = 10%")
    amount: float = Field(description="discount on this line: level x price x quantity, in cents")


class CheckoutResponse(BaseModel):
    checkout_id: str = Field(description="the idempotency key")
    customer_id: str
    store: str | None = None
    plan_version: str
    benefits: list[CheckoutBenefit]
    total_discount: float
    reason: str | None = Field(None, description="why no planned offer applies (consent, plan, diet)")
    notes: list[str] = Field(default_factory=list, description="offers left out: redeemed, budget spent")


# ---- feedback and customers -------------------------------------------------------------------

EventType = Literal["view", "add_to_cart", "purchase", "offer_redeemed"]


class FeedbackEvent(_Request):
    customer_id: str = CustomerId
    event_type: EventType
    item_id: str | None = Field(None, max_length=128, description="required except for offer_redeemed")
    quantity: float = Field(1.0, gt=0.0, le=10_000)
    offer_id: str | None = Field(None, max_length=128)
    product_group: str | None = Field(None, max_length=256)
    recommendation_id: str | None = Field(None, max_length=64)
    store: str | None = Field(None, max_length=128)
    event_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="client-chosen id (e.g. a UUID): an event sent again with the same id is stored once",
    )


class FeedbackRequest(_Request):
    events: list[FeedbackEvent] = Field(min_length=1, max_length=1000)


class FeedbackResponse(BaseModel):
    stored: int = Field(description="events committed to the event store")
    skipped_no_consent: int = Field(description="events dropped: no personalisation consent")


class ConsentRequest(_Request):
    customer_id: str = CustomerId
    consent_personalisation: bool
    consent_marketing: bool | None = Field(
        None, description="offers on every channel; false or omitted (without marketing_channels): none"
    )
    marketing_channels: list[Literal["app", "email", "store"]] | None = Field(
        None, description="consent per channel (replaces the flag's every channel); [] withdraws all"
    )
    diet: list[DietName] | None = Field(None, description="hard exclusions to store as the profile")
    diet_preferences: str | None = Field(
        None, max_length=512, pattern=PREFERENCES_PATTERN, description="e.g. 'sugar:0.5'"
    )


class CustomerResponse(BaseModel):
    customer_id: str
    consent_personalisation: bool
    consent_marketing: bool
    marketing_channels: list[str] = Field(default_factory=list, description="channels offers may use")
    diet: list[str] = Field(default_factory=list)


class EraseRequest(_Request):
    customer_id: str = CustomerId


class EraseResponse(BaseModel):
    customer_id: str
    events_deleted: int
    profile_deleted: bool


# ---- admin and health -------------------------------------------------------------------------


class ReloadRequest(_Request):
    model_dir: str | None = Field(
        None, description="load this native model dir (under RECSYS_MODEL_ROOT) instead of the champion"
    )
    version: str | None = Field(
        None,
        max_length=64,
        pattern=REF_PATTERN,
        description="registry version number or alias of the served model name (default: its alias)",
    )


class ReloadResponse(BaseModel):
    previous_version: str
    model_version: str
    source: str


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    model_version: str | None = None
    detail: str | None = None
    event_store: str | None = Field(None, description="'ok', or why the event store cannot be used now")


class ErrorResponse(BaseModel):
    error: str
