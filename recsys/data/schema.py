"""Canonical tables: one declaration per column, used by validation, import, loaders and docs.

Every loader (Complete Journey, CSV/Parquet import, synthetic) produces exactly these tables, so the
rest of the library never sees a source-specific column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["id", "str", "int", "float", "bool", "timestamp", "tristate"]

#: Three-valued diet attribute. "unknown" is treated as "yes" under a hard exclusion (fail-closed).
TRISTATE_VALUES: tuple[str, ...] = ("yes", "no", "unknown")

DIET_ATTRIBUTES: tuple[str, ...] = (
    "contains_gluten",
    "contains_meat",
    "contains_fish",
    "contains_dairy",
    "contains_egg",
    "contains_nuts",
    "added_sugar",
    "alcohol",
)

CHANNELS: tuple[str, ...] = ("store", "online", "app")

#: Channels an offer can be sent on and a customer can engage on: app push, email, in-store display.
MARKETING_CHANNELS: tuple[str, ...] = ("app", "email", "store")

#: Engagement events: an app push or email opened, a link clicked, a store visited.
ENGAGEMENT_EVENTS: tuple[str, ...] = ("open", "click", "visit")


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False
    min_value: float | None = None
    allowed: tuple[str, ...] | None = None
    doc: str = ""
    #: a planned date (a promotion calendar): may lie in the future, unlike an event
    planned: bool = False


@dataclass(frozen=True)
class ForeignKey:
    column: str
    table: str
    target: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    required: bool = True
    doc: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


CUSTOMERS = Table(
    "customers",
    (
        Column("customer_id", "id", doc="pseudonymous id; never a name, e-mail or card number"),
        Column("consent_personalisation", "bool", doc="may we personalise recommendations"),
        Column("consent_marketing", "bool", doc="may we send offers"),
        Column(
            "marketing_channels",
            "str",
            required=False,
            nullable=True,
            doc="channels offers may use, comma separated (app, email, store); missing = every channel "
            "when consent_marketing is true",
        ),
        Column(
            "diet_exclusions",
            "str",
            required=False,
            nullable=True,
            doc="hard exclusions and named diets, comma separated (e.g. 'vegan,nuts')",
        ),
        Column(
            "diet_preferences",
            "str",
            required=False,
            nullable=True,
            doc="soft preferences 'name:strength' comma separated, strength in (0,1] (e.g. 'sugar:0.5')",
        ),
        Column(
            "household_size", "int", required=False, nullable=True, min_value=1, doc="people in the household"
        ),
        Column("age_band", "str", required=False, nullable=True, doc="coarse band (e.g. 45-54); optional"),
        Column("income_band", "str", required=False, nullable=True, doc="coarse band; optional"),
    ),
    primary_key=("customer_id",),
    doc="one row per loyalty customer (household)",
)

HOUSEHOLD_MEMBERS = Table(
    "household_members",
    (
        Column("customer_id", "id"),
        Column("member_id", "id", doc="pseudonymous, unique within the household"),
        Column("diet_exclusions", "str", nullable=True, doc="the member's hard exclusions; all apply"),
    ),
    primary_key=("customer_id", "member_id"),
    foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
    required=False,
    doc="optional household members whose hard exclusions apply to the whole household",
)

PRODUCTS = Table(
    "products",
    (
        Column("product_id", "id", doc="the retailer's product id"),
        Column("name", "str", doc="display name"),
        Column("department", "str"),
        Column("category", "str", nullable=True),
        Column("type", "str", nullable=True),
        Column("brand", "str", nullable=True),
        Column("price", "float", nullable=True, min_value=0.0, doc="typical shelf price per unit"),
        Column("package_size", "str", nullable=True),
        Column("is_food", "tristate", doc="eaten or drunk; diet rules only clear non-food items"),
        *(
            Column(a, "tristate", doc="yes/no/unknown; unknown is excluded under a hard rule")
            for a in DIET_ATTRIBUTES
        ),
        Column("co2e_per_kg", "float", nullable=True, min_value=0.0, doc="kg CO2e per kg of food"),
    ),
    primary_key=("product_id",),
    doc="one row per product; diet attributes are three-valued",
)

INTERACTIONS = Table(
    "interactions",
    (
        Column("customer_id", "id"),
        Column("product_id", "id"),
        Column("timestamp", "timestamp", doc="UTC, naive ISO-8601 in CSV"),
        Column("quantity", "float", min_value=0.0),
        Column("value", "float", min_value=0.0, doc="amount paid"),
        Column("discount", "float", min_value=0.0, doc="discount granted on the line"),
        Column("channel", "str", allowed=CHANNELS),
        Column("basket_id", "id", doc="one id per checkout"),
        Column("store_id", "id", required=False, nullable=True, doc="store of the purchase"),
    ),
    foreign_keys=(
        ForeignKey("customer_id", "customers", "customer_id"),
        ForeignKey("product_id", "products", "product_id"),
    ),
    doc="one row per purchase line",
)

OFFERS = Table(
    "offers",
    (
        Column("offer_id", "id", doc="unique per offer sent"),
        Column("customer_id", "id"),
        Column("product_group", "str", doc="a product category, or 'campaign:<id>' for a coupon campaign"),
        Column("discount_level", "float", nullable=True, min_value=0.0, doc="fraction off, 0.10 = 10%"),
        Column("sent_at", "timestamp", doc="when the offer was sent (UTC)"),
        Column("expires_at", "timestamp", required=False, nullable=True, doc="end of the offer window"),
        Column("channel", "str", allowed=CHANNELS + ("email", "mail")),
        Column("redeemed_at", "timestamp", nullable=True, doc="first redemption; empty = not redeemed"),
        Column(
            "propensity", "float", required=False, nullable=True, min_value=0.0, doc="logging policy P(level)"
        ),
        Column("campaign_id", "id", required=False, nullable=True, doc="campaign the offer belongs to"),
    ),
    primary_key=("offer_id",),
    foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
    required=False,
    doc="offers sent and whether/when they were redeemed",
)

ENGAGEMENT = Table(
    "engagement",
    (
        Column("customer_id", "id"),
        Column("channel", "str", allowed=MARKETING_CHANNELS, doc="where the customer engaged"),
        Column("timestamp", "timestamp", doc="UTC"),
        Column(
            "event", "str", allowed=ENGAGEMENT_EVENTS, doc="push or email opened, link clicked, store visited"
        ),
    ),
    foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
    required=False,
    doc=(
        "engagement per marketing channel, one row per event; the channel model's prior of which channel "
        "a customer answers (without it, the offer log alone decides)"
    ),
)

CAMPAIGN_PRODUCTS = Table(
    "campaign_products",
    (Column("campaign_id", "id"), Column("product_id", "id")),
    primary_key=("campaign_id", "product_id"),
    foreign_keys=(ForeignKey("product_id", "products", "product_id"),),
    required=False,
    doc="which products a coupon campaign covers",
)

PROMOTIONS = Table(
    "promotions",
    (
        Column("product_id", "id"),
        Column("store_id", "id"),
        Column("week_start", "timestamp", planned=True, doc="start of the promotion week (may be upcoming)"),
        Column("display", "bool", doc="on an in-store display that week"),
        Column("mailer", "bool", doc="featured in that week's mailer"),
    ),
    primary_key=("product_id", "store_id", "week_start"),
    foreign_keys=(ForeignKey("product_id", "products", "product_id"),),
    required=False,
    doc=(
        "the promotion calendar: which products each store puts on display or in its mailer, per week; "
        "planned ahead, so the grocery ranker may use the weeks it recommends for"
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        CUSTOMERS,
        HOUSEHOLD_MEMBERS,
        PRODUCTS,
        INTERACTIONS,
        OFFERS,
        ENGAGEMENT,
        CAMPAIGN_PRODUCTS,
        PROMOTIONS,
    )
}
#: Validation order: referenced tables first.
TABLE_ORDER: tuple[str, ...] = (
    "customers",
    "household_members",
    "products",
    "interactions",
    "offers",
    "engagement",
    "campaign_products",
    "promotions",
)


def schema_markdown() -> str:
    """The canonical schema as Markdown (README's schema section is generated from this)."""
    lines: list[str] = []
    for name in TABLE_ORDER:
        table = TABLES[name]
        key = f" Key: `{', '.join(table.primary_key)}`." if table.primary_key else ""
        fks = "".join(f" `{fk.column}` -> `{fk.table}.{fk.target}`." for fk in table.foreign_keys)
        need = "required" if table.required else "optional"
        lines += [f"#### `{name}` ({need})", "", f"{table.doc[:1].upper()}{table.doc[1:]}.{key}{fks}", ""]
        lines += [
            "| column | type | required | null | rule | meaning |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for c in table.columns:
            rule = []
            if c.min_value is not None:
                rule.append(f">= {c.min_value:g}")
            if c.allowed:
                rule.append(" / ".join(c.allowed))
            if c.kind == "tristate":
                rule.append("yes / no / unknown")
            lines.append(
                f"| `{c.name}` | {c.kind} | {'yes' if c.required else 'no'} | {'yes' if c.nullable else 'no'} "
                f"| {', '.join(rule)} | {c.doc} |"
            )
        lines.append("")
    return "\n".join(lines)
