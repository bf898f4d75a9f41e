"""The discount planner's config (`experiments/configs/offers.yaml`), validated before any work starts.

Like the experiment configs (training/config.py) every section forbids unknown keys, so a typo fails
with the key and the file. The config is what makes a plan reproducible: its digest is stored in the
plan artifact and the whole config is logged with the run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from training.config import ConfigError, _describe, _Strict, read_yaml

DEFAULT_OFFERS_CONFIG = Path("experiments/configs/offers.yaml")


class OffersDataConfig(_Strict):
    """The prepared data directory (prepared from `source` on first use) and the decision date."""

    source: str = "completejourney"  # completejourney | synthetic | DIR of canonical tables
    dir: str = "data/cj"
    as_of: str | None = None  # default: the day after the last purchase


class PlannerConfig(_Strict):
    """`DiscountPlanner` parameters a retailer may set; the rest keep the planner's defaults."""

    margin: float | dict[str, float] = 0.3
    lookback_weeks: int = Field(26, ge=1)
    #: history a training offer's customer must have had; default min(12, lookback_weeks)
    min_history_weeks: float | None = Field(None, gt=0)
    n_groups: int = Field(8, ge=1)
    explore: float = Field(0.0, ge=0.0, le=1.0)
    explore_seed: int = 0
    campaign_cost_check: Literal["max", "instead", "off"] = "max"
    #: the budget promise: P(true discount cost > budget) at most this (recsys.offers.budget_margin)
    budget_risk: float = Field(0.02, gt=0.0, lt=0.5)


class ExclusionsConfig(_Strict):
    """Product groups never offered (recsys.offers.eligibility)."""

    age_restricted: bool = True  # alcohol and tobacco; if false they still go only to known adults
    non_food: bool = True  # groups with fewer than min_food_share of products labelled food
    min_food_share: float = Field(0.5, ge=0.0, le=1.0)
    departments: list[str] = []
    groups: list[str] = []


class AgeRuleConfig(_Strict):
    """Age-restricted groups go only to customers whose age band starts at adult_age or above."""

    adult_age: int = Field(21, ge=18)
    extra_terms: list[str] = []  # more words that mark a group age-restricted (never fewer)


class DietConfig(_Strict):
    """A group is offered under a diet only if this share of its products complies (1.0 = all)."""

    min_compliant_share: float = Field(1.0, gt=0.0, le=1.0)


class OffersConfig(_Strict):
    name: str = "offers"
    experiment: str = "grocery-offers"
    data: OffersDataConfig = OffersDataConfig()
    budget: float = Field(ge=0.0)
    max_per_customer: int = Field(3, ge=1)
    planner: PlannerConfig = PlannerConfig()
    exclusions: ExclusionsConfig = ExclusionsConfig()
    age_rule: AgeRuleConfig = AgeRuleConfig()
    diet: DietConfig = DietConfig()

    def rules(self):
        """The eligibility rules for `DiscountPlanner(rules=...)`."""
        from recsys.offers.eligibility import OfferRules

        return OfferRules(
            exclude_groups=frozenset(self.exclusions.groups),
            exclude_departments=frozenset(self.exclusions.departments),
            exclude_non_food=self.exclusions.non_food,
            exclude_age_restricted=self.exclusions.age_restricted,
            min_food_share=self.exclusions.min_food_share,
            adult_age=self.age_rule.adult_age,
            extra_age_terms=tuple(self.age_rule.extra_terms),
            min_compliant_share=self.diet.min_compliant_share,
        )

    def planner_params(self) -> dict[str, Any]:
        """Keyword arguments of `DiscountPlanner` (rules included)."""
        p = self.planner
        history = p.min_history_weeks if p.min_history_weeks is not None else min(12.0, p.lookback_weeks)
        return {
            "margin": p.margin,
            "lookback_weeks": p.lookback_weeks,
            "min_history_weeks": history,
            "n_groups": p.n_groups,
            "max_per_customer": self.max_per_customer,
            "explore": p.explore,
            "explore_seed": p.explore_seed,
            "campaign_cost_check": p.campaign_cost_check,
            "budget_risk": p.budget_risk,
            "rules": self.rules(),
        }

    def digest(self) -> str:
        """Short digest of the validated config (stored with the plan)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_offers_config(raw: dict[str, Any], source: str = "<config>") -> OffersConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return OffersConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def load_offers_config(path: str | Path) -> OffersConfig:
    """Read and validate an offers YAML config; errors name the file and the key."""
    return parse_offers_config(read_yaml(path), str(path))


def with_overrides(config: OffersConfig, overrides: dict[str, Any], source: str = "<flags>") -> OffersConfig:
    """A copy with dotted keys replaced ('budget', 'planner.margin', 'data.dir'), validated again."""
    raw = config.model_dump(mode="json")
    for key, value in overrides.items():
        if value is None:
            continue
        node = raw
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    return parse_offers_config(raw, source)
